"""What can happen to one attempt, shared by the fleet, the router and the strategies."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from banditlb.ratelimit import Limits


class Outcome(StrEnum):
    """The result of one attempt at one upstream, as a strategy learns it."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    CONN_ERROR = "conn_error"

    @classmethod
    def from_status(cls, status: int, retry_after: bool = False) -> Outcome:
        """Map an upstream HTTP status to an outcome: 429, and a 503 that says when to come
        back (Retry-After), are capacity, not failure."""
        if 200 <= status < 300:
            return ACCEPTED
        if status == 429 or (status == 503 and retry_after):
            return RATE_LIMITED
        return FAILED


ACCEPTED, FAILED, RATE_LIMITED = Outcome.ACCEPTED, Outcome.FAILED, Outcome.RATE_LIMITED
TIMEOUT, CONN_ERROR = Outcome.TIMEOUT, Outcome.CONN_ERROR
"""The members as module names for hot paths: on Python 3.11 `Outcome.ACCEPTED` costs about
0.15 us a lookup (the enum metaclass defeats the attribute cache), a module global 0.02 us."""


class Attempt(NamedTuple):
    """One attempt of one id at one server, as recorded by the router.

    A NamedTuple rather than a frozen dataclass: the simulator makes millions."""

    server: int
    outcome: Outcome
    started_at: float
    latency_s: float
    status: int | None = None
    retry_after_s: float | None = None
    """Retry-After of a 429, in seconds."""
    limits: Limits | None = None
    """What the answer's rate-limit fields said (on every answer, not only 429s; the
    shared ratelimit.EMPTY when it had none); None when no answer came, or where no
    fields exist (the simulator)."""
