"""v7 `sliding-window`'s chooser: Thompson over each server's last `window` outcomes,
so a server whose quality changes is re-judged on recent evidence only. 429s never
enter the window (v7's admission rule masks the server, as v6's does)."""

from __future__ import annotations

from collections import deque

from banditlb.strategies.thompson import ThompsonQuality


class SlidingWindow(ThompsonQuality):
    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, free_attempts: int = 3, window: int = 30):
        super().__init__(n_servers, seed=seed, prior_alpha=prior_alpha,
                         prior_beta=prior_beta, free_attempts=free_attempts)
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self.recent = [deque(maxlen=window) for _ in range(n_servers)]
        self.recent_wins = [0] * n_servers

    def learn(self, server: int, won: bool, now: float) -> None:
        recent = self.recent[server]
        if len(recent) == self.window:
            self.recent_wins[server] -= recent[0]
        recent.append(won)
        self.recent_wins[server] += won
        wins = self.recent_wins[server]
        self.posterior.set(server, self.prior_alpha + wins,
                           self.prior_beta + len(recent) - wins)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), "window_outcomes": [len(r) for r in self.recent]}
