"""Beta posteriors per server, with Thompson draws fast enough for the hot path.

`random.betavariate` costs about 3 us a draw and numpy about 1.5 us a call,
too slow for ten servers per request, but numpy draws a batch for little more
than one call. So each server keeps pools of draws from its current posterior
(and from shapes derived from it, such as v5's flattened ones): the first draw
after an update is a single one (the busiest server changes every request),
later ones come from a batch. An update discards the server's unused draws;
they were never looked at, so every draw a decision uses is a fresh,
independent sample of the posterior as it is now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

POOL_SIZE = 32

Reshape = Callable[[float, float], tuple[float, float]]
"""(alpha, beta) of a posterior -> (alpha, beta) of the shape actually sampled."""


class BetaPosteriors:
    __slots__ = ("alpha", "beta", "_gen", "_pools", "_shaped")

    def __init__(self, n_servers: int, seed: int, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0):
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError("prior_alpha and prior_beta must be > 0")
        self.alpha = [float(prior_alpha)] * n_servers
        self.beta = [float(prior_beta)] * n_servers
        self._gen = np.random.default_rng(seed)
        # Per server: None right after an update (the next draw is a single one),
        # else the unused draws from the current posterior.
        self._pools: list[list[float] | None] = [None] * n_servers
        self._shaped: list[dict[int, list[float]]] = [{} for _ in range(n_servers)]

    def add(self, server: int, won: bool) -> None:
        if won:
            self.alpha[server] += 1.0
        else:
            self.beta[server] += 1.0
        self._pools[server] = None
        self._shaped[server].clear()

    def set(self, server: int, alpha: float, beta: float) -> None:
        self.alpha[server], self.beta[server] = alpha, beta
        self._pools[server] = None
        self._shaped[server].clear()

    def best_of(self, servers: Sequence[int]) -> int:
        """Thompson sampling: the server with the highest draw from its posterior."""
        pools = self._pools
        best, top = servers[0], -1.0
        for s in servers:
            pool = pools[s]
            draw = pool.pop() if pool else self._draw(s)
            if draw > top:
                best, top = s, draw
        return best

    def sample(self, server: int) -> float:
        """One draw from the server's current posterior."""
        pool = self._pools[server]
        return pool.pop() if pool else self._draw(server)

    def _draw(self, server: int) -> float:
        a, b = self.alpha[server], self.beta[server]
        if self._pools[server] is None:
            self._pools[server] = []
            return float(self._gen.beta(a, b))
        pool = self._gen.beta(a, b, POOL_SIZE).tolist()
        self._pools[server] = pool
        return pool.pop()

    def best_of_shaped(self, servers: Sequence[int], shape: int, reshape: Reshape) -> int:
        """Thompson sampling from shapes derived from the posteriors: `reshape` maps a
        posterior's (alpha, beta) to the shape sampled, numbered `shape` by the caller
        (one number per rule); pooled like plain draws until the posterior changes."""
        shaped = self._shaped
        best, top = servers[0], -1.0
        for s in servers:
            pool = shaped[s].get(shape)
            draw = pool.pop() if pool else self._draw_shaped(s, shape, reshape)
            if draw > top:
                best, top = s, draw
        return best

    def _draw_shaped(self, server: int, shape: int, reshape: Reshape) -> float:
        pools = self._shaped[server]
        alpha, beta = reshape(self.alpha[server], self.beta[server])
        if shape not in pools:
            pools[shape] = []
            return float(self._gen.beta(alpha, beta))
        pool = pools[shape] = self._gen.beta(alpha, beta, POOL_SIZE).tolist()
        return pool.pop()

    def mean(self, server: int) -> float:
        a = self.alpha[server]
        return a / (a + self.beta[server])

    def variance(self, server: int) -> float:
        a, b = self.alpha[server], self.beta[server]
        total = a + b
        return a * b / (total * total * (total + 1.0))

    def as_dict(self) -> dict:
        return {"alpha": list(self.alpha), "beta": list(self.beta)}
