"""v8 `blocking`: a 429 blocks the server, longer each time it is refused in a row.

The block lasts block_s times a multiplier that starts at 1 and doubles with
each consecutive 429 up to max_multiplier (5, 10, 20, 20 s by default); an
accepted attempt resets it. Thompson sampling picks among unblocked servers;
when all are blocked, the one whose block ends first. A 429 is not a failure.
"""

from __future__ import annotations

from banditlb.strategies.habit import Quarantine
from banditlb.strategies.thompson import Thompson


class Blocking(Thompson):
    name = "v8"
    alias = "blocking"
    rate_limit_is_failure = False

    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, free_attempts: int = 3, block_s: float = 5.0,
                 max_multiplier: float = 4.0):
        super().__init__(n_servers, seed=seed, prior_alpha=prior_alpha,
                         prior_beta=prior_beta, free_attempts=free_attempts)
        if block_s < 0 or max_multiplier < 1:
            raise ValueError("block_s must be >= 0 and max_multiplier >= 1")
        self.block_s, self.max_multiplier = block_s, max_multiplier
        self.multiplier = [1.0] * n_servers
        self.quarantine = Quarantine(n_servers)

    def on_rate_limited(self, server: int, now: float) -> None:
        self.quarantine.hold(server, now + self.block_s * self.multiplier[server])
        self.multiplier[server] = min(self.max_multiplier, self.multiplier[server] * 2)

    def learn(self, server: int, won: bool, now: float) -> None:
        super().learn(server, won, now)
        if won:
            self.multiplier[server] = 1.0

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), "blocked_until": self.quarantine.as_list(now),
                "block_multiplier": list(self.multiplier)}
