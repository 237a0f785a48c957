"""Behaviour of one upstream as plain objects: every method takes `now` (seconds).

These models never read the clock and own their RNG streams, so the live fleet
and the virtual-time simulator get identical answers for the same seed and the
same arrival sequence.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import NamedTuple


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


class NoLimit:
    """A server without a rate limit."""

    def admit(self, now: float) -> bool:
        return True

    def peek(self, now: float) -> bool:
        return True

    def retry_after(self, now: float) -> float:
        return 0.0

    def state(self, now: float) -> dict:
        return {"kind": "none"}


class TokenBucket:
    """Fixed rate limit: `rate` tokens per second, at most `burst` saved up."""

    kind = "token_bucket"

    def __init__(self, rate: float, burst: float):
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.burst = float(burst)
        self.tokens = float(burst)
        self._rate = float(rate)
        self._last = 0.0

    def rate(self, now: float) -> float:
        return self._rate

    def _refill(self, now: float) -> None:
        if now > self._last:
            gain = self._gain(self._last, now)  # first: a collapse drains the saved tokens
            self.tokens = min(self.burst, self.tokens + gain)
            self._last = now

    def _gain(self, start: float, end: float) -> float:
        return self._rate * (end - start)

    def admit(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def peek(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1.0

    def retry_after(self, now: float) -> float:
        """Seconds until one token is back at the current rate."""
        self._refill(now)
        rate = self.rate(now)
        return max(0.0, (1.0 - self.tokens) / rate) if rate > 0 else 1.0

    def state(self, now: float) -> dict:
        self._refill(now)
        return {"kind": self.kind, "rate": self.rate(now), "burst": self.burst,
                "tokens": round(self.tokens, 3)}


@dataclass
class PenaltyBox:
    """A server hammered while limited stays 429 for a cooldown that doubles per offence."""

    strikes_to_box: int = 3
    strike_window_s: float = 1.0
    base_s: float = 2.0
    max_s: float = 16.0
    forgive_after_s: float = 30.0
    boxed_until: float = -math.inf
    offences: int = 0
    _strikes: list[float] = field(default_factory=list)
    _last_release: float = -math.inf

    def boxed(self, now: float) -> bool:
        return now < self.boxed_until

    def strike(self, now: float) -> None:
        """Record a request refused for lack of capacity; box the server on too many."""
        if now - self._last_release > self.forgive_after_s and not self.boxed(now):
            self.offences = 0
        self._strikes = [t for t in self._strikes if now - t < self.strike_window_s]
        self._strikes.append(now)
        if len(self._strikes) >= self.strikes_to_box:
            cooldown = min(self.max_s, self.base_s * 2.0 ** min(self.offences, 32))
            self.boxed_until = max(self.boxed_until, now + cooldown)
            self._last_release = self.boxed_until
            self.offences += 1
            self._strikes.clear()


class MovingLimit(TokenBucket):
    """Rate limit whose capacity moves: a sinusoidal refill rate, periodic collapse
    windows where capacity drops to zero, and a penalty box for hammering."""

    kind = "moving"

    def __init__(self, base_rate: float, burst: float, amplitude: float = 0.5,
                 period_s: float = 30.0, phase: float = 0.0,
                 collapse_every_s: float = 0.0, collapse_duration_s: float = 0.0,
                 collapse_offset_s: float = 0.0, box: PenaltyBox | None = None):
        super().__init__(base_rate, burst)
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude must be within [0, 1] so the rate never goes negative")
        if collapse_every_s and not 0 < collapse_duration_s < collapse_every_s:
            raise ValueError("collapse_duration_s must be within (0, collapse_every_s)")
        self.amplitude = amplitude
        self.period_s = period_s
        self.phase = phase
        self.collapse_every_s = collapse_every_s
        self.collapse_duration_s = collapse_duration_s
        self.collapse_offset_s = collapse_offset_s
        self.box = box or PenaltyBox()
        self._omega = 2 * math.pi / period_s

    def rate(self, now: float) -> float:
        if self.collapsed(now):
            return 0.0
        return self._rate * (1 + self.amplitude * math.sin(self._omega * now + self.phase))

    def _last_collapse_start(self, now: float) -> float | None:
        if not self.collapse_every_s or now < self.collapse_offset_s:
            return None
        k = math.floor((now - self.collapse_offset_s) / self.collapse_every_s)
        return self.collapse_offset_s + k * self.collapse_every_s

    def collapsed(self, now: float) -> bool:
        start = self._last_collapse_start(now)
        return start is not None and now < start + self.collapse_duration_s

    def _gain(self, start: float, end: float) -> float:
        # Capacity is drained by a collapse: count only what refills after the last one.
        collapse = self._last_collapse_start(end)
        if collapse is not None and collapse + self.collapse_duration_s > start:
            self.tokens = 0.0
            start = max(start, collapse + self.collapse_duration_s)
            if end <= start:
                return 0.0
        w = self._omega
        wave = (math.cos(w * start + self.phase) - math.cos(w * end + self.phase)) / w
        return self._rate * ((end - start) + self.amplitude * wave)

    def admit(self, now: float) -> bool:
        if self.box.boxed(now):
            self.box.strike(now)
            return False
        if super().admit(now):
            return True
        self.box.strike(now)
        return False

    def peek(self, now: float) -> bool:
        return not self.box.boxed(now) and super().peek(now)

    def retry_after(self, now: float) -> float:
        if self.box.boxed(now):
            return self.box.boxed_until - now
        start = self._last_collapse_start(now)
        if start is not None and self.collapsed(now):
            return start + self.collapse_duration_s - now + 1.0 / max(self._rate, 1e-9)
        return super().retry_after(now)

    def state(self, now: float) -> dict:
        return {**super().state(now), "collapsed": self.collapsed(now),
                "boxed": self.box.boxed(now), "boxed_until": self.box.boxed_until
                if self.box.boxed(now) else None, "offences": self.box.offences}


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


def wire_retry_after(seconds: float) -> int:
    """Retry-After as it goes on the wire: whole seconds (RFC 9110 delta-seconds), rounded
    up so a client that believes it is not refused again. The live fleet sends this and
    the simulator hands it over unchanged, so both mean the same."""
    return max(0, math.ceil(seconds))


class ServerModel:
    """One upstream: fault, then rate limit (fast 429, no success draw), then success draw."""

    def __init__(self, port: int, success: SuccessModel, limiter, latency: LatencyModel,
                 retry_after: bool = False, fault: str | None = None):
        if fault not in (None, "refuse", "hang"):
            raise ValueError(f"unknown fault {fault!r}")
        self.port = port
        self.success = success
        self.limiter = limiter
        self.latency = latency
        self.send_retry_after = retry_after
        self.fault = fault

    def handle(self, now: float) -> Reply:
        if self.fault is not None:
            return REFUSED if self.fault == "refuse" else HUNG
        if not self.limiter.admit(now):
            if self.send_retry_after:
                return Reply(429, FAST_REPLY_S,
                             retry_after_s=wire_retry_after(self.limiter.retry_after(now)))
            return TOO_MANY
        status = 200 if self.success.draw(now) else 500
        return _tuple_new(Reply, (status, self.latency.draw(), None, None))

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

    def truth(self, now: float) -> dict:
        return {"port": self.port, "success": self.true_success(now), "fault": self.fault,
                "retry_after": self.send_retry_after, "limiter": self.limiter.state(now)}
