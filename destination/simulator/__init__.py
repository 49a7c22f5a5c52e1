"""A local Gainsight CS: People, Company, Events and Timeline APIs with Gainsight's rules, limits and faults.

    app = create_simulator_app(SimulatorConfig.sandbox(), clock=fake_clock)
    sim: Simulator = app.state.simulator

See `config.py` for every setting and switch, `gateway.py` for the order checks run in.
"""

from destination.simulator.app import create_simulator_app
from destination.simulator.config import SANDBOX, EventDef, FaultConfig, SimulatorConfig
from destination.simulator.state import Simulator

__all__ = [
    "SANDBOX",
    "EventDef",
    "FaultConfig",
    "Simulator",
    "SimulatorConfig",
    "create_simulator_app",
]
