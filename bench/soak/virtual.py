"""A 24-hour soak at 10 req/s in virtual time: 864,000 ids through the simulator.

Each (strategy, scenario) runs in a child process of its own so that its peak RSS
(VmHWM) is its own. Reported: CPU time, RSS before the run and at its peak, the
memory held by the result's per-request score list, and the share of accepted ids in
each 4-hour block (learning that drifts or degrades over a day shows there). The live
balancer's default (v4) is run on T1 and T3, `auto` on T3.

    .venv/bin/python bench/soak/virtual.py [--requests 864000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from banditlb.attempts import Rules
from banditlb.fleet.scenario import load_scenario
from banditlb.sim.engine import simulate

RPS = 10.0
DAY_REQUESTS = 864_000
BLOCKS = 6
RUNS = [("v4", "T1"), ("v4", "T3"), ("auto", "T3")]


def list_bytes(values: list[float]) -> int:
    """The list plus every distinct float object it holds."""
    return sys.getsizeof(values) + sum(sys.getsizeof(v) for v in {id(v): v for v in values}
                                       .values())


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak so far) of this process, in MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def one_run(strategy: str, scenario: str, requests: int) -> dict:
    before = status_mb("VmRSS")
    started = time.process_time()
    stats = simulate(strategy, load_scenario(scenario), 0, requests, RPS, Rules(deadline_s=5.0))
    cpu = time.process_time() - started
    per_block = requests // BLOCKS
    scores = stats.per_request_score
    return {
        "strategy": strategy, "scenario": scenario, "requests": requests,
        "virtual_hours": round(requests / RPS / 3600, 2), "cpu_s": round(cpu, 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(status_mb("VmHWM"), 1),
        "score_list_mb": round(list_bytes(scores) / 2**20, 1),
        "accepted_share": round(stats.accepted / requests, 4),
        "accepted_share_by_block": [
            round(sum(s > 0 for s in scores[b * per_block:(b + 1) * per_block]) / per_block, 4)
            for b in range(BLOCKS)],
        "attempts_per_request": round(stats.attempts / requests, 3),
        "rate_limited": stats.rate_limited, "timeouts": stats.timeouts,
        "score": round(stats.score, 1),
    }


def run_all(requests: int) -> list[dict]:
    """Every run of RUNS in its own child process."""
    results = []
    for strategy, scenario in RUNS:
        child = subprocess.run([sys.executable, __file__, "--one", strategy, scenario,
                                "--requests", str(requests)], capture_output=True, text=True,
                               check=True)
        results.append(json.loads(child.stdout))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=DAY_REQUESTS)
    parser.add_argument("--one", nargs=2, metavar=("STRATEGY", "SCENARIO"),
                        help="run one simulation in this process (used by the parent)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one, args.requests)))
    else:
        print(json.dumps(run_all(args.requests), indent=1))


if __name__ == "__main__":
    main()
