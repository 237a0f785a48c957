"""`banditlb demo`: fleet + balancer + dashboard, a short live comparison, then keep serving."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from banditlb.commands.common import CHALLENGE_SCENARIOS, ArrivalsOption, arrivals_option
from banditlb.commands.harness import INTERRUPTED, run_live
from banditlb.harness.services import Services
from banditlb.store import DEFAULT_DATA_DIR

DEMO_STRATEGIES = ["auto", "v4", "v6"]
DEMO_SESSION = "demo"


def demo_command(
    data_dir: Annotated[Path, typer.Option(help="Run store directory.")] = DEFAULT_DATA_DIR,
    port: Annotated[int, typer.Option(help="Balancer (and dashboard) port; 0 picks a free "
                                      "one.")] = 8080,
    requests: Annotated[int, typer.Option(min=1, help="Requests per run.")] = 50,
    rps: Annotated[float, typer.Option(min=0.01, help="Requests per second.")] = 20.0,
    arrivals: ArrivalsOption = "uniform",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Exit after the runs instead of "
                                          "serving the dashboard until Ctrl-C.")] = False,
) -> None:
    """Start everything, compare auto, v4 and v6 on T1, T2, T3 live, then serve the dashboard."""
    chosen_arrivals = arrivals_option(arrivals)

    def serve(services: Services) -> None:
        console = Console()
        console.print(f"dashboard: [bold]{dashboard_url(services.lb_url)}[/bold]  "
                      f"(balancer {services.lb_url}, fleet {services.fleet_url})")
        if no_wait:
            return
        console.print("serving until Ctrl-C")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("stopping")

    _, complete = run_live(DEMO_STRATEGIES, list(CHALLENGE_SCENARIOS), requests, rps, seed=0,
                           session=DEMO_SESSION, fleet_url=None, lb_url=None,
                           data_dir=data_dir, penalty_weight=1.0, free_attempts=3,
                           lb_port=port, arrivals=chosen_arrivals, while_serving=serve)
    if not complete:
        raise typer.Exit(INTERRUPTED)


def dashboard_url(lb_url: str) -> str:
    """The dashboard page if this balancer serves one, else its JSON stats."""
    url = f"{lb_url.rstrip('/')}/dashboard"
    try:
        with urllib.request.urlopen(url, timeout=5):
            return url
    except (urllib.error.URLError, OSError):
        return f"{lb_url.rstrip('/')}/stats"
