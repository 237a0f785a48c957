"""Behaviour of one upstream as plain objects: every method takes `now` (seconds).

These models never read the clock and own their RNG streams, so the live fleet
and the virtual-time simulator get identical answers for the same seed and the
same arrival sequence. The rate limiters live in `banditlb.fleet.limiters`.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import NamedTuple

from banditlb.fleet.limiters import Limiter, MovingLimit  # noqa: F401 (MovingLimit: T3's)
from banditlb.quota import Quota
from banditlb.ratelimit import format_headers


class SuccessModel:
    """Probability that an admitted request is accepted, piecewise constant in time (drift)."""

    def __init__(self, rng: random.Random, p: float, schedule: list[tuple[float, float]] = ()):
        steps = sorted(schedule)
        self._times = [0.0] + [t for t, _ in steps]
        self._values = [p] + [v for _, v in steps]
        self._rng = rng

    def p(self, now: float) -> float:
        values = self._values
        if len(values) == 1:  # no drift: skip the search (the simulator asks every attempt)
            return values[0]
        return values[bisect.bisect_right(self._times, now) - 1]

    def draw(self, now: float) -> bool:
        return self._rng.random() < self.p(now)


class LatencyModel:
    """Lognormal service time around a median, with an occasional slow tail."""

    def __init__(self, rng: random.Random, median_ms: float = 2.0, sigma: float = 0.35,
                 tail_prob: float = 0.01, tail_ms: float = 40.0):
        self._rng = rng
        self._mu = math.log(median_ms / 1000.0)
        self.sigma = sigma
        self.tail_prob = tail_prob
        self.tail_s = tail_ms / 1000.0

    def draw(self) -> float:
        rng = self._rng
        base = math.exp(rng.normalvariate(self._mu, self.sigma))  # lognormvariate, one call less
        if self.tail_prob and rng.random() < self.tail_prob:
            return base + self.tail_s * (0.5 + rng.random())
        return base


FAST_REPLY_S = 0.0003
"""429s and refusals are answered this fast: they cost the server no work."""


class Reply(NamedTuple):
    """What a server does with one request. `fault` is None, "refuse" or "hang".

    A NamedTuple rather than a frozen dataclass: the simulator makes millions."""

    status: int
    latency_s: float
    retry_after_s: float | None = None
    fault: str | None = None


REFUSED = Reply(0, FAST_REPLY_S, fault="refuse")
HUNG = Reply(0, math.inf, fault="hang")
TOO_MANY = Reply(429, FAST_REPLY_S)

_tuple_new = tuple.__new__
"""Reply(...) without the NamedTuple's Python-level __new__ (half its cost): the simulator
makes one per attempt."""


MAX_RETRY_AFTER_S = 86_400
"""The longest Retry-After a server sends (a day): a limiter that never admits again says
this rather than infinity."""


def wire_retry_after(seconds: float) -> int:
    """Retry-After as it goes on the wire: whole seconds (RFC 9110 delta-seconds), rounded
    up so a client that believes it is not refused again. The live fleet sends this and
    the simulator hands it over unchanged, so both mean the same."""
    return max(0, math.ceil(min(seconds, MAX_RETRY_AFTER_S)))


REFUSALS = frozenset({429, 503})
"""Statuses a limiter refuses with."""


class ServerModel:
    """One upstream: fault, then rate limit (fast 429, or the limiter's refusal status, no
    success draw), then success draw and service time. A limiter that counts requests in
    flight is told when each admitted one ends (now + its service time).

    `rate_limit_headers` and `rate_limit_headers_on` are the scenario's words for the
    rate-limit fields the live server adds to its answers (see banditlb.ratelimit)."""

    def __init__(self, port: int, success: SuccessModel, limiter: Limiter,
                 latency: LatencyModel, retry_after: bool = False, fault: str | None = None,
                 rate_limit_headers: str = "none", rate_limit_headers_on: str = "429"):
        if fault not in (None, "refuse", "hang"):
            raise ValueError(f"unknown fault {fault!r}")
        self.port = port
        self.success = success
        self.limiter = limiter
        self.latency = latency
        self.send_retry_after = retry_after
        self.fault = fault
        self.rate_limit_headers = rate_limit_headers
        self.rate_limit_headers_on = rate_limit_headers_on
        self._finish = limiter.finish if getattr(limiter, "tracks_finish", False) else None

    def handle(self, now: float) -> Reply:
        if self.fault is not None:
            return REFUSED if self.fault == "refuse" else HUNG
        limiter = self.limiter
        if not limiter.admit(now):
            status = limiter.refused_status
            # a 503 for want of capacity says when to come back, as overloaded servers do
            if self.send_retry_after or status == 503:
                return Reply(status, FAST_REPLY_S,
                             retry_after_s=wire_retry_after(limiter.retry_after(now)))
            return TOO_MANY
        status = 200 if self.success.draw(now) else 500
        latency = self.latency.draw()
        if self._finish is not None:
            self._finish(now + latency)
        return _tuple_new(Reply, (status, latency, None, None))

    def true_success(self, now: float) -> float:
        """The probability an attempt sent now would be accepted if admitted (0 when faulty)."""
        return 0.0 if self.fault else self.success.p(now)

    def available(self, now: float) -> bool:
        """Would the server admit a request now? Does not consume capacity."""
        return self.fault is None and self.limiter.peek(now)

    def admits_in(self, now: float) -> float:
        """Seconds until the server admits a request (0 when it would now; inf for a fault)."""
        if self.fault is not None:
            return math.inf
        if self.limiter.peek(now):
            return 0.0
        # a nanosecond late rather than a float rounding early: at that time it admits
        return max(1e-3, self.limiter.retry_after(now) + 1e-9)

    def quota(self, now: float) -> Quota:
        """What its limiter has left now (limit, remaining, reset); None fields if unknown."""
        return self.limiter.quota(now)

    def rate_limit_fields(self, reply: Reply, now: float,
                          wall_now: float) -> tuple[tuple[str, str], ...] | None:
        """The rate-limit fields of the answer to `reply`, in the server's style (the live
        fleet sends them, the simulator reads them back); None when its style is "none"
        or this answer carries none (a 200 of a server sending on refusals only). A
        refusal (429, or the 503 of a concurrency limit) says when to come back."""
        style = self.rate_limit_headers
        refused = reply.status in REFUSALS
        if style == "none" or (not refused and self.rate_limit_headers_on != "all"):
            return None
        retry_after = reply.retry_after_s
        if retry_after is None and refused:
            retry_after = wire_retry_after(self.limiter.retry_after(now))
        return tuple(format_headers(style, self.quota(now), retry_after, wall_now))

    def truth(self, now: float) -> dict:
        return {"port": self.port, "success": self.true_success(now), "fault": self.fault,
                "retry_after": self.send_retry_after, "limiter": self.limiter.state(now)}
