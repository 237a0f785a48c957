"""Thompson sampling as in the original write-up: v4, v5 (flattened early), and the
quality half of v6-v8.

All keep a Beta-Bernoulli posterior per server. Timeouts and refused
connections are failures. v4 and v5 learn a 429 as a failure, like the
original; `ThompsonQuality` does not: a 429 says the server is busy, not bad,
so v6-v8 leave it to their admission rule (a mask or a block).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from banditlb.outcomes import Outcome
from banditlb.strategies.base import Context, RetryHabit
from banditlb.strategies.counts import Tally
from banditlb.strategies.posterior import BetaPosteriors


class Thompson(RetryHabit):
    """v4: sample each candidate's posterior, go with the highest draw."""

    rate_limit_is_failure: ClassVar[bool] = True

    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, free_attempts: int = 3):
        super().__init__(n_servers, seed=seed)
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta
        self.free_attempts = free_attempts
        self.posterior = BetaPosteriors(n_servers, seed, prior_alpha, prior_beta)
        self.tally = Tally(n_servers, rate_limit_is_failure=self.rate_limit_is_failure)

    def explore(self, candidates: Sequence[int], ctx: Context) -> int:
        return self.posterior.best_of(candidates)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        won = self.tally.add(server, outcome)
        if won is not None:
            self.learn(server, won, now)

    def learn(self, server: int, won: bool, now: float) -> None:
        """One outcome that says something about the server's quality."""
        self.posterior.add(server, won)

    def quality(self, server: int, now: float) -> float:
        return self.posterior.mean(server)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), **self.tally.as_dict(), **self.posterior.as_dict()}


class ThompsonQuality(Thompson):
    """v6 and v8's chooser: v4 without learning a 429 as a failure."""

    rate_limit_is_failure = False


class ThompsonModified(Thompson):
    """v5: early attempts of an id sample flattened posteriors, so a server that
    failed a little is still given a chance; plain Thompson afterwards.

    At attempt k < flat_attempts: variance scale v = variance_scale * scale_decay**k;
    with total = alpha + beta, factor = max(min_total, total / v) / total multiplies
    alpha and beta, each floored at 1 so that no flattened shape piles up at 0 or 1.
    """

    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, free_attempts: int = 3, flat_attempts: int = 3,
                 variance_scale: float = 4.0, scale_decay: float = 0.5,
                 min_total: float = 2.0):
        super().__init__(n_servers, seed=seed, prior_alpha=prior_alpha,
                         prior_beta=prior_beta, free_attempts=free_attempts)
        if variance_scale <= 0 or scale_decay <= 0 or min_total <= 0:
            raise ValueError("variance_scale, scale_decay and min_total must be > 0")
        self.flat_attempts = flat_attempts
        self.variance_scale, self.scale_decay = variance_scale, scale_decay
        self.min_total = min_total

    def flattened(self, server: int, attempt: int) -> tuple[float, float]:
        """The (alpha, beta) sampled for `server` at this attempt of an id."""
        return self.flatten(self.posterior.alpha[server], self.posterior.beta[server], attempt)

    def flatten(self, alpha: float, beta: float, attempt: int) -> tuple[float, float]:
        total = alpha + beta
        scale = self.variance_scale * self.scale_decay ** attempt
        factor = max(self.min_total, total / scale) / total
        return max(1.0, alpha * factor), max(1.0, beta * factor)

    def explore(self, candidates: Sequence[int], ctx: Context) -> int:
        attempt = ctx.attempt
        if attempt >= self.flat_attempts:
            return super().explore(candidates, ctx)
        return self.posterior.best_of_shaped(candidates, attempt,
                                             lambda a, b: self.flatten(a, b, attempt))
