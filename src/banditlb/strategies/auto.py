"""`auto`'s chooser: quality learned apart from availability, retries to the best bet.

`auto` is this chooser with the `Pacing` admission rule (banditlb.admission.pacing),
and it holds an id for capacity rather than give it up. Why each part (the
ablations are in docs/strategies.md):
- Quality is a Beta posterior over the whole history of admitted attempts
  (accepted vs failed; timeouts and refused connections count as failures). A
  429 says nothing about quality, so it never touches the posterior.
- Drift: the posterior is reset to the recent window only when that window's
  success count is implausible under the long-run estimate (a z-test at
  `drift_z` standard deviations), so stationary fleets keep their history.
- Selection is Thompson sampling over quality among the ready servers, without
  the "skip what was tried" habit: attempts are independent draws, so the best
  server stays the best bet after one of its failures.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from banditlb.outcomes import ACCEPTED, RATE_LIMITED, Outcome
from banditlb.strategies.base import Chooser, Context
from banditlb.strategies.posterior import BetaPosteriors


class AutoQuality(Chooser):
    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, drift_window: int = 40, drift_z: float = 4.0,
                 free_attempts: int = 3, skip_tried: bool = False):
        super().__init__(n_servers, seed=seed)
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta
        self.drift_window, self.drift_z = drift_window, drift_z
        self.free_attempts, self.skip_tried = free_attempts, skip_tried
        """skip_tried: the write-up's habit, an ablation switch (drift_z=inf turns drift off)."""
        self.posterior = BetaPosteriors(n_servers, seed, prior_alpha, prior_beta)
        self.recent = [deque(maxlen=drift_window) for _ in range(n_servers)]
        self.resets = [0] * n_servers

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        if self.skip_tried and ctx.attempt < self.free_attempts and ctx.tried:
            ready = [s for s in ready if s not in ctx.tried] or ready
        return self.posterior.best_of(ready)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        if outcome is RATE_LIMITED:
            return
        won = outcome is ACCEPTED
        self.posterior.add(server, won)
        self.recent[server].append(won)
        self._check_drift(server)

    def _check_drift(self, server: int) -> None:
        window = self.recent[server]
        if len(window) < self.drift_window:
            return
        p = self.posterior.mean(server)
        n = len(window)
        wins = sum(window)
        if abs(wins - p * n) > self.drift_z * math.sqrt(max(p * (1 - p), 1e-6) * n):
            self.posterior.set(server, self.prior_alpha + wins, self.prior_beta + n - wins)
            window.clear()
            self.resets[server] += 1

    def quality(self, server: int, now: float) -> float:
        return self.posterior.mean(server)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), "drift_resets": self.resets}
