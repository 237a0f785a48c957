"""Rate limiters of the simulated fleet: plain objects that take `now` (seconds).

Every limiter answers the same five questions about a time it is given, never
the clock's:

- `admit(now)`: would it take a request now? Takes it (consumes capacity) if so.
- `peek(now)`: the same answer, consuming nothing.
- `retry_after(now)`: seconds until it would admit (0 when it would now).
- `state(now)`: its internals for the fleet's /truth.
- `quota(now)`: a `Quota` (limit, remaining now, seconds until remaining is back to
  the limit), with None where the class cannot know.

None draws random numbers, so the live fleet and the simulator, sending at the
same times, get the same answers. Some are wrappers around another limiter
(`PenaltyBoxed`, `Collapse`, `SlowStart`), `AllOf` combines several, and one object
may be shared by several servers (a quota per account behind several hosts). A
refill rate or a window's limit may move over time: pass a `Rate` schedule
(`Sinusoid`, `Steps`, `Daily`) instead of a number.

`build_limiter` turns a scenario's TOML table (or list of tables) into one.
"""

from __future__ import annotations

import bisect
import inspect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from banditlb.quota import Quota

INF = math.inf
EPS = 1e-9
"""Slack for float rounding: a time computed as "when it admits" must admit."""


# --- rate schedules ------------------------------------------------------------------


class Rate:
    """A non-negative value that moves with time: a refill rate (per second) or a
    window's limit (requests per window)."""


    def value(self, t: float) -> float:
        raise NotImplementedError

    def gain(self, start: float, end: float) -> float:
        """The integral of the value over [start, end]."""
        raise NotImplementedError

    def min_value(self) -> float:
        raise NotImplementedError

    def time_to_gain(self, start: float, amount: float) -> float:
        """Seconds from `start` until the integral reaches `amount` (inf if never); never
        a hair early, so a token promised at that time is there."""
        if amount <= 0:
            return 0.0
        hi = 1e-3
        while self.gain(start, start + hi) < amount:
            hi *= 2.0
            if hi > 1e7:
                return INF
        lo = 0.0
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            if self.gain(start, start + mid) >= amount:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-9:
                break
        return hi


class Constant(Rate):
    """The same value at every time."""

    def __init__(self, value: float):
        if value < 0:
            raise ValueError(f"value must be >= 0 (got {value})")
        self._value = float(value)

    def value(self, t: float) -> float:
        return self._value

    def gain(self, start: float, end: float) -> float:
        return self._value * (end - start)

    def min_value(self) -> float:
        return self._value

    def time_to_gain(self, start: float, amount: float) -> float:
        if amount <= 0:
            return 0.0
        return amount / self._value if self._value > 0 else INF


class Sinusoid(Rate):
    """base * (1 + amplitude * sin(2 pi t / period_s + phase))."""


    def __init__(self, base: float, amplitude: float = 0.5, period_s: float = 60.0,
                 phase: float = 0.0):
        if base <= 0:
            raise ValueError(f"base must be > 0 (got {base})")
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError(f"amplitude must be within [0, 1] (got {amplitude}) so the "
                             "value never goes negative")
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0 (got {period_s})")
        self.base, self.amplitude, self.period_s, self.phase = base, amplitude, period_s, phase
        self._omega = 2 * math.pi / period_s

    def value(self, t: float) -> float:
        return self.base * (1 + self.amplitude * math.sin(self._omega * t + self.phase))

    def gain(self, start: float, end: float) -> float:
        w, p = self._omega, self.phase
        wave = (math.cos(w * start + p) - math.cos(w * end + p)) / w
        return self.base * ((end - start) + self.amplitude * wave)

    def min_value(self) -> float:
        return self.base * (1 - self.amplitude)


class Steps(Rate):
    """Piecewise constant: `steps` = [[t, value], ...] from t = 0, repeating every
    `repeat_s` seconds when given (the last step lasts until the cycle ends)."""


    def __init__(self, steps: Sequence[Sequence[float]], repeat_s: float | None = None):
        try:
            pairs = [(float(t), float(v)) for t, v in steps]
        except (TypeError, ValueError) as exc:
            raise ValueError("steps must be a list of [time, value] pairs") from exc
        if not pairs or pairs[0][0] != 0.0:
            raise ValueError("steps must start at time 0, e.g. [[0.0, 3.0], [30.0, 1.0]]")
        times = [t for t, _ in pairs]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("step times must increase")
        if any(v < 0 for _, v in pairs):
            raise ValueError("step values must be >= 0")
        if repeat_s is not None and repeat_s <= times[-1]:
            raise ValueError(f"repeat_s must be beyond the last step's time ({times[-1]})")
        self.times = times
        self.values = [v for _, v in pairs]
        self.repeat_s = repeat_s
        self._prefix = [0.0]  # integral from 0 to each step's start
        for i in range(1, len(times)):
            self._prefix.append(self._prefix[-1] + self.values[i - 1] * (times[i] - times[i - 1]))
        self._cycle = (self._within(repeat_s) if repeat_s is not None else 0.0)

    def _within(self, x: float) -> float:
        i = bisect.bisect_right(self.times, x) - 1
        return self._prefix[i] + self.values[i] * (x - self.times[i])

    def _integral(self, x: float) -> float:
        if x < 0:
            return self.values[0] * x
        if self.repeat_s is None:
            return self._within(x)
        cycles = math.floor(x / self.repeat_s)
        return cycles * self._cycle + self._within(x - cycles * self.repeat_s)

    def value(self, t: float) -> float:
        if t < 0:
            return self.values[0]
        if self.repeat_s is not None:
            t = t - math.floor(t / self.repeat_s) * self.repeat_s
        return self.values[bisect.bisect_right(self.times, t) - 1]

    def gain(self, start: float, end: float) -> float:
        return self._integral(end) - self._integral(start)

    def min_value(self) -> float:
        return min(self.values)


