"""Simulator speed: attempts per CPU-second on one core, and the full matrix's wall time.

    .venv/bin/python bench/sim_speed.py            # both figures
    .venv/bin/python bench/sim_speed.py --quick    # single-core figures only

Single-core throughput is measured in process CPU time, so that other load on
the machine counts less against it, after a warm-up run of every strategy (the
first run would otherwise pay for importing numpy and the policy modules); each
figure is the best of --repeat runs of the same seed. The matrix is wall time on
all cores, as `banditlb simulate --strategies all --scenarios T1,T2,T3
--requests 1000 --seeds 20` runs it.
"""

from __future__ import annotations

import argparse
import os
import time

from banditlb.attempts import Rules
from banditlb.fleet.scenario import load_scenario
from banditlb.sim.engine import simulate
from banditlb.sim.matrix import run_matrix
from banditlb.strategies import strategy_names


def attempts_per_cpu_second(name: str, scenario: str, requests: int, repeat: int) -> tuple:
    """(attempts in one run, best attempts per CPU-second over `repeat` runs)."""
    sc = load_scenario(scenario)
    best = 0.0
    for _ in range(repeat):
        started = time.process_time()
        stats = simulate(name, sc, 0, requests, 10, Rules())
        best = max(best, stats.attempts / (time.process_time() - started))
    return stats.attempts, best


def single_core(strategies: list[str], scenarios: list[str], requests: int, repeat: int) -> None:
    for name in strategies:  # warm-up: imports and first-call costs
        simulate(name, load_scenario("T1"), 0, 50, 10, Rules())
    print(f"{'strategy':<16}{'scenario':<10}{'attempts':>10}{'attempts/s':>14}"
          f"   (one core, CPU time, best of {repeat})")
    for scenario in scenarios:
        for name in strategies:
            attempts, rate = attempts_per_cpu_second(name, scenario, requests, repeat)
            print(f"{name:<16}{scenario:<10}{attempts:>10}{rate:>14,.0f}")


def matrix(seeds: int) -> None:
    scenarios = [load_scenario(n) for n in ("T1", "T2", "T3")]
    started = time.perf_counter()
    cpu_started = os.times()
    rows = run_matrix(strategy_names(), scenarios, range(seeds), 1000, 10, Rules())
    elapsed = time.perf_counter() - started
    spent = os.times()
    cpu = (spent.user + spent.system + spent.children_user + spent.children_system
           - cpu_started.user - cpu_started.system - cpu_started.children_user
           - cpu_started.children_system)
    print(f"matrix: {len(rows)} rows (all strategies x T1,T2,T3 x {seeds} seeds x 1,000 "
          f"requests) in {elapsed:.1f} s wall, {cpu:.1f} s CPU on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the full matrix")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--strategies", default="v4,auto,random,oracle",
                        help="comma-separated names, or all")
    parser.add_argument("--scenarios", default="T1,T3")
    parser.add_argument("--seeds", type=int, default=20, help="seeds in the matrix")
    args = parser.parse_args()
    names = strategy_names() if args.strategies == "all" else args.strategies.split(",")
    single_core(names, args.scenarios.split(","), args.requests, args.repeat)
    if not args.quick:
        matrix(args.seeds)


if __name__ == "__main__":
    main()
