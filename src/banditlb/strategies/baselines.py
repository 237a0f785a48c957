"""Baselines every learning strategy must beat: random, round-robin, epsilon-greedy, Exp3."""

from __future__ import annotations

import math
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate

from banditlb.outcomes import ACCEPTED, Outcome
from banditlb.strategies.base import Context
from banditlb.strategies.counts import CountingChooser


class RandomChoice(CountingChooser):
    """Uniform over the ready servers: what a strategy knows is worth nothing."""

    def __init__(self, n_servers: int, *, seed: int = 0):
        super().__init__(n_servers, seed=seed)

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        return self.rng.choice(ready)


class RoundRobin(CountingChooser):
    """Servers in turn, skipping those not ready: the classic load balancer."""

    def __init__(self, n_servers: int, *, seed: int = 0):
        super().__init__(n_servers, seed=seed)
        self.next_server = 0

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        n = self.n
        if len(ready) < n:
            ready = set(ready)
        for step in range(n):
            server = (self.next_server + step) % n
            if server in ready:
                self.next_server = (server + 1) % n
                return server
        raise ValueError("choose() needs at least one ready server")


class EpsilonGreedy(CountingChooser):
    """With probability epsilon a uniform pick, else the best observed success rate
    (ties broken at random)."""

    def __init__(self, n_servers: int, *, seed: int = 0, epsilon: float = 0.1):
        super().__init__(n_servers, seed=seed)
        if not 0 <= epsilon <= 1:
            raise ValueError("epsilon must be within [0, 1]")
        self.epsilon = epsilon

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        usable = ready
        if self.rng.random() < self.epsilon:
            return self.rng.choice(usable)
        rates = list(map(self.tally.rate, usable))
        best = max(rates)
        return self.rng.choice([s for s, r in zip(usable, rates, strict=True) if r == best])


class Exp3(CountingChooser):
    """Exp3 (Auer, Cesa-Bianchi, Freund, Schapire 2002): exponential weights over
    servers mixed with gamma uniform exploration; reward 1 for an accepted attempt,
    importance-weighted by the probability the server was picked with. Makes no
    stochastic assumption, so it tolerates servers that change adversarially."""

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

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        usable = ready
        probs = self.probabilities(usable)
        # random.choices(usable, weights=probs)[0] without its checks: the same draw
        cumulative = list(accumulate(probs))
        index = bisect(cumulative, self.rng.random() * cumulative[-1], 0, len(cumulative) - 1)
        server = usable[index]
        self.picked_with[server] = probs[index]
        return server

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        super().observe(server, outcome, now, latency_s)
        if outcome is ACCEPTED:
            self.log_weights[server] += self.gamma / (self.picked_with[server] * self.n)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now),
                "probabilities": [round(p, 4) for p in self.probabilities(list(range(self.n)))]}
