"""The `banditlb` command: one Typer app, one sub-command per job."""

from __future__ import annotations

import typer

from banditlb.commands.config import config_app
from banditlb.commands.dashboard import dashboard_command
from banditlb.commands.demo import demo_command
from banditlb.commands.fleet import fleet_command
from banditlb.commands.harness import harness_command
from banditlb.commands.lb import lb_command
from banditlb.commands.runs import runs_app
from banditlb.commands.simulate import simulate_command

app = typer.Typer(
    help="banditlb: a load balancer that learns which flaky upstreams to trust, and its lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("simulate")(simulate_command)
app.add_typer(runs_app, name="runs")
app.add_typer(config_app, name="config")
app.command("harness")(harness_command)
app.command("demo")(demo_command)
app.command("lb")(lb_command)
app.command("fleet")(fleet_command)
app.command("dashboard")(dashboard_command)


def main() -> None:
    app()
