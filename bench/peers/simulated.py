"""Simulated rows: every strategy and the oracle from `banditlb simulate --json`."""

from __future__ import annotations

import json
import subprocess
import sys


def simulate_command(scenarios: list[str], requests: int, seeds: int,
                     penalty_weight: float) -> list[str]:
    """The exact command behind a simulated table (also printed in the doc)."""
    return ["banditlb", "simulate", "--strategies", "all", "--scenarios", ",".join(scenarios),
            "--requests", str(requests), "--seeds", str(seeds), "--json",
            "--penalty-weight", f"{penalty_weight:g}"]


def run_simulated(scenarios: list[str], requests: int, seeds: int,
                  penalty_weight: float) -> list[dict]:
    """One summary per (strategy, scenario), tagged with its weight and source."""
    args = simulate_command(scenarios, requests, seeds, penalty_weight)
    done = subprocess.run([sys.executable, "-m", "banditlb", *args[1:]], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return [{**json.loads(line), "penalty_weight": penalty_weight, "source": "simulated"}
            for line in done.stdout.splitlines() if line.startswith("{")]
