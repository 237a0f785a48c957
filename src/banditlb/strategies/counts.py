"""Per-server attempt counts, and the choosers whose belief is just the observed rate."""

from __future__ import annotations

from banditlb.outcomes import ACCEPTED, RATE_LIMITED, Outcome
from banditlb.strategies.base import Chooser

NO_DATA_RATE = 0.5
"""Estimate for a server never tried: no evidence either way."""


class Tally:
    """What happened at each server.

    `failures` holds what the strategy learns as failed: timeouts and refused
    connections always, 429s only when `rate_limit_is_failure` (the original
    write-up's v1-v5 and the baselines); `rate_limited` counts every 429.
    """

    __slots__ = ("successes", "failures", "rate_limited", "rate_limit_is_failure", "total")

    def __init__(self, n_servers: int, *, rate_limit_is_failure: bool):
        self.successes = [0] * n_servers
        self.failures = [0] * n_servers
        self.rate_limited = [0] * n_servers
        self.rate_limit_is_failure = rate_limit_is_failure
        self.total = 0
        """Outcomes counted, at every server."""

    def add(self, server: int, outcome: Outcome) -> bool | None:
        """Count one outcome: True if learned as a success, False as a failure,
        None for a 429 that is not a failure for this strategy."""
        self.total += 1
        if outcome is ACCEPTED:
            self.successes[server] += 1
            return True
        if outcome is RATE_LIMITED:
            self.rate_limited[server] += 1
            if not self.rate_limit_is_failure:
                return None
        self.failures[server] += 1
        return False

    def tries(self, server: int) -> int:
        return self.successes[server] + self.failures[server]

    def rate(self, server: int) -> float:
        """Observed success rate; NO_DATA_RATE before any evidence."""
        n = self.successes[server] + self.failures[server]
        return self.successes[server] / n if n else NO_DATA_RATE

    def as_dict(self) -> dict:
        return {"successes": list(self.successes), "failures": list(self.failures),
                "rate_limited": list(self.rate_limited)}


class CountingChooser(Chooser):
    """A chooser that learns the observed success rate per server (429 = failure)."""

    def __init__(self, n_servers: int, *, seed: int = 0):
        super().__init__(n_servers, seed=seed)
        self.tally = Tally(n_servers, rate_limit_is_failure=True)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        self.tally.add(server, outcome)

    def quality(self, server: int, now: float) -> float:
        return self.tally.rate(server)

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), **self.tally.as_dict()}
