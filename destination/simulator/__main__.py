"""`python -m destination.simulator`: the simulator on its own (plain help, as the main command's)."""

import typer

from destination.simulator.cli import simulator_main

app = typer.Typer(add_completion=False, rich_markup_mode=None)
app.command()(simulator_main)
app()
