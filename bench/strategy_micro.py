"""Cost of one decision: a first attempt through the attempt loop, per strategy, 10 servers.

Why: the balancer asks the strategy on every attempt, so a decision must cost
microseconds, not the milliseconds an upstream takes. One decision is what the
router does for an id's first attempt: `AttemptLoop(...)` (the chooser's
begin_request), `decide` (the admission rule's ready servers, the chooser's pick,
the attempt taking its capacity) and `record` (admission and chooser learn the
outcome). Run:

    .venv/bin/python bench/strategy_micro.py [--servers 10] [--batches 200] [--batch 500]

Prints the median (over batches) of the mean CPU time per decision, and the p90.
CPU time (not wall time) so that other work on a shared machine inflates it less.
Servers succeed with probabilities spread from 0.3 to 0.9 and answer 429 5% of the time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from banditlb.attempts import AttemptLoop, Send
from banditlb.outcomes import Attempt, Outcome
from banditlb.rules import Rules
from banditlb.strategies import make_strategy, strategy_names

RULES = Rules()


class FixedTruth:
    """A server with a constant success probability, always admitting (for the oracle)."""

    def __init__(self, p: float):
        self.p = p

    def true_success(self, now: float) -> float:
        return self.p

    def available(self, now: float) -> bool:
        return True

    def admits_in(self, now: float) -> float:
        return 0.0


def outcome_rows(probs: list[float], rng: random.Random, rows: int) -> list[list[Outcome]]:
    """Per decision, the outcome each server would give: 5% 429s, else accepted with
    probs[s]. Drawn before the timing so only the decision is measured."""
    def outcome(p: float) -> Outcome:
        if rng.random() < 0.05:
            return Outcome.RATE_LIMITED
        return Outcome.ACCEPTED if rng.random() < p else Outcome.FAILED

    return [[outcome(p) for p in probs] for _ in range(rows)]


def time_strategy(name: str, n_servers: int, batches: int, batch: int) -> list[float]:
    """CPU microseconds per decision, averaged over each batch of decisions. A decision
    that waits (auto pacing a server after a 429) is timed too; it learns nothing."""
    probs = [0.3 + 0.6 * i / max(1, n_servers - 1) for i in range(n_servers)]
    strategy = make_strategy(name, n_servers, seed=1, truth=[FixedTruth(p) for p in probs])
    rng = random.Random(2)
    per_batch = []
    now = 0.0
    for _ in range(batches):
        times = [now + i * 0.1 for i in range(batch)]
        rows = outcome_rows(probs, rng, batch)
        now += batch * 0.1
        start = time.process_time()
        for at, row in zip(times, rows, strict=True):
            loop = AttemptLoop(strategy, RULES, at)
            decision = loop.decide(at)
            if type(decision) is Send:
                server = decision.server
                loop.record(Attempt(server, row[server], at, 0.002))
        per_batch.append((time.process_time() - start) / batch * 1e6)
    return per_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--strategies", default="all", help="comma-separated names, or all")
    args = parser.parse_args()
    names = strategy_names() if args.strategies == "all" else args.strategies.split(",")
    print(f"| strategy | median us/decision | p90 us/decision |  ({args.servers} servers)")
    print("|---|---:|---:|")
    for name in names:
        try:
            runs = time_strategy(name, args.servers, args.batches, args.batch)
        except Exception as exc:  # one broken strategy must not hide the others' figures
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | |")
            continue
        p90 = statistics.quantiles(runs, n=10)[-1]
        print(f"| {name} | {statistics.median(runs):.1f} | {p90:.1f} |")


if __name__ == "__main__":
    main()
