"""v1 `explore-first`: a discovery phase that spreads attempts where the least is
known, then plain exploitation of the best observed success rate.

Belief per server: Beta(successes + 1, failures + 1) (429s count as failures,
as in the original). During the first `discovery_requests` ids (counted by
begin_request) a server never tried goes first, else the highest Beta variance.
"""

from __future__ import annotations

from collections.abc import Sequence

from banditlb.outcomes import Outcome
from banditlb.strategies.base import Context, RetryHabit
from banditlb.strategies.counts import Tally
from banditlb.strategies.posterior import BetaPosteriors


class ExploreFirst(RetryHabit):

    def __init__(self, n_servers: int, *, seed: int = 0, discovery_requests: int = 50,
                 free_attempts: int = 3):
        super().__init__(n_servers, seed=seed)
        self.discovery_requests = discovery_requests
        self.free_attempts = free_attempts
        self.tally = Tally(n_servers, rate_limit_is_failure=True)
        self.posterior = BetaPosteriors(n_servers, seed)

    @property
    def discovering(self) -> bool:
        return self.requests <= self.discovery_requests

    def explore(self, candidates: Sequence[int], ctx: Context) -> int:
        if not self.discovering:
            return max(candidates, key=self.tally.rate)
        untried = [s for s in candidates if self.tally.tries(s) == 0]
        return untried[0] if untried else max(candidates, key=self.posterior.variance)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        self.posterior.add(server, self.tally.add(server, outcome))

    def quality(self, server: int, now: float) -> float:
        return self.posterior.mean(server)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), **self.tally.as_dict(),
                "discovering": self.discovering}
