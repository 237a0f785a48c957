"""Baselines every learning strategy must beat: random, round-robin, epsilon-greedy, Exp3."""

from __future__ import annotations

import math
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate

from banditlb.outcomes import ACCEPTED, Outcome
from banditlb.strategies.base import Context
from banditlb.strategies.counts import CountingPolicy


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
        rates = list(map(self.tally.rate, usable))
        best = max(rates)
        return self.rng.choice([s for s, r in zip(usable, rates, strict=True) if r == best])


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

    def probabilities(self, servers: Sequence[int]) -> list[float]:
        log_weights = [self.log_weights[s] for s in servers]
        top = max(log_weights)
        exp = math.exp
        weights = [exp(w - top) for w in log_weights]
        total = sum(weights)
        keep, uniform = 1 - self.gamma, self.gamma / len(servers)
        return [keep * w / total + uniform for w in weights]

    def select(self, ctx: Context) -> int | None:
        usable = self.usable(ctx.unavailable)
        if not usable:
            return None
        probs = self.probabilities(usable)
        # random.choices(usable, weights=probs)[0] without its checks: the same draw
        cumulative = list(accumulate(probs))
        index = bisect(cumulative, self.rng.random() * cumulative[-1], 0, len(cumulative) - 1)
        server = usable[index]
        self.picked_with[server] = probs[index]
        return server

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float,
                retry_after_s: float | None = None) -> None:
        super().observe(server, outcome, now, latency_s, retry_after_s)
        if outcome is ACCEPTED:
            self.log_weights[server] += self.gamma / (self.picked_with[server] * self.n)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now),
                "probabilities": [round(p, 4) for p in self.probabilities(list(range(self.n)))]}
