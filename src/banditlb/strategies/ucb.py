"""v2 `ucb` (UCB1) and v3 `ucb-modified`.

Index = observed success rate + sqrt(c * ln t / n), t = attempts observed in
total, n = attempts at the server; a server never tried goes first. 429s are
failures, as in the original. v3 explores harder while an id is within its
free attempts (c_free) and ranks by a mild index past them (c_after).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from banditlb.strategies.base import Context, RetryHabit
from banditlb.strategies.counts import CountingChooser


class UCB(CountingChooser, RetryHabit):
    """v2: UCB1 with exploration constant c."""

    def __init__(self, n_servers: int, *, seed: int = 0, c: float = 2.0,
                 free_attempts: int = 3):
        super().__init__(n_servers, seed=seed)
        if c < 0:
            raise ValueError("c must be >= 0")
        self.c = c
        self.free_attempts = free_attempts

    def best_index(self, servers: Sequence[int], c: float) -> int:
        """The server with the highest index; the first never tried, if any."""
        successes, failures = self.tally.successes, self.tally.failures
        bonus = c * math.log(self.tally.total) if self.tally.total else 0.0
        best, top = servers[0], -math.inf
        for s in servers:
            n = successes[s] + failures[s]
            if n == 0:
                return s
            value = successes[s] / n + math.sqrt(bonus / n)
            if value > top:
                best, top = s, value
        return best

    def explore(self, candidates: Sequence[int], ctx: Context) -> int:
        return self.best_index(candidates, self.c)

class UCBModified(UCB):
    """v3: exploration constant c_free within the free attempts, c_after past them
    (where v1-v8 otherwise take the best estimate, v3 keeps its mild index)."""

    def __init__(self, n_servers: int, *, seed: int = 0, c_free: float = 3.0,
                 c_after: float = 1.0, free_attempts: int = 3):
        super().__init__(n_servers, seed=seed, c=c_free, free_attempts=free_attempts)
        if c_after < 0:
            raise ValueError("c_after must be >= 0")
        self.c_free, self.c_after = c_free, c_after

    def exploit(self, ready: Sequence[int], ctx: Context) -> int:
        return self.best_index(ready, self.c_after)
