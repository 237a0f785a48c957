"""`oracle`'s chooser: the simulator's yardstick, it reads the fleet's true state.

Regret is measured against it. It learns nothing; it exists only where the
true state is known (the simulator hands it the fleet's ServerModel list). Its
admission rule (`banditlb.admission.TrueCapacity`) reads the true capacity too.
"""

from __future__ import annotations

from collections.abc import Sequence

from banditlb.admission.truth import TrueState
from banditlb.strategies.base import Context
from banditlb.strategies.counts import CountingChooser


class Oracle(CountingChooser):
    """Picks the ready server most likely to accept (ties broken at random)."""

    def __init__(self, n_servers: int, *, seed: int = 0,
                 truth: Sequence[TrueState] | None = None):
        super().__init__(n_servers, seed=seed)
        if truth is None:
            raise ValueError("the oracle needs the fleet's true state (truth=...), which "
                             "only the simulator has")
        self.truth = truth

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        now, truth = ctx.now, self.truth
        success = [truth[s].true_success(now) for s in ready]
        best = max(success)
        return self.rng.choice([s for s, p in zip(ready, success, strict=True) if p == best])

    def quality(self, server: int, now: float) -> float:
        return self.truth[server].true_success(now)
