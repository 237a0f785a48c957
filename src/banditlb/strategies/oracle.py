"""`oracle`: the simulator's yardstick, it reads the fleet's true state.

Regret is measured against it. It learns nothing; it exists only where the
true state is known (the simulator hands it the fleet's ServerModel list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from banditlb.strategies.base import Context
from banditlb.strategies.counts import CountingPolicy


class TrueState(Protocol):
    def true_success(self, now: float) -> float: ...

    def available(self, now: float) -> bool: ...


class Oracle(CountingPolicy):
    """Picks the best server that would admit a request now (ties broken at random)."""

    name = "oracle"
    alias = "oracle"
    needs_truth = True

    def __init__(self, n_servers: int, *, seed: int = 0,
                 truth: Sequence[TrueState] | None = None):
        super().__init__(n_servers, seed=seed)
        if truth is None:
            raise ValueError("the oracle needs the fleet's true state (truth=...), which "
                             "only the simulator has")
        if len(truth) != n_servers:
            raise ValueError(f"truth describes {len(truth)} servers, the policy has {n_servers}")
        self.truth = truth

    def select(self, ctx: Context) -> int | None:
        usable = self.usable(ctx.unavailable)
        if not usable:
            return None
        now, truth = ctx.now, self.truth
        admitting = [s for s in usable if truth[s].available(now)]
        pool = admitting or usable
        success = [truth[s].true_success(now) for s in pool]
        best = max(success)
        return self.rng.choice([s for s, p in zip(pool, success, strict=True) if p == best])

    def estimate(self, server: int, now: float) -> float:
        truth = self.truth[server]
        return truth.true_success(now) if truth.available(now) else 0.0
