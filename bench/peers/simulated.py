"""Simulated rows: every strategy and the oracle, as `banditlb simulate --json` gives them,
with the same arrival process (and so the same send times per seed) as the live runs."""

from __future__ import annotations

import dataclasses

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.balancer.config import LbConfig
from banditlb.fleet.scenario import load_scenario
from banditlb.sim.matrix import run_matrix
from banditlb.strategies import strategy_names

DEFAULT_RPS = 10.0
"""`banditlb simulate`'s default --rps (the command shown leaves it out at this rate)."""


def simulate_command(scenarios: list[str], requests: int, seeds: int, penalty_weight: float,
                     arrivals: Arrivals = UNIFORM, rps: float = DEFAULT_RPS) -> list[str]:
    """The command that prints the same simulated table (shown in the doc)."""
    args = ["banditlb", "simulate", "--strategies", "all", "--scenarios", ",".join(scenarios),
            "--requests", str(requests), "--seeds", str(seeds), "--json",
            "--penalty-weight", f"{penalty_weight:g}"]
    if rps != DEFAULT_RPS:
        args += ["--rps", f"{rps:g}"]
    if arrivals.label != UNIFORM.label:
        args += ["--arrivals", arrivals.label]
    return args


def run_simulated(scenarios: list[str], requests: int, seeds: int, penalty_weight: float,
                  arrivals: Arrivals = UNIFORM, rps: float = DEFAULT_RPS) -> list[dict]:
    """One summary per (strategy, scenario), tagged with its weight, arrivals and source.

    The rules are the live balancer's defaults (the `auto` peer runs with them; so does
    `banditlb simulate`) at this penalty weight."""
    rules = dataclasses.replace(LbConfig(upstreams=[]).rules, penalty_weight=penalty_weight)
    summaries = run_matrix(strategy_names(include_oracle=True),
                           [load_scenario(name) for name in scenarios], range(seeds),
                           requests, rps, rules, arrivals=arrivals)
    return [{**summary.as_json(), "penalty_weight": penalty_weight, "arrivals": arrivals.label,
             "source": "simulated"} for summary in summaries]
