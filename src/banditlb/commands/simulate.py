"""`banditlb simulate`: rank strategies in virtual time, with confidence intervals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from banditlb.commands.common import (
    ArrivalsOption,
    AttemptTimeoutMs,
    DeadlineMs,
    FreeAttempts,
    MaxAttempts,
    MaxWaiting,
    PenaltyWeight,
    arrivals_option,
    fail,
    parse_rules,
    resolve_scenarios,
    resolve_strategies,
)
from banditlb.fleet.scenario import ScenarioError, scale_capacity
from banditlb.shared.config import DEFAULT_SYNC_MS
from banditlb.sim.engine import ISOLATED, parse_sync_ms
from banditlb.sim.matrix import run_matrix
from banditlb.sim.report import plot_regret, print_json, print_markdown, print_tables
from banditlb.strategies import parse_params, strategy_spec


def simulate_command(
    strategies: Annotated[str, typer.Option(
        help="Comma-separated names or aliases (v4,thompson,...), or 'all' for every "
             "strategy, the baselines and the oracle.")] = "auto",
    scenarios: Annotated[str, typer.Option(
        help="Comma-separated presets or .toml files, or 'all' for T1,T2,T3.")] = "T1,T2,T3",
    requests: Annotated[int, typer.Option(min=1, help="Requests per run.")] = 1000,
    seeds: Annotated[int, typer.Option(min=1, help="Runs per (strategy, scenario); "
                                       "seeds 0..N-1 for fleet and strategy.")] = 20,
    rps: Annotated[float, typer.Option(min=0.001, help="Arrival rate in virtual time.")] = 10.0,
    penalty_weight: PenaltyWeight = 1.0,
    free_attempts: FreeAttempts = 3,
    max_attempts: MaxAttempts = 10,
    attempt_timeout_ms: AttemptTimeoutMs = 1000.0,
    deadline_ms: DeadlineMs = 5000.0,
    arrivals: ArrivalsOption = "uniform",
    max_waiting: MaxWaiting = 1000,
    param: Annotated[list[str] | None, typer.Option(
        help="Strategy parameter k=v (repeatable); applied to every chosen strategy that "
             "has it.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object per "
                                           "(strategy, scenario) instead of tables.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown tables (for "
                                           "the docs) instead of terminal tables.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write cumulative regret against the "
                                              "oracle (PNG) to this path.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: one per "
                                                "core).")] = None,
    replicas: Annotated[int, typer.Option(
        help="Balancer replicas in front of the one fleet, each with its own strategy "
             "(seeds seed, seed+1, ...); ids go round-robin, --rps is their total.")] = 1,
    sync_ms: Annotated[str, typer.Option(
        help="How late each replica hears the others' attempts and answers (ms), or "
             "off (also inf, isolated) for replicas that share nothing.")] =
        f"{DEFAULT_SYNC_MS:g}",
    capacity_scale: Annotated[float, typer.Option(
        help="Multiply every server's capacity (rates, bursts, window limits, caps): "
             "R replicas at R x the rate on a fleet scaled by R find it as scarce as one "
             "at the rate on the file's fleet.")] = 1.0,
) -> None:
    """Simulate strategies against the fleet models in virtual time (no sockets, no sleeps)."""
    err = Console(stderr=True)
    names = resolve_strategies(strategies, include_oracle=True)
    chosen = resolve_scenarios(scenarios)
    if replicas < 1:
        fail(f"--replicas must be a whole number >= 1 (got {replicas})")
    try:
        sync_s = parse_sync_ms(sync_ms)
    except ValueError as exc:
        fail(f"--sync-ms: {exc}")
    try:
        chosen = [scale_capacity(sc, capacity_scale) for sc in chosen]
    except ScenarioError as exc:
        fail(f"--capacity-scale: {exc}")
    sends = arrivals_option(arrivals)
    rules = parse_rules(penalty_weight, free_attempts, max_attempts, attempt_timeout_ms,
                        deadline_ms)
    try:
        params = parse_params(param or [])
    except ValueError as exc:
        fail(str(exc))
    known = {name: set(strategy_spec(name).param_defaults()) for name in names}
    unused = set(params) - set().union(*known.values())
    if unused:
        fail(f"no chosen strategy has parameter(s) {', '.join(sorted(unused))}")

    def params_for(name: str) -> dict:
        return {k: v for k, v in params.items() if k in known.get(name, ())}

    started = time.perf_counter()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task("simulating", total=None)
        summaries = run_matrix(names, chosen, range(seeds), requests, rps, rules, params_for,
                               workers, lambda done, total: bar.update(task, completed=done,
                                                                       total=total),
                               sends, max_waiting, replicas, sync_s)
    elapsed = time.perf_counter() - started
    if json_out:
        print_json(summaries)
    elif markdown:
        print_markdown(summaries)
    else:
        print_tables(Console(), summaries)
    shared = "" if replicas == 1 else (
        f"{replicas} replicas " + ("isolated, " if sync_s == ISOLATED
                                   else f"sharing {1000 * sync_s:g} ms late, "))
    scaled = "" if capacity_scale == 1 else f"capacity x{capacity_scale:g}, "
    err.print(f"[dim]{len(summaries)} rows, {seeds} seeds x {requests} requests, "
              f"arrivals {sends.label}, {shared}{scaled}"
              f"{elapsed:.1f} s[/dim]")
    if plot:
        plot_regret(summaries, plot)
        err.print(f"regret plot written to {plot}")
