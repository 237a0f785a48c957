"""In-memory counters of one run: what /stats, /metrics and the dashboard report.

Plain integers bumped on the request path (no locks, no I/O: the balancer runs on
one event loop); readers build their views from them when asked.
"""

from __future__ import annotations

from banditlb.attempts import OK, UNAVAILABLE, RouteResult
from banditlb.balancer.histogram import ATTEMPT_BOUNDS_MS, REQUEST_BOUNDS_MS, Histogram
from banditlb.outcomes import Attempt, Outcome
from banditlb.rules import Rules

REQUEST_RESULTS = ("ok", "gave_up", "unavailable", "rejected")
"""Request results as Prometheus labels; "rejected" is bad input answered 4xx."""

_OUTCOME_FIELD = {
    Outcome.ACCEPTED: "accepted",
    Outcome.FAILED: "failed",
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.TIMEOUT: "timeouts",
    Outcome.CONN_ERROR: "conn_errors",
}


class ServerCounters:
    """Attempts at one upstream, by outcome, and their latency."""

    __slots__ = ("attempts", "accepted", "failed", "rate_limited", "timeouts", "conn_errors",
                 "latency", "field_problems")

    def __init__(self):
        self.attempts = self.accepted = self.failed = 0
        self.rate_limited = self.timeouts = self.conn_errors = 0
        self.latency = Histogram(ATTEMPT_BOUNDS_MS)
        self.field_problems: dict[str, int] = {}
        """Malformed or absurd rate-limit fields the upstream sent (ignored or capped), by
        field name."""

    def add(self, attempt: Attempt) -> None:
        self.attempts += 1
        limits = attempt.limits
        if limits is not None and limits.problems:
            problems = self.field_problems
            for name in limits.problems:
                problems[name] = problems.get(name, 0) + 1
        field = _OUTCOME_FIELD[attempt.outcome]
        setattr(self, field, getattr(self, field) + 1)
        self.latency.add(attempt.latency_s * 1000.0)

    def by_outcome(self) -> dict[str, int]:
        return {outcome.value: getattr(self, field) for outcome, field in _OUTCOME_FIELD.items()}


class RunCounters:
    """Totals for one run of one strategy; replaced (so reset) when the run changes."""

    def __init__(self, n_servers: int, rules: Rules):
        self.rules = rules
        self.requests = self.accepted = self.gave_up = self.unavailable = self.rejected = 0
        self.attempts = self.penalized = self.rate_limited = 0
        self.waited = self.turned_away = 0
        """Ids that waited for capacity; ids answered 503 because too many waited."""
        self.servers = [ServerCounters() for _ in range(n_servers)]
        self.latency = Histogram(REQUEST_BOUNDS_MS)
        self.wait = Histogram(REQUEST_BOUNDS_MS)
        """Time each id that waited spent waiting, in ms."""

    def attempt(self, attempt: Attempt) -> None:
        self.attempts += 1
        self.rate_limited += attempt.outcome is Outcome.RATE_LIMITED
        self.servers[attempt.server].add(attempt)

    def finished(self, result: RouteResult, latency_s: float, unavailable: bool) -> None:
        """Count one routed request (its attempts were counted as they came back)."""
        self.requests += 1
        if result.status == OK:
            self.accepted += 1
        elif unavailable or result.status == UNAVAILABLE:
            self.unavailable += 1
        else:
            self.gave_up += 1
        self.penalized += self.rules.penalized(len(result.attempts))
        self.latency.add(latency_s * 1000.0)
        if result.waited_s > 0:
            self.waited += 1
            self.wait.add(result.waited_s * 1000.0)
        self.turned_away += result.retry_after_s is not None

    @property
    def score(self) -> float:
        return self.rules.score(self.accepted, self.penalized)

    def results(self) -> dict[str, int]:
        return {"ok": self.accepted, "gave_up": self.gave_up, "unavailable": self.unavailable,
                "rejected": self.rejected}

    def summary(self) -> dict:
        """The run's totals, as stored with the run when it ends."""
        return {"requests": self.requests, "accepted": self.accepted, "gave_up": self.gave_up,
                "unavailable": self.unavailable, "rejected": self.rejected,
                "attempts": self.attempts, "penalized": self.penalized,
                "rate_limited": self.rate_limited, "waited": self.waited,
                "turned_away": self.turned_away, "score": self.score,
                "penalty_weight": self.rules.penalty_weight,
                "free_attempts": self.rules.free_attempts}

    def latency_view(self) -> dict:
        h = self.latency
        return {"bounds": list(h.bounds), "counts": h.counts, "p50": _ms(h.quantile(0.5)),
                "p99": _ms(h.quantile(0.99))}

    def waiting_view(self, waiting_now: int, max_waiting: int) -> dict:
        """Ids waiting for capacity now, how many waited and how long (ms)."""
        h = self.wait
        return {"now": waiting_now, "max": max_waiting, "waited": self.waited,
                "turned_away": self.turned_away, "p50_ms": _ms(h.quantile(0.5)),
                "p99_ms": _ms(h.quantile(0.99))}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
