"""`python -m destination.simulator`: the simulator on its own."""

import typer

from destination.simulator.cli import simulator_main

typer.run(simulator_main)
