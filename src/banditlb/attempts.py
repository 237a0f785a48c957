"""The attempt loop for one id: the only place that knows the scoring rules.

Both the balancer (HTTP) and the simulator (fleet models in virtual time) drive
an `AttemptLoop`: ask it what to do (`decide`), do it, tell it the outcome
(`record`), until it says stop. A decision is one of three:
- `Send(server)`: the chooser's pick among the servers the admission layer says
  are ready (the attempt takes its capacity as it leaves);
- `Wait(until)`: no server is ready, the strategy holds, and the earliest
  expected admission falls before the id's deadline: an attempt now would be
  expected to be refused (worth the quality times a chance below one, and it
  spends a free attempt), a wait costs latency, not score;
- `STOP`: accepted, attempts spent, past the deadline, or another attempt is not
  worth its cost (past the free attempts it must be accepted with a chance above
  the penalty weight).
The strategy learns inside `record`, so live and simulated runs learn identically.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from banditlb.outcomes import ACCEPTED, TIMEOUT, Attempt
from banditlb.retry_budget import RetryBudget
from banditlb.rules import Rules
from banditlb.strategies.base import Context
from banditlb.strategies.strategy import Strategy

__all__ = ["GAVE_UP", "OK", "STOP", "UNAVAILABLE", "AttemptLoop", "RouteResult", "Rules",
           "Send", "Wait", "run_attempts"]

MIN_ATTEMPT_S = 0.001
"""An attempt with less time than this before the deadline is not started (nor waited for)."""

OK, GAVE_UP, UNAVAILABLE = "ok", "gave_up", "unavailable"

_tuple_new = tuple.__new__
"""Context(...) without the NamedTuple's Python-level __new__ (half its cost): one per attempt."""


class Send(NamedTuple):
    server: int


class Wait(NamedTuple):
    until: float


STOP = None
"""The decision to stop: the loop is over (see `AttemptLoop.status`)."""

Decision = Send | Wait | None


@dataclass(slots=True)
class RouteResult:
    status: str
    """OK (accepted), GAVE_UP (attempts spent or not worth it) or UNAVAILABLE (no usable
    server, or no room to wait: then `retry_after_s` says when capacity is expected)."""
    attempts: list[Attempt]
    waited_s: float = 0.0
    """Time the id spent waiting for capacity."""
    retry_after_s: float | None = None

    @property
    def server(self) -> int | None:
        return self.attempts[-1].server if self.status == OK else None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def judges_quality(attempt: Attempt, rules: Rules) -> bool:
    """Whether an answer says anything about the server's quality: a timeout the
    deadline cut short does not."""
    return not (attempt.outcome is TIMEOUT
                and attempt.latency_s < rules.attempt_timeout_s - 1e-6)


