"""Baselines every learning strategy must beat: random and round-robin."""

from __future__ import annotations

from banditlb.policies.base import Context
from banditlb.policies.counts import CountingPolicy


class RandomChoice(CountingPolicy):
    """Uniform over the usable servers: what a strategy knows is worth nothing."""

    name = "random"
    alias = "random"

    def __init__(self, n_servers: int, *, seed: int = 0):
        super().__init__(n_servers, seed=seed)

    def select(self, ctx: Context) -> int | None:
        usable = self.usable(ctx.unavailable)
        return self.rng.choice(usable) if usable else None


class RoundRobin(CountingPolicy):
    """Servers in turn, skipping unusable ones: the classic load balancer."""

    name = "round-robin"
    alias = "round-robin"

    def __init__(self, n_servers: int, *, seed: int = 0):
        super().__init__(n_servers, seed=seed)
        self.next_server = 0

    def select(self, ctx: Context) -> int | None:
        for step in range(self.n):
            server = (self.next_server + step) % self.n
            if server not in ctx.unavailable:
                self.next_server = (server + 1) % self.n
                return server
        return None
