"""Baselines every learning strategy must beat: random, round-robin, epsilon-greedy, Exp3."""

from __future__ import annotations

import math

from banditlb.outcomes import ACCEPTED, Outcome
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


class EpsilonGreedy(CountingPolicy):
    """With probability epsilon a uniform pick, else the best observed success rate
    (ties broken at random)."""

    name = "epsilon-greedy"
    alias = "epsilon-greedy"

    def __init__(self, n_servers: int, *, seed: int = 0, epsilon: float = 0.1):
        super().__init__(n_servers, seed=seed)
        if not 0 <= epsilon <= 1:
            raise ValueError("epsilon must be within [0, 1]")
        self.epsilon = epsilon

    def select(self, ctx: Context) -> int | None:
        usable = self.usable(ctx.unavailable)
        if not usable:
            return None
        if self.rng.random() < self.epsilon:
            return self.rng.choice(usable)
        rate = self.tally.rate
        best = max(rate(s) for s in usable)
        return self.rng.choice([s for s in usable if rate(s) == best])


class Exp3(CountingPolicy):
    """Exp3 (Auer, Cesa-Bianchi, Freund, Schapire 2002): exponential weights over
    servers mixed with gamma uniform exploration; reward 1 for an accepted attempt,
    importance-weighted by the probability the server was picked with. Makes no
    stochastic assumption, so it tolerates servers that change adversarially."""

    name = "exp3"
    alias = "exp3"

    def __init__(self, n_servers: int, *, seed: int = 0, gamma: float = 0.1):
        super().__init__(n_servers, seed=seed)
        if not 0 < gamma <= 1:
            raise ValueError("gamma must be within (0, 1]")
        self.gamma = gamma
        self.log_weights = [0.0] * n_servers
        # The probability each server had when last picked: its importance weight.
        self.picked_with = [1.0 / n_servers] * n_servers

    def probabilities(self, servers: list[int]) -> list[float]:
        top = max(self.log_weights[s] for s in servers)
        weights = [math.exp(self.log_weights[s] - top) for s in servers]
        total = sum(weights)
        uniform = self.gamma / len(servers)
        return [(1 - self.gamma) * w / total + uniform for w in weights]

    def select(self, ctx: Context) -> int | None:
        usable = self.usable(ctx.unavailable)
        if not usable:
            return None
        probs = self.probabilities(usable)
        server = self.rng.choices(usable, weights=probs)[0]
        self.picked_with[server] = probs[usable.index(server)]
        return server

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float,
                retry_after_s: float | None = None) -> None:
        super().observe(server, outcome, now, latency_s, retry_after_s)
        if outcome is ACCEPTED:
            self.log_weights[server] += self.gamma / (self.picked_with[server] * self.n)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now),
                "probabilities": [round(p, 4) for p in self.probabilities(list(range(self.n)))]}
