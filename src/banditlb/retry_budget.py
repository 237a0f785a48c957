"""A retry budget: retries at most a share of the requests over a sliding window.

When every upstream fails at once, retrying each request multiplies the load on a
fleet that is already down (Envoy's retry budgets, Finagle's RetryBudget answer
the same). The router asks before each attempt beyond an id's first; beyond the
budget the id ends with what it has. A minimum per window keeps a quiet pool able
to retry at all. Time comes in, as everywhere in the decision core.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

DEFAULT_RETRY_BUDGET_PCT = 20.0
"""Envoy's default retry budget: retries up to 20% of the requests."""
DEFAULT_MIN_RETRIES = 10
WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class RetryBudgetConfig:
    percent: float = DEFAULT_RETRY_BUDGET_PCT
    """Retries allowed per 100 requests in the window."""
    min_retries: int = DEFAULT_MIN_RETRIES
    """Retries always allowed per window, however few the requests."""
    window_s: float = WINDOW_S

    def __post_init__(self):
        if not self.percent >= 0 or self.min_retries < 0 or not self.window_s > 0:
            raise ValueError("retry budget: percent and min_retries must be >= 0, "
                             "window_s > 0")


class RetryBudget:
    __slots__ = ("config", "_requests", "_retries", "denied")

    def __init__(self, config: RetryBudgetConfig):
        self.config = config
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self.denied = 0
        """Retries refused since the start: each ended an id early."""

    def request(self, now: float) -> None:
        self._requests.append(now)

    def allows_retry(self, now: float) -> bool:
        """Whether one more retry fits; counts it when it does, counts a denial if not."""
        horizon = now - self.config.window_s
        for stamps in (self._requests, self._retries):
            while stamps and stamps[0] < horizon:
                stamps.popleft()
        allowed = max(self.config.min_retries,
                      self.config.percent / 100.0 * len(self._requests))
        if len(self._retries) < allowed:
            self._retries.append(now)
            return True
        self.denied += 1
        return False
