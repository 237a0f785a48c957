"""The attempt loop for one id: the only place that knows the scoring rules.

Both the balancer (HTTP) and the simulator (fleet models in virtual time) drive
a `RequestRoute`: ask it for the next server, send, record the attempt, repeat
until it says stop. The policy learns inside `record`, so live and simulated
runs learn identically.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from banditlb.outcomes import ACCEPTED, Attempt
from banditlb.strategies.base import Context, Policy


@dataclass(frozen=True, slots=True)
class Rules:
    """Scoring rules and limits: +1 per accepted id, -penalty_weight per attempt
    beyond `free_attempts`."""

    free_attempts: int = 3
    penalty_weight: float = 1.0
    max_attempts: int = 10
    deadline_s: float | None = None
    attempt_timeout_s: float = 1.0

    def __post_init__(self):
        if self.free_attempts < 0 or self.max_attempts < 1:
            raise ValueError("free_attempts must be >= 0 and max_attempts >= 1")
        if self.penalty_weight < 0:
            raise ValueError("penalty_weight must be >= 0")
        if self.attempt_timeout_s <= 0 or (self.deadline_s is not None and self.deadline_s <= 0):
            raise ValueError("timeouts must be positive")


MIN_ATTEMPT_S = 0.001
"""An attempt with less time than this before the deadline is not started."""

OK, GAVE_UP, UNAVAILABLE = "ok", "gave_up", "unavailable"
NOTHING_DOWN: frozenset[int] = frozenset()

_tuple_new = tuple.__new__
"""Context(...) without the NamedTuple's Python-level __new__ (half its cost): one per attempt."""


@dataclass(slots=True)
class RouteResult:
    status: str
    """OK (accepted), GAVE_UP (attempts spent or not worth it) or UNAVAILABLE (no usable server)."""
    attempts: list[Attempt]

    @property
    def server(self) -> int | None:
        return self.attempts[-1].server if self.status == OK else None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


class RequestRoute:
    """Attempt-loop state for one id (a plain slotted class: the simulator makes one per id)."""

    __slots__ = ("policy", "rules", "started_at", "unavailable", "attempts", "_tried", "_status")

    def __init__(self, policy: Policy, rules: Rules, started_at: float,
                 unavailable: Callable[[float], frozenset[int]] | None = None):
        self.policy = policy
        self.rules = rules
        self.started_at = started_at
        self.unavailable = unavailable
        self.attempts: list[Attempt] = []
        self._tried: tuple[int, ...] = ()
        self._status: str | None = None
        policy.begin_request(started_at)

    @property
    def done(self) -> bool:
        return self._status is not None

    def next_server(self, now: float) -> int | None:
        """The server for the next attempt, or None when the loop is over."""
        if self._status is not None:
            return None
        n = len(self.attempts)
        rules = self.rules
        deadline = rules.deadline_s
        # Less than MIN_ATTEMPT_S before the deadline counts as past it: a timer that
        # fires a hair early must not buy an attempt with no time to answer.
        if n >= rules.max_attempts or (
                deadline is not None and now >= self.started_at + deadline - MIN_ATTEMPT_S):
            return self._finish(GAVE_UP, now)
        down = self.unavailable(now) if self.unavailable else NOTHING_DOWN
        policy = self.policy
        pick = policy.select(_tuple_new(Context, (now, n, self._tried, down)))
        if pick is None:
            return self._finish(GAVE_UP if n else UNAVAILABLE, now)
        if n >= rules.free_attempts and not policy.estimate(pick, now) > rules.penalty_weight:
            return self._finish(GAVE_UP, now)
        return pick

    def timeout_for_next(self, now: float) -> float:
        """The per-attempt timeout, shortened so the attempt cannot overrun the deadline."""
        if self.rules.deadline_s is None:
            return self.rules.attempt_timeout_s
        left = self.started_at + self.rules.deadline_s - now
        return max(0.0, min(self.rules.attempt_timeout_s, left))

    def record(self, attempt: Attempt) -> None:
        """Count one finished attempt and let the policy learn from it."""
        self.attempts.append(attempt)
        server, outcome, latency_s = attempt.server, attempt.outcome, attempt.latency_s
        self._tried += (server,)
        end = attempt.started_at + latency_s
        self.policy.observe(server, outcome, end, latency_s, attempt.retry_after_s)
        if outcome is ACCEPTED:
            self._finish(OK, end)

    @property
    def status(self) -> str | None:
        """OK, GAVE_UP or UNAVAILABLE once the loop is over, None while it runs."""
        return self._status

    def result(self) -> RouteResult:
        return RouteResult(self._status or GAVE_UP, self.attempts)

    def _finish(self, status: str, now: float) -> None:
        self._status = status
        self.policy.end_request(now, status == OK, len(self.attempts))
        return None


Send = Callable[[int, float], Awaitable[Attempt]]
"""Async sender: (server, timeout_s) -> the finished Attempt (never raises)."""


async def route(policy: Policy, rules: Rules, send: Send, clock: Callable[[], float],
                unavailable: Callable[[float], frozenset[int]] | None = None) -> RouteResult:
    """Drive one id through the attempt loop over a real transport."""
    state = RequestRoute(policy, rules, clock(), unavailable)
    while (server := state.next_server(clock())) is not None:
        state.record(await send(server, state.timeout_for_next(clock())))
    return state.result()


def score(results: list[RouteResult], rules: Rules) -> float:
    """The grader's score for finished ids, from the router's own records."""
    total = 0.0
    for r in results:
        total += r.status == OK
        total -= rules.penalty_weight * max(0, len(r.attempts) - rules.free_attempts)
    return total


