"""Simulator speed: attempts per CPU-second on one core, and the full matrix's wall time.

    .venv/bin/python bench/sim_speed.py            # both figures
    .venv/bin/python bench/sim_speed.py --quick    # single-core figure only

Single-core throughput is measured in process CPU time so that other load on
the machine does not count against it; the matrix is wall time on all cores.
"""

from __future__ import annotations

import argparse
import time

from banditlb.fleet.scenario import load_scenario
from banditlb.policies import strategy_names
from banditlb.routing import Rules
from banditlb.sim.engine import simulate
from banditlb.sim.matrix import run_matrix


def single_core(strategies: list[str], requests: int) -> None:
    print(f"{'strategy':<16}{'scenario':<10}{'attempts':>10}{'attempts/s':>14}")
    for scenario in ("T1", "T3"):
        sc = load_scenario(scenario)
        for name in strategies:
            started = time.process_time()
            stats = simulate(name, sc, 0, requests, 10, Rules())
            spent = time.process_time() - started
            print(f"{name:<16}{scenario:<10}{stats.attempts:>10}{stats.attempts / spent:>14,.0f}")


def matrix() -> None:
    scenarios = [load_scenario(n) for n in ("T1", "T2", "T3")]
    started = time.perf_counter()
    rows = run_matrix(strategy_names(), scenarios, range(20), 1000, 10, Rules())
    elapsed = time.perf_counter() - started
    print(f"matrix: {len(rows)} rows (all strategies x T1,T2,T3 x 20 seeds x 1,000 requests)"
          f" in {elapsed:.1f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the full matrix")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    single_core(["v4", "auto", "random", "oracle"], args.requests)
    if not args.quick:
        matrix()


if __name__ == "__main__":
    main()
