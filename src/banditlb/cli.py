"""The `banditlb` command: one Typer app, one sub-command per job."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="banditlb: a load balancer that learns which flaky upstreams to trust, and its lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    app()