class AttemptLoop:
    """Attempt-loop state for one id (a plain slotted class: the simulator makes one per id)."""

    __slots__ = ("strategy", "rules", "budget", "started_at", "deadline_at", "attempts",
                 "waited_s", "retry_after_s", "_tried", "_status", "_waiting_since")

    def __init__(self, strategy: Strategy, rules: Rules, started_at: float,
                 budget: RetryBudget | None = None):
        self.strategy = strategy
        self.rules = rules
        self.budget = budget
        """The pool's retry budget, asked before every attempt beyond the first; None:
        retries are bounded by `rules` alone (the challenge contract, the simulator)."""
        if budget is not None:
            budget.request(started_at)
        self.started_at = started_at
        deadline = rules.deadline_s
        self.deadline_at = math.inf if deadline is None else started_at + deadline
        self.attempts: list[Attempt] = []
        self.waited_s = 0.0
        self.retry_after_s: float | None = None
        self._tried: tuple[int, ...] = ()
        self._status: str | None = None
        self._waiting_since: float | None = None
        strategy.chooser.begin_request(started_at)

    @property
    def done(self) -> bool:
        return self._status is not None

    @property
    def status(self) -> str | None:
        """OK, GAVE_UP or UNAVAILABLE once the loop is over, None while it runs."""
        return self._status

    def decide(self, now: float) -> Decision:
        """Send to a server, wait until a time, or stop (STOP: see `status`)."""
        if self._status is not None:
            return STOP
        if self._waiting_since is not None:
            self.waited_s += now - self._waiting_since
            self._waiting_since = None
        n = len(self.attempts)
        rules = self.rules
        # Less than MIN_ATTEMPT_S before the deadline counts as past it: a timer that
        # fires a hair early must not buy an attempt with no time to answer.
        if n >= rules.max_attempts or now >= self.deadline_at - MIN_ATTEMPT_S:
            return self._finish(GAVE_UP if n else UNAVAILABLE, now)
        strategy = self.strategy
        admission = strategy.admission
        last_chance = n >= rules.free_attempts - 1
        ready = admission.ready(now, last_chance)
        if ready:
            if strategy.weights is not None:
                ready = strategy.offered(ready)
            pick = strategy.chooser.choose(ready, _tuple_new(Context, (now, n, self._tried)))
        else:
            if strategy.hold:
                until = min(admission.next_admit(s, now, last_chance)
                            for s in range(strategy.n))
                if until < self.deadline_at - MIN_ATTEMPT_S:
                    self._waiting_since = now
                    return Wait(until)
            probes = admission.probes(now)
            if strategy.hold:  # it waited as long as it could: only a server with a chance
                probes = [s for s in probes if admission.chance(s, now) > 0.0]
            if not probes:
                return self._finish(GAVE_UP if n else UNAVAILABLE, now)
            quality = strategy.chooser.quality
            pick = max(probes, key=lambda s: (strategy.estimate(s, now), quality(s, now)))
        if n >= rules.free_attempts and not strategy.estimate(pick, now) > rules.penalty_weight:
            return self._finish(GAVE_UP, now)
        if n and self.budget is not None and not self.budget.allows_retry(now):
            return self._finish(GAVE_UP, now)
        admission.sent(pick, now)
        return Send(pick)

    def timeout_for_next(self, now: float) -> float:
        """The per-attempt timeout, shortened so the attempt cannot overrun the deadline."""
        return max(0.0, min(self.rules.attempt_timeout_s, self.deadline_at - now))

    def record(self, attempt: Attempt) -> None:
        """Count one finished attempt and let the strategy learn from it."""
        self.attempts.append(attempt)
        server, outcome, latency_s = attempt.server, attempt.outcome, attempt.latency_s
        self._tried += (server,)
        end = attempt.started_at + latency_s
        limits = attempt.limits
        self.strategy.observe(server, outcome, end, latency_s, attempt.retry_after_s,
                              None if limits is None else limits.quota,
                              judges_quality(attempt, self.rules))
        if outcome is ACCEPTED:
            self._finish(OK, end)

    def turn_away(self, now: float, until: float) -> None:
        """No room to wait: the id ends unavailable, told when capacity is expected."""
        self.retry_after_s = max(0.0, until - now)
        self._waiting_since = None  # the wait it asked for never began
        self._finish(GAVE_UP if self.attempts else UNAVAILABLE, now)

    def result(self) -> RouteResult:
        return RouteResult(self._status or GAVE_UP, self.attempts, self.waited_s,
                           self.retry_after_s)

    def _finish(self, status: str, now: float) -> None:
        self._status = status
        self.strategy.chooser.end_request(now, status == OK, len(self.attempts))
        return None


Send_ = Callable[[int, float], Awaitable[Attempt]]
"""Async sender: (server, timeout_s) -> the finished Attempt (never raises)."""
Hold = Callable[[AttemptLoop, float], Awaitable[bool]]
"""Async wait: (loop, until) -> True once it is the id's turn (at `until` or later),
False when there is no room to wait."""


async def run_attempts(loop: AttemptLoop, send: Send_, clock: Callable[[], float],
                       hold: Hold) -> RouteResult:
    """Drive one id through its attempt loop over a real transport."""
    while (decision := loop.decide(clock())) is not STOP:
        if type(decision) is Send:
            loop.record(await send(decision.server, loop.timeout_for_next(clock())))
        elif not await hold(loop, decision.until):
            loop.turn_away(clock(), decision.until)
    return loop.result()
