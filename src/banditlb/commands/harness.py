"""`banditlb harness`: every chosen strategy against the live fleet, scored by the fleet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.commands.common import (
    ArrivalsOption,
    arrivals_option,
    fail,
    resolve_scenarios,
    resolve_strategies,
)
from banditlb.harness import MatrixConfig, RunResult
from banditlb.harness.live_report import print_results, run_with_progress
from banditlb.harness.services import Services, running_services
from banditlb.store import DEFAULT_DATA_DIR, Store

INTERRUPTED = 130


def harness_command(
    strategies: Annotated[str, typer.Option(
        help="Comma-separated names or aliases (v1,v4,thompson,...), or 'all' for every "
             "strategy and baseline (the oracle exists only in `banditlb simulate`).")] = "all",
    scenarios: Annotated[str, typer.Option(
        help="Comma-separated scenarios, or 'all' for T1,T2,T3.")] = "T1,T2,T3",
    requests: Annotated[int, typer.Option(min=1, help="Requests per run.")] = 100,
    rps: Annotated[float, typer.Option(min=0.01, help="Mean arrival rate "
                                       "(requests per second).")] = 10.0,
    arrivals: ArrivalsOption = "uniform",
    seed: Annotated[int, typer.Option(help="Fleet reset seed and strategy seed, the same for "
                                      "every run.")] = 0,
    session: Annotated[str | None, typer.Option(help="Record into this session (created "
                                                "if new); default: a new timestamped "
                                                "one.")] = None,
    fleet_url: Annotated[str | None, typer.Option(help="Use this running fleet's control "
                                                  "URL instead of starting one.")] = None,
    lb_url: Annotated[str | None, typer.Option(help="Use this running balancer instead of "
                                               "starting one (it must record into the "
                                               "same --data-dir).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Run store directory.")] = DEFAULT_DATA_DIR,
    penalty_weight: Annotated[float, typer.Option(min=0, help="Cost of each attempt beyond "
                                                  "the free ones.")] = 1.0,
    free_attempts: Annotated[int, typer.Option(min=0, help="Attempts per id that cost "
                                               "nothing.")] = 3,
    admin_token: Annotated[str | None, typer.Option(envvar="BANDITLB_ADMIN_TOKEN",
                                                    help="Bearer token for the balancer's "
                                                    "admin API.")] = None,
) -> None:
    """Run strategies x scenarios through the real balancer and fleet; print the scores."""
    chosen_arrivals = arrivals_option(arrivals)
    results, complete = run_live(
        resolve_strategies(strategies, include_oracle=False),
        [s.name for s in resolve_scenarios(scenarios)], requests, rps, seed=seed,
        session=session, fleet_url=fleet_url, lb_url=lb_url, data_dir=data_dir,
        penalty_weight=penalty_weight, free_attempts=free_attempts, admin_token=admin_token,
        arrivals=chosen_arrivals)
    if not complete:
        raise typer.Exit(INTERRUPTED)


def run_live(strategies: list[str], scenarios: list[str], requests: int, rps: float, *,
             seed: int, session: str | None, fleet_url: str | None, lb_url: str | None,
             data_dir: Path, penalty_weight: float, free_attempts: int,
             admin_token: str | None = None, lb_port: int = 0,
             arrivals: Arrivals = UNIFORM,
             while_serving: Callable[[Services], None] | None = None
             ) -> tuple[list[RunResult], bool]:
    """Start what is missing, run the matrix, print the table; (results, all runs finished).

    `while_serving` runs after the table, before the services this call started stop.
    """
    console = Console()
    try:
        Store(data_dir).close()  # a bad data dir fails here, before anything starts
        with running_services(scenarios, data_dir=data_dir, seed=seed, fleet_url=fleet_url,
                              lb_url=lb_url, lb_port=lb_port, strategy=strategies[0],
                              penalty_weight=penalty_weight, free_attempts=free_attempts,
                              admin_token=admin_token) as services:
            config = MatrixConfig(
                strategies=strategies, scenarios=scenarios, fleet_url=services.fleet_url,
                lb_url=services.lb_url, requests=requests, rps=rps, seed=seed,
                session=session, data_dir=data_dir, penalty_weight=penalty_weight,
                free_attempts=free_attempts, admin_token=admin_token, arrivals=arrivals)
            results = run_with_progress(config, console)
            print_results(console, results)
            complete = len(results) == len(strategies) * len(scenarios)
            if complete and while_serving is not None:
                while_serving(services)
    except (RuntimeError, OSError) as exc:  # HarnessError, StoreError, a port in use, ...
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; everything started here is stopped[/yellow]")
        return [], False
    return results, complete
