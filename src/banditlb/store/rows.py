"""The two row shapes the store accepts: one upstream attempt, one client-side request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt of one id at one upstream, as the balancer saw it.

    ts is unix time in seconds; attempt_number is 1-based; request_complete is true on
    the last attempt of the request, request_success true on that attempt if accepted.
    """

    run_id: int
    request_number: int
    attempt_number: int
    request_id: str
    upstream: str
    port: int
    outcome: str
    status: int | None
    latency_ms: float
    ts: float
    request_complete: bool
    request_success: bool


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request as the client (the harness) saw it: final status and total latency."""

    request_number: int
    request_id: str
    status: int
    latency_ms: float
    ts: float
    attempts: int | None