DAILY_HOURS = (0.35, 0.3, 0.25, 0.25, 0.3, 0.4, 0.55, 0.75, 0.95, 1.1, 1.2, 1.25,
               1.3, 1.3, 1.3, 1.25, 1.2, 1.15, 1.05, 0.95, 0.8, 0.65, 0.5, 0.4)
"""Factors of the base at each hour of a day (quiet at night, busiest after noon)."""


class Daily(Rate):
    """A day's shape: base * hours[h] at each hour h, linear in between, a day lasting
    `day_s` seconds (compress it to see a day in a short run); t = 0 is `start_hour`."""


    def __init__(self, base: float, day_s: float = 86400.0,
                 hours: Sequence[float] = DAILY_HOURS, start_hour: float = 0.0):
        if base <= 0:
            raise ValueError(f"base must be > 0 (got {base})")
        if day_s <= 0:
            raise ValueError(f"day_s must be > 0 (got {day_s})")
        hours = [float(h) for h in hours]
        if len(hours) != 24 or min(hours) < 0:
            raise ValueError("hours must be 24 factors >= 0, one per hour of the day")
        if not 0 <= start_hour < 24:
            raise ValueError(f"start_hour must be within [0, 24) (got {start_hour})")
        self.base, self.day_s, self.hours, self.start_hour = base, day_s, hours, start_hour
        self._hour_s = day_s / 24
        self._prefix = [0.0]
        for i in range(24):
            self._prefix.append(self._prefix[-1] + 0.5 * (hours[i] + hours[(i + 1) % 24])
                                * self._hour_s)
        self._shift = start_hour * self._hour_s

    def _factor(self, x: float) -> tuple[int, float, float]:
        """Hour index, seconds into that hour and the factor at time-of-day x."""
        x = x - math.floor(x / self.day_s) * self.day_s
        i = min(23, int(x // self._hour_s))
        into = x - i * self._hour_s
        a, b = self.hours[i], self.hours[(i + 1) % 24]
        return i, into, a + (b - a) * into / self._hour_s

    def _integral(self, x: float) -> float:
        days = math.floor(x / self.day_s)
        i, into, f = self._factor(x)
        return days * self._prefix[24] + self._prefix[i] + 0.5 * (self.hours[i] + f) * into

    def value(self, t: float) -> float:
        return self.base * self._factor(t + self._shift)[2]

    def gain(self, start: float, end: float) -> float:
        shift = self._shift
        return self.base * (self._integral(end + shift) - self._integral(start + shift))

    def min_value(self) -> float:
        return self.base * min(self.hours)


SHAPES: dict[str, type[Rate]] = {"constant": Constant, "sinusoid": Sinusoid, "steps": Steps,
                                 "daily": Daily}


def as_rate(value: float | Rate) -> Rate:
    return value if isinstance(value, Rate) else Constant(value)


# --- the limiters --------------------------------------------------------------------


def last_window_start(now: float, offset_s: float, every_s: float) -> float | None:
    """Start of the latest of the windows at offset_s + k * every_s, None before the first."""
    if now < offset_s:
        return None
    return offset_s + math.floor((now - offset_s) / every_s) * every_s


def in_window(now: float, offset_s: float, every_s: float, duration_s: float) -> bool:
    """Whether `now` falls within `duration_s` of a window's start (a collapse)."""
    start = last_window_start(now, offset_s, every_s)
    return start is not None and now < start + duration_s


class Limiter:
    """What every limiter has; the defaults fit a limiter without outages or in-flight
    tracking."""

    kind = "?"
    refused_status = 429
    """The status of its last refusal (a concurrency limit may answer 503)."""
    tracks_finish = False
    """True when it must be told when an admitted request finishes (`finish`)."""
    has_outages = False
    """True when it has times of no capacity that end (`recovered_at`)."""
    group: str | None = None
    """The name of the group of servers sharing this object, if any."""

    def admit(self, now: float) -> bool:
        raise NotImplementedError

    def peek(self, now: float) -> bool:
        raise NotImplementedError

    def retry_after(self, now: float) -> float:
        raise NotImplementedError

    def state(self, now: float) -> dict:
        raise NotImplementedError

    def quota(self, now: float) -> Quota:
        return Quota()

    def rate(self, now: float) -> float | None:
        """The requests per second it admits at most around `now`; None when that is not a
        rate (a concurrency limit)."""
        return None

    def finish(self, end: float) -> None:
        """The request it admitted last ends at `end` (for those that track in-flight)."""

    def drain(self, now: float) -> None:
        """Lose the capacity saved up (a collapse ended): remaining drops to 0 at `now` and
        comes back the way the class refills."""

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        """After a drain at `now`: seconds to the first admit, and until full again."""
        return 0.0, 0.0

    def recovered_at(self, now: float) -> float:
        """When its latest outage ended, at or before `now` (-inf if none did)."""
        return -INF

    def _tagged(self, state: dict) -> dict:
        if self.group is not None:
            state["group"] = self.group
        return state


class NoLimit(Limiter):
    """A server without a rate limit."""

    kind = "none"

    def admit(self, now: float) -> bool:
        return True

    def peek(self, now: float) -> bool:
        return True

    def retry_after(self, now: float) -> float:
        return 0.0

    def state(self, now: float) -> dict:
        return {"kind": "none"}


class TokenBucket(Limiter):
    """`rate` tokens per second (a number or a `Rate` schedule), at most `burst` saved up."""

    kind = "token_bucket"

    def __init__(self, rate: float | Rate, burst: float):
        schedule = rate if isinstance(rate, Rate) and not isinstance(rate, Constant) else None
        if schedule is None:
            rate = rate.value(0.0) if isinstance(rate, Constant) else rate
            if rate <= 0 or burst < 1:
                raise ValueError("token bucket needs rate > 0 and burst >= 1")
        elif burst < 1:
            raise ValueError(f"burst must be >= 1 (got {burst})")
        self.burst = float(burst)
        self.tokens = float(burst)
        self._schedule = schedule
        self._rate = float(rate) if schedule is None else schedule.value(0.0)
        self._last = 0.0

    def rate(self, now: float) -> float:
        schedule = self._schedule
        return self._rate if schedule is None else schedule.value(now)

    def _refill(self, now: float) -> None:
        if now > self._last:
            gain = self._gain(self._last, now)  # first: a collapse drains the saved tokens
            self.tokens = min(self.burst, self.tokens + gain)
            self._last = now

    def _gain(self, start: float, end: float) -> float:
        schedule = self._schedule
        return self._rate * (end - start) if schedule is None else schedule.gain(start, end)

    def _time_to_gain(self, now: float, amount: float) -> float:
        schedule = self._schedule
        if schedule is None:
            return max(0.0, amount / self._rate)
        return schedule.time_to_gain(now, amount)

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
        if self._schedule is not None:
            return self._time_to_gain(now, 1.0 - self.tokens)
        rate = self.rate(now)
        return max(0.0, (1.0 - self.tokens) / rate) if rate > 0 else 1.0

    def quota(self, now: float) -> Quota:
        self._refill(now)
        return Quota(int(self.burst), int(math.floor(self.tokens + EPS)),
                     self._time_to_gain(now, self.burst - self.tokens))

    def drain(self, now: float) -> None:
        self._refill(now)
        self.tokens = 0.0

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        return self._time_to_gain(now, 1.0), self._time_to_gain(now, self.burst)

    def state(self, now: float) -> dict:
        self._refill(now)
        return self._tagged({"kind": self.kind, "rate": self.rate(now), "burst": self.burst,
                             "tokens": round(self.tokens, 3)})


def _window_limit(limit: float | Rate, window_s: float) -> tuple[Rate, float]:
    """A window limiter's checked limit (a number or a schedule) and window length."""
    rate = as_rate(limit)
    if isinstance(rate, Constant) and rate.value(0.0) < 1:
        raise ValueError(f"limit must be >= 1 (got {limit})")
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0 (got {window_s})")
    return rate, float(window_s)


class FixedWindow(Limiter):
    """At most `limit` requests per window of `window_s` seconds; the count starts over at
    each boundary (offset_s + k * window_s), so up to 2 x limit fit around one.
    `limit` may be a `Rate` schedule: each window takes its value at its start."""

    kind = "fixed_window"

    def __init__(self, limit: float | Rate, window_s: float, offset_s: float = 0.0):
        self._limit, self.window_s = _window_limit(limit, window_s)
        self.offset_s = float(offset_s)
        self._window: int | None = None
        self.count = 0
        self.limit = 0

    def _index(self, now: float) -> int:
        return math.floor((now - self.offset_s) / self.window_s)

    def _start(self, index: int) -> float:
        return self.offset_s + index * self.window_s

    def _limit_of(self, index: int) -> int:
        return max(0, math.floor(self._limit.value(self._start(index)) + EPS))

    def _sync(self, now: float) -> None:
        index = self._index(now)
        if self._window is None or index > self._window:
            self._window = index
            self.count = 0
            self.limit = self._limit_of(index)

    def admit(self, now: float) -> bool:
        self._sync(now)
        if self.count < self.limit:
            self.count += 1
            return True
        return False

    def peek(self, now: float) -> bool:
        self._sync(now)
        return self.count < self.limit

    def _next_open(self, now: float) -> float:
        """Seconds until the next window with a limit above zero begins."""
        for later in range(1, 10_001):
            if self._limit_of(self._window + later) > 0:
                return self._start(self._window + later) - now
        return INF

    def retry_after(self, now: float) -> float:
        self._sync(now)
        return 0.0 if self.count < self.limit else self._next_open(now)

    def quota(self, now: float) -> Quota:
        self._sync(now)
        reset = 0.0 if self.count == 0 else self._start(self._window + 1) - now
        return Quota(self.limit, max(0, self.limit - self.count), reset)

    def rate(self, now: float) -> float:
        return self._limit_of(self._index(now)) / self.window_s

    def drain(self, now: float) -> None:
        self._sync(now)
        self.count = max(self.count, self.limit)

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        wait = self._start(self._index(now) + 1) - now
        return wait, wait

    def state(self, now: float) -> dict:
        self._sync(now)
        return self._tagged({"kind": self.kind, "limit": self.limit, "window_s": self.window_s,
                             "count": self.count, "rate": self.rate(now),
                             "window_ends": self._start(self._window + 1)})


class SlidingWindow(Limiter):
    """Sliding window log: at most `limit` admitted requests in any `window_s` seconds
    (each admitted request counts until window_s after it). `limit` may be a schedule."""

    kind = "sliding_window"

    def __init__(self, limit: float | Rate, window_s: float):
        self._limit, self.window_s = _window_limit(limit, window_s)
        self.log: deque[float] = deque()

    def limit_at(self, now: float) -> int:
        return max(0, math.floor(self._limit.value(now) + EPS))

    def _purge(self, now: float) -> None:
        log, window = self.log, self.window_s
        while log and log[0] + window <= now:
            log.popleft()

    def admit(self, now: float) -> bool:
        self._purge(now)
        if len(self.log) < self.limit_at(now):
            self.log.append(max(now, self.log[-1]) if self.log else now)
            return True
        return False

    def peek(self, now: float) -> bool:
        self._purge(now)
        return len(self.log) < self.limit_at(now)

    def retry_after(self, now: float) -> float:
        self._purge(now)
        limit, used = self.limit_at(now), len(self.log)
        if used < limit:
            return 0.0
        if limit == 0:
            return self.window_s  # the limit itself is closed now: ask again later
        return max(0.0, self.log[used - limit] + self.window_s - now)

    def quota(self, now: float) -> Quota:
        self._purge(now)
        limit = self.limit_at(now)
        reset = self.log[-1] + self.window_s - now if self.log else 0.0
        return Quota(limit, max(0, limit - len(self.log)), reset)

    def rate(self, now: float) -> float:
        return self.limit_at(now) / self.window_s

    def drain(self, now: float) -> None:
        self._purge(now)
        at = max(now, self.log[-1]) if self.log else now
        self.log.extend([at] * max(0, self.limit_at(now) - len(self.log)))

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        return self.window_s, self.window_s

    def state(self, now: float) -> dict:
        self._purge(now)
        return self._tagged({"kind": self.kind, "limit": self.limit_at(now),
                             "window_s": self.window_s, "count": len(self.log),
                             "rate": self.rate(now)})


class GCRA(Limiter):
    """Generic cell rate algorithm (a leaky bucket as a meter): admits are spaced by the
    emission interval T = 1 / rate, with a tolerance of `burst` - 1 of them at once.
    `rate` may be a schedule (it must stay above zero)."""

    kind = "gcra"

    def __init__(self, rate: float | Rate, burst: int = 1):
        if not isinstance(rate, Rate) and rate <= 0:
            raise ValueError(f"rate must be > 0 (got {rate})")
        self._rate = as_rate(rate)
        if self._rate.min_value() <= 0:
            raise ValueError("rate must stay > 0 (a schedule whose lowest value is above 0)")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 (got {burst})")
        self.burst = int(burst)
        self.tat = 0.0
        """Theoretical arrival time: the bucket is full when tat <= now."""

    def rate(self, now: float) -> float:
        return self._rate.value(now)

    def _interval(self, now: float) -> tuple[float, float]:
        t = 1.0 / self._rate.value(now)
        return t, (self.burst - 1) * t

    def admit(self, now: float) -> bool:
        interval, tolerance = self._interval(now)
        tat = max(self.tat, now)
        if tat - now <= tolerance + EPS:
            self.tat = tat + interval
            return True
        return False

    def peek(self, now: float) -> bool:
        return max(self.tat, now) - now <= self._interval(now)[1] + EPS

    def retry_after(self, now: float) -> float:
        tolerance = self._interval(now)[1]
        return max(0.0, max(self.tat, now) - tolerance - now)

    def quota(self, now: float) -> Quota:
        interval, tolerance = self._interval(now)
        ahead = max(self.tat, now) - now
        remaining = math.floor((tolerance - ahead) / interval + EPS) + 1
        return Quota(self.burst, min(self.burst, max(0, remaining)), ahead)

    def drain(self, now: float) -> None:
        interval, tolerance = self._interval(now)
        self.tat = max(self.tat, now + tolerance + interval)

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        interval = self._interval(now)[0]
        return interval, interval * self.burst

    def state(self, now: float) -> dict:
        return self._tagged({"kind": self.kind, "rate": self.rate(now), "burst": self.burst,
                             "tat": self.tat})


class Concurrency(Limiter):
    """At most `max_in_flight` admitted requests in progress at once; a refusal answers
    `status` (429 or 503). The server tells it when each admitted request ends."""

    kind = "concurrency"
    tracks_finish = True

    def __init__(self, max_in_flight: int, status: int = 429):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (got {max_in_flight})")
        if status not in (429, 503):
            raise ValueError(f"status must be 429 or 503 (got {status})")
        self.max_in_flight = int(max_in_flight)
        self.refused_status = status
        self.ends: list[float] = []
        """End times of the requests in flight, sorted; inf until `finish` says."""

    def _purge(self, now: float) -> None:
        done = bisect.bisect_right(self.ends, now)
        if done:
            del self.ends[:done]

    def admit(self, now: float) -> bool:
        self._purge(now)
        if len(self.ends) < self.max_in_flight:
            self.ends.append(INF)
            return True
        return False

    def finish(self, end: float) -> None:
        ends = self.ends
        if ends and ends[-1] == INF:
            ends.pop()
            bisect.insort(ends, end)

    def peek(self, now: float) -> bool:
        self._purge(now)
        return len(self.ends) < self.max_in_flight

    def retry_after(self, now: float) -> float:
        self._purge(now)
        extra = len(self.ends) - self.max_in_flight
        return 0.0 if extra < 0 else self.ends[extra] - now

    def quota(self, now: float) -> Quota:
        # Requests in flight are no budget over a window: what is left "until the
        # reset" would be stale by the time the answer is read (it includes the
        # request being answered), so only the limit is announced.
        return Quota(self.max_in_flight, None, None)

    def state(self, now: float) -> dict:
        self._purge(now)
        return self._tagged({"kind": self.kind, "max_in_flight": self.max_in_flight,
                             "in_flight": len(self.ends), "status": self.refused_status})


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


class _Wrapper(Limiter):
    """A limiter around another one: forwards what it does not change."""

    def __init__(self, inner: Limiter):
        self.inner = inner
        self.tracks_finish = inner.tracks_finish
        self.refused_status = 429

    def finish(self, end: float) -> None:
        self.inner.finish(end)

    def drain(self, now: float) -> None:
        self.inner.drain(now)

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        return self.inner.refill_from_empty(now)

    def _refused(self, status: int = 429) -> bool:
        self.refused_status = status
        return False


class PenaltyBoxed(_Wrapper):
    """Any limiter with a penalty box: `strikes_to_box` refusals within `strike_window_s`
    box the server (429 to everything, strikes still counted) for base_s, doubling per
    offence up to max_s; forgiven after forgive_after_s of good behaviour."""

    kind = "penalty_box"
    has_outages = True

    def __init__(self, inner: Limiter, strikes_to_box: int = 3, strike_window_s: float = 1.0,
                 base_s: float = 2.0, max_s: float = 16.0, forgive_after_s: float = 30.0):
        super().__init__(inner)
        if strikes_to_box < 1 or strike_window_s <= 0 or base_s <= 0 or max_s < base_s:
            raise ValueError("penalty box needs strikes_to_box >= 1, strike_window_s > 0 and "
                             "0 < base_s <= max_s")
        self.box = PenaltyBox(strikes_to_box, strike_window_s, base_s, max_s, forgive_after_s)

    def admit(self, now: float) -> bool:
        box = self.box
        if box.boxed(now):
            box.strike(now)
            return self._refused()
        if self.inner.admit(now):
            return True
        box.strike(now)
        return self._refused(self.inner.refused_status)

    def peek(self, now: float) -> bool:
        return not self.box.boxed(now) and self.inner.peek(now)

    def retry_after(self, now: float) -> float:
        if self.box.boxed(now):
            return max(self.box.boxed_until - now, self.inner.retry_after(now))
        return self.inner.retry_after(now)

    def quota(self, now: float) -> Quota:
        q = self.inner.quota(now)
        if not self.box.boxed(now):
            return q
        wait = self.box.boxed_until - now
        return Quota(q.limit, 0, max(wait, q.reset_s) if q.reset_s is not None else wait)

    def rate(self, now: float) -> float | None:
        return 0.0 if self.box.boxed(now) else self.inner.rate(now)

    def recovered_at(self, now: float) -> float:
        until = self.box.boxed_until
        return max(until if until <= now else -INF, self.inner.recovered_at(now))

    def state(self, now: float) -> dict:
        boxed = self.box.boxed(now)
        return self._tagged({"kind": self.kind, "rate": self.rate(now), "boxed": boxed,
                             "boxed_until": self.box.boxed_until if boxed else None,
                             "offences": self.box.offences, "inner": self.inner.state(now)})


class Collapse(_Wrapper):
    """Any limiter with collapse windows: no capacity during [offset_s + k * every_s,
    + duration_s), and what it had saved is drained when each window ends."""

    kind = "collapse"
    has_outages = True

    def __init__(self, inner: Limiter, every_s: float, duration_s: float,
                 offset_s: float = 0.0):
        super().__init__(inner)
        if not 0 < duration_s < every_s:
            raise ValueError(f"duration_s must be within (0, every_s) (got {duration_s} "
                             f"and {every_s})")
        if offset_s < 0:
            raise ValueError(f"offset_s must be >= 0 (got {offset_s})")
        self.every_s, self.duration_s, self.offset_s = every_s, duration_s, offset_s
        self._drained: float | None = None

    def _last_start(self, now: float) -> float | None:
        return last_window_start(now, self.offset_s, self.every_s)

    def collapsed(self, now: float) -> bool:
        return in_window(now, self.offset_s, self.every_s, self.duration_s)

    def _sync(self, now: float) -> bool:
        """False while collapsed; else drains the inner once per ended window."""
        start = self._last_start(now)
        if start is None:
            return True
        if now < start + self.duration_s:
            return False
        if start != self._drained:
            self._drained = start
            self.inner.drain(start + self.duration_s)
        return True

    def admit(self, now: float) -> bool:
        if not self._sync(now):
            return self._refused()
        if self.inner.admit(now):
            return True
        return self._refused(self.inner.refused_status)

    def peek(self, now: float) -> bool:
        return self._sync(now) and self.inner.peek(now)

    def retry_after(self, now: float) -> float:
        if self._sync(now):
            return self.inner.retry_after(now)
        end = self._last_start(now) + self.duration_s
        return end - now + self.inner.refill_from_empty(end)[0]

    def quota(self, now: float) -> Quota:
        if self._sync(now):
            return self.inner.quota(now)
        end = self._last_start(now) + self.duration_s
        full = self.inner.refill_from_empty(end)[1]
        return Quota(self.inner.quota(now).limit, 0, None if full is None else end - now + full)

    def rate(self, now: float) -> float | None:
        return 0.0 if self.collapsed(now) else self.inner.rate(now)

    def recovered_at(self, now: float) -> float:
        start = self._last_start(now)
        ended = -INF
        if start is not None:
            if now >= start + self.duration_s:
                ended = start + self.duration_s
            elif start - self.every_s >= self.offset_s:
                ended = start - self.every_s + self.duration_s
        return max(ended, self.inner.recovered_at(now))

    def state(self, now: float) -> dict:
        return self._tagged({"kind": self.kind, "rate": self.rate(now),
                             "collapsed": self.collapsed(now), "every_s": self.every_s,
                             "duration_s": self.duration_s, "inner": self.inner.state(now)})


class SlowStart(_Wrapper):
    """After an outage of the inner limiter ends (a collapse, a penalty box), capacity
    ramps up linearly over `ramp_s`: at a fraction f of the ramp it admits at most
    f x `rate` per second (`rate` defaults to the inner's own rate), one at a time."""

    kind = "slow_start"

    def __init__(self, inner: Limiter, ramp_s: float, rate: float | None = None):
        super().__init__(inner)
        if ramp_s <= 0:
            raise ValueError(f"ramp_s must be > 0 (got {ramp_s})")
        if not inner.has_outages:
            raise ValueError("slow_start needs an inner limiter with outages to recover from "
                             "(collapse, penalty_box, moving)")
        if rate is None and inner.rate(0.0) is None:
            raise ValueError("slow_start over a limiter without a rate needs rate = ...")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 (got {rate})")
        self.has_outages = True
        self.ramp_s = ramp_s
        self.full_rate = rate
        self._from = -INF
        self._tokens = 0.0
        self._last = 0.0

    def _full(self, now: float) -> float:
        if self.full_rate is not None:
            return self.full_rate
        return self.inner.rate(now) or 0.0

    def _ramp(self, now: float) -> float | None:
        """The start of the ramp `now` is in (its gate's tokens brought up to now), or None."""
        start = self.inner.recovered_at(now)
        if start == -INF or now >= start + self.ramp_s:
            return None
        if start != self._from:
            self._from, self._tokens, self._last = start, 0.0, start
        if now > self._last:
            a, b = self._last - start, now - start
            self._tokens = min(1.0, self._tokens
                               + self._full(now) * (b * b - a * a) / (2 * self.ramp_s))
            self._last = now
        return start

    def admit(self, now: float) -> bool:
        if self._ramp(now) is None:
            if self.inner.admit(now):
                return True
            return self._refused(self.inner.refused_status)
        if self._tokens < 1.0 - EPS:
            return self._refused()
        if self.inner.admit(now):
            self._tokens -= 1.0
            return True
        return self._refused(self.inner.refused_status)

    def peek(self, now: float) -> bool:
        if self._ramp(now) is not None and self._tokens < 1.0 - EPS:
            return False
        return self.inner.peek(now)

    def retry_after(self, now: float) -> float:
        start = self._ramp(now)
        inner = self.inner.retry_after(now)
        if start is None or self._tokens >= 1.0 - EPS:
            return inner
        rate = self._full(now)
        into = now - start
        end = start + self.ramp_s - now
        if rate <= 0:
            return max(inner, end)
        wait = math.sqrt(into * into + 2 * self.ramp_s * (1.0 - self._tokens) / rate) - into
        return max(inner, min(wait, end))

    def quota(self, now: float) -> Quota:
        start = self._ramp(now)
        q = self.inner.quota(now)
        if start is None:
            return q
        gate = math.floor(self._tokens + EPS)
        remaining = gate if q.remaining is None else min(q.remaining, gate)
        end = start + self.ramp_s - now
        return Quota(q.limit, remaining, end if q.reset_s is None else max(end, q.reset_s))

    def rate(self, now: float) -> float | None:
        start = self.inner.recovered_at(now)
        inner = self.inner.rate(now)
        if start == -INF or now >= start + self.ramp_s or inner is None:
            return inner
        return min(inner, self._full(now) * (now - start) / self.ramp_s)

    def recovered_at(self, now: float) -> float:
        return self.inner.recovered_at(now)

    def state(self, now: float) -> dict:
        start = self._ramp(now)
        fraction = 1.0 if start is None else (now - start) / self.ramp_s
        return self._tagged({"kind": self.kind, "rate": self.rate(now), "ramp_s": self.ramp_s,
                             "ramping": start is not None, "fraction": round(fraction, 3),
                             "inner": self.inner.state(now)})


class AllOf(Limiter):
    """Several limiters on one server: admits only when every one would. It asks them all
    first, so a refusal by one consumes nothing of another; the refusing ones are still
    told (a penalty box counts the strike). Its quota is the tightest of theirs."""

    kind = "all"

    def __init__(self, limiters: Sequence[Limiter]):
        if not limiters:
            raise ValueError("a list of limiters needs at least one")
        self.limiters = tuple(limiters)
        self.tracks_finish = any(m.tracks_finish for m in self.limiters)
        self.has_outages = any(m.has_outages for m in self.limiters)
        self._finishing = tuple(m for m in self.limiters if m.tracks_finish)
        self.refused_status = 429

    def admit(self, now: float) -> bool:
        refusing = [m for m in self.limiters if not m.peek(now)]
        if not refusing:
            for m in self.limiters:
                m.admit(now)
            return True
        for m in refusing:
            m.admit(now)  # refuses, consuming nothing; records the refusal
        self.refused_status = refusing[0].refused_status
        return False

    def peek(self, now: float) -> bool:
        return all(m.peek(now) for m in self.limiters)

    def retry_after(self, now: float) -> float:
        return max(m.retry_after(now) for m in self.limiters)

    def quota(self, now: float) -> Quota:
        known = [q for q in (m.quota(now) for m in self.limiters) if q.remaining is not None]
        if not known:
            return Quota()
        return min(known, key=lambda q: (q.remaining, -(q.reset_s or 0.0)))

    def rate(self, now: float) -> float | None:
        rates = [r for r in (m.rate(now) for m in self.limiters) if r is not None]
        return min(rates) if rates else None

    def finish(self, end: float) -> None:
        for m in self._finishing:
            m.finish(end)

    def drain(self, now: float) -> None:
        for m in self.limiters:
            m.drain(now)

    def refill_from_empty(self, now: float) -> tuple[float, float | None]:
        pairs = [m.refill_from_empty(now) for m in self.limiters]
        fulls = [full for _, full in pairs]
        return max(first for first, _ in pairs), None if None in fulls else max(fulls)

    def recovered_at(self, now: float) -> float:
        return max(m.recovered_at(now) for m in self.limiters)

    def state(self, now: float) -> dict:
        return self._tagged({"kind": self.kind, "rate": self.rate(now),
                             "limiters": [m.state(now) for m in self.limiters]})


class MovingLimit(TokenBucket):
    """T3's limit in one object: a sinusoidal refill rate, periodic collapse windows
    where capacity drops to zero, and a penalty box for hammering. (The same shapes
    compose from `Sinusoid`, `Collapse` and `PenaltyBoxed`; this one is kept as it is so
    T3 draws what it always drew.)"""

    kind = "moving"
    has_outages = True

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
        if not self.collapse_every_s:
            return None
        return last_window_start(now, self.collapse_offset_s, self.collapse_every_s)

    def collapsed(self, now: float) -> bool:
        return bool(self.collapse_every_s) and in_window(
            now, self.collapse_offset_s, self.collapse_every_s, self.collapse_duration_s)

    def _gain(self, start: float, end: float) -> float:
        # Capacity is drained by a collapse: count only what refills after the last one.
        collapse = self._last_collapse_start(end)
        if collapse is not None and collapse + self.collapse_duration_s > start:
            self.tokens = 0.0
            start = max(start, collapse + self.collapse_duration_s)
            if end <= start:
                return 0.0
        return self._wave(start, end)

    def _wave(self, start: float, end: float) -> float:
        w = self._omega
        wave = (math.cos(w * start + self.phase) - math.cos(w * end + self.phase)) / w
        return self._rate * ((end - start) + self.amplitude * wave)

    def _time_to_gain(self, now: float, amount: float) -> float:
        """Ignoring collapses to come (the wave alone)."""
        return Sinusoid(self._rate, self.amplitude, self.period_s,
                        self.phase).time_to_gain(now, amount)

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

    def quota(self, now: float) -> Quota:
        self._refill(now)
        start = self._last_collapse_start(now)
        if start is not None and self.collapsed(now):
            end = start + self.collapse_duration_s
            return Quota(int(self.burst), 0, end - now + self._time_to_gain(end, self.burst))
        q = super().quota(now)
        if self.box.boxed(now):
            return Quota(q.limit, 0, max(q.reset_s, self.box.boxed_until - now))
        return q

    def drain(self, now: float) -> None:
        self._refill(now)
        self.tokens = 0.0

    def recovered_at(self, now: float) -> float:
        until = self.box.boxed_until
        ended = until if until <= now else -INF
        start = self._last_collapse_start(now)
        if start is not None:
            if now >= start + self.collapse_duration_s:
                ended = max(ended, start + self.collapse_duration_s)
            elif start - self.collapse_every_s >= self.collapse_offset_s:
                ended = max(ended, start - self.collapse_every_s + self.collapse_duration_s)
        return ended

    def state(self, now: float) -> dict:
        return {**super().state(now), "collapsed": self.collapsed(now),
                "boxed": self.box.boxed(now), "boxed_until": self.box.boxed_until
                if self.box.boxed(now) else None, "offences": self.box.offences}


# --- from a scenario's TOML ----------------------------------------------------------


class LimiterError(ValueError):
    """A limiter table that cannot be built; `key` says where (limiter.inner.rate)."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


KINDS: dict[str, type[Limiter]] = {
    "none": NoLimit, "token_bucket": TokenBucket, "fixed_window": FixedWindow,
    "sliding_window": SlidingWindow, "gcra": GCRA, "leaky_bucket": GCRA,
    "concurrency": Concurrency, "penalty_box": PenaltyBoxed, "collapse": Collapse,
    "slow_start": SlowStart, "moving": MovingLimit,
}
"""Limiter kinds by their TOML name (`leaky_bucket` is the GCRA under its other name)."""

SCHEDULED = {"rate", "limit"}
"""Fields that take a number or a rate schedule table {shape = ...}."""

INTEGERS = {"max_in_flight", "status", "strikes_to_box"}
"""Fields that must be whole numbers (and a GCRA's burst)."""


def _fields(cls: type) -> tuple[set[str], set[str]]:
    """Required and optional constructor fields of a class."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
              if p.kind in named]
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    optional = {p.name for p in params if p.default is not inspect.Parameter.empty}
    return required, optional


def _number(value: object, key: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LimiterError(key, f"must be a number (got {value!r})")
    if integer and value != int(value):
        raise LimiterError(key, f"must be a whole number (got {value!r})")
    return value


def _check_fields(cfg: dict, cls: type, what: str, key: str) -> None:
    required, optional = _fields(cls)
    for name in cfg:
        if name not in required | optional:
            raise LimiterError(f"{key}.{name}", f"unknown field for {what} (fields: "
                               f"{', '.join(sorted(required | optional))})")
    missing = sorted(required - set(cfg))
    if missing:
        raise LimiterError(key, f"{what} needs {', '.join(missing)}")


def build_rate(value: object, key: str) -> float | Rate:
    """A number, or a schedule table: {shape = "sinusoid" | "steps" | "daily", ...}."""
    if not isinstance(value, dict):
        return _number(value, key)
    cfg = dict(value)
    shape = cfg.pop("shape", None)
    if shape not in SHAPES:
        raise LimiterError(f"{key}.shape", f"unknown shape {shape!r} (shapes: "
                           f"{', '.join(SHAPES)})")
    cls = SHAPES[shape]
    _check_fields(cfg, cls, f"a {shape} rate", key)
    for name, v in cfg.items():
        if name not in ("steps", "hours"):  # lists, checked by the class
            _number(v, f"{key}.{name}")
    return _construct(cls, cfg, cfg, key, shape)


def build_limiter(cfg: object, groups: dict | None = None, key: str = "limiter") -> Limiter:
    """A limiter from its TOML form: a table {kind = ..., ...}, or a list of tables (all
    must admit). A table with `group = "name"` is built once per `groups` dict and shared
    by every server naming that group; every use must then be written the same."""
    if isinstance(cfg, list):
        if not cfg:
            raise LimiterError(key, 'an empty list; write {kind = "none"} for no limit')
        members = [build_limiter(c, groups, f"{key}[{i}]") for i, c in enumerate(cfg)]
        return members[0] if len(members) == 1 else AllOf(members)
    if not isinstance(cfg, dict):
        raise LimiterError(key, f"must be a table {{kind = ...}} or a list of them "
                                f"(got {cfg!r})")
    cfg = dict(cfg)
    group = cfg.pop("group", None)
    if group is not None:
        if not isinstance(group, str) or not group:
            raise LimiterError(f"{key}.group", f"must be a non-empty name (got {group!r})")
        if groups is not None and group in groups:
            shared_cfg, shared = groups[group]
            if shared_cfg != cfg:
                raise LimiterError(key, f"group {group!r} is written differently here than "
                                        "on its other servers")
            return shared
    limiter = _build_one(cfg, groups, key)
    if group is not None:
        limiter.group = group
        if groups is not None:
            groups[group] = (cfg, limiter)
    return limiter


def _build_one(cfg: dict, groups: dict | None, key: str) -> Limiter:
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    if kind is None:
        raise LimiterError(key, f"needs a kind ({', '.join(KINDS)})")
    cls = KINDS.get(kind)
    if cls is None:
        raise LimiterError(f"{key}.kind", f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    _check_fields(cfg, cls, kind, key)
    kwargs: dict = {}
    for name, value in cfg.items():
        where = f"{key}.{name}"
        if name == "inner":
            kwargs[name] = build_limiter(value, groups, where)
        elif name == "box":
            if not isinstance(value, dict):
                raise LimiterError(where, "must be a table of penalty box settings")
            box_fields = {"strikes_to_box", "strike_window_s", "base_s", "max_s",
                          "forgive_after_s"}
            for b, v in value.items():
                if b not in box_fields:
                    raise LimiterError(f"{where}.{b}", f"unknown field (fields: "
                                       f"{', '.join(sorted(box_fields))})")
                _number(v, f"{where}.{b}", integer=b in INTEGERS)
            kwargs[name] = PenaltyBox(**value)
        elif name in SCHEDULED and kind != "slow_start":
            kwargs[name] = build_rate(value, where)
        else:
            whole = name in INTEGERS or (cls is GCRA and name == "burst")
            kwargs[name] = _number(value, where, integer=whole)
    return _construct(cls, kwargs, cfg, key, kind)


def _construct(cls: type, kwargs: dict, cfg: dict, key: str, what: str):
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        name, _, rest = str(exc).partition(" ")
        if name in cfg:  # "rate must be > 0 (got -1)": the message names its field
            raise LimiterError(f"{key}.{name}", rest) from exc
        raise LimiterError(key, str(exc) if name == what else f"{what}: {exc}") from exc
