"""Rate-limit answers as real APIs send them, and one parser that reads them all.

A server tells its clients what its limit has left in one of a few dialects
(`STYLES`); `format_headers` writes each of them (the fleet uses it), and
`parse_headers` reads any of them, whichever the server chose, into one `Limits`
(the balancer's client uses it on every answer). Both are pure: the wall clock
that epoch and HTTP-date forms need is an argument, `now_epoch` (Unix seconds).

The parser never trusts a value blindly. A field that is malformed (not a
number, NaN), negative, absurd (remaining above the limit, a reset beyond
`MAX_RESET_S`, an epoch or a date in the past, a date from 1970) or given twice
with different values is ignored or capped, and its name is listed in
`Limits.problems` so the caller can count it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from banditlb.quota import Quota

STYLES = ("none", "retry-after", "retry-after-date", "x-ratelimit", "x-ratelimit-epoch",
          "openai", "ietf")
"""How a server says what its limit has left (see `format_headers` for each)."""

HEADERS_ON = ("429", "all")
"""When a server sends them: on its 429s only, or on every answer."""

MAX_RESET_S = 86_400.0
"""A reset or Retry-After further away than this (a day) is capped here and reported."""

EPOCH_MIN_S = 1_000_000_000.0
"""In X-RateLimit-Reset (seconds or epoch, by server), a value this large is an epoch
(2001-09-09 onwards); one between MAX_RESET_S and this is neither a plausible wait nor
a plausible epoch (a date from 1970) and is capped and reported."""

PAST_SLACK_S = 2.0
"""An epoch or HTTP-date this little in the past is whole-second rounding or clock skew
(read as "now"); further back it is reported and ignored."""

POLICY = "default"
"""The policy name the IETF style sends."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one answer said about its server's rate limit, times relative to the answer."""

    quota: Quota | None = None
    """Limit, remaining and reset (seconds from the answer); None when no field gave any."""
    retry_after_s: float | None = None
    """Retry-After in seconds from the answer (dates converted), capped at MAX_RESET_S."""
    problems: tuple[str, ...] = ()
    """Names (lowercase) of the fields that were malformed, absurd or conflicting."""


EMPTY = Limits()
"""The answer said nothing about its limit (shared: the common case allocates nothing)."""

# field names, lowercase
RETRY_AFTER = "retry-after"
X_LIMIT, X_REMAINING, X_RESET = "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"
OAI_LIMIT, OAI_REMAINING, OAI_RESET = ("x-ratelimit-limit-requests",
                                       "x-ratelimit-remaining-requests",
                                       "x-ratelimit-reset-requests")
IETF_LIMIT, IETF_POLICY = "ratelimit", "ratelimit-policy"
OLD_LIMIT, OLD_REMAINING, OLD_RESET = "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"

NAMES = frozenset({RETRY_AFTER, X_LIMIT, X_REMAINING, X_RESET, OAI_LIMIT, OAI_REMAINING,
                   OAI_RESET, IETF_LIMIT, IETF_POLICY, OLD_LIMIT, OLD_REMAINING, OLD_RESET})
"""Every field the parser reads, lowercase."""

NAMES_BYTES = frozenset(name.encode() for name in NAMES)
"""The same as bytes, for an HTTP parser's header callback (compare `name.lower()`)."""

_LISTS = frozenset({IETF_LIMIT, IETF_POLICY})
"""Structured-field lists: several fields of one name are one list, not a conflict."""


# formatting

def format_headers(style: str, quota: Quota | None, retry_after_s: float | None,
                   now_epoch: float) -> list[tuple[str, str]]:
    """The rate-limit fields a server of `style` sends with one answer.

    `quota` is what the limit has left after this answer (None or None fields: those
    fields are left out), `retry_after_s` is set on a 429 (every style but "none" sends
    it: as an HTTP-date for "retry-after-date", in seconds for the others). Integer
    forms are whole numbers: counts rounded down, resets and waits rounded up, so a
    client that believes them is never refused early.
    """
    if style not in STYLES:
        raise ValueError(f"unknown rate-limit header style {style!r}; one of {', '.join(STYLES)}")
    headers: list[tuple[str, str]] = []
    if style == "none":
        return headers
    if retry_after_s is not None:
        if style == "retry-after-date":
            headers.append(("Retry-After", formatdate(_up(now_epoch + retry_after_s), usegmt=True)))
        else:
            headers.append(("Retry-After", str(max(0, _up(retry_after_s)))))
    if quota is None or style in ("retry-after", "retry-after-date"):
        return headers
    limit = None if quota.limit is None else max(0, math.floor(quota.limit))
    remaining = None if quota.remaining is None else max(0, math.floor(quota.remaining))
    reset = None if quota.reset_s is None else max(0.0, quota.reset_s)
    if style in ("x-ratelimit", "x-ratelimit-epoch"):
        if limit is not None:
            headers.append(("X-RateLimit-Limit", str(limit)))
        if remaining is not None:
            headers.append(("X-RateLimit-Remaining", str(remaining)))
        if reset is not None:
            at = _up(now_epoch + reset) if style == "x-ratelimit-epoch" else _up(reset)
            headers.append(("X-RateLimit-Reset", str(at)))
    elif style == "openai":
        if limit is not None:
            headers.append(("x-ratelimit-limit-requests", str(limit)))
        if remaining is not None:
            headers.append(("x-ratelimit-remaining-requests", str(remaining)))
        if reset is not None:
            headers.append(("x-ratelimit-reset-requests", format_duration(reset)))
    else:  # ietf
        if limit is not None:
            headers.append(("RateLimit-Policy", f'"{POLICY}";q={limit}'))
        if remaining is not None:
            t = "" if reset is None else f";t={_up(reset)}"
            headers.append(("RateLimit", f'"{POLICY}";r={remaining}{t}'))
    return headers


def _up(seconds: float) -> int:
    """Whole seconds, rounded up; a float a hair above a whole number stays that number."""
    return math.ceil(round(seconds, 6))


def format_duration(seconds: float) -> str:
    """A duration as LLM APIs write it (Go's time.Duration): "250ms", "1s", "6m0s",
    "1h2m3.5s"; rounded up to the millisecond."""
    ms = max(0, math.ceil(round(seconds * 1000.0, 6)))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# parsing

_NUMBER = re.compile(r"\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class _Bad(ValueError):
    """A field's value cannot be used; the field goes into problems."""


class _Capped(_Bad):
    """Too far away: use `value` (the cap) and report the field."""

    def __init__(self, value: float):
        super().__init__(value)
        self.value = value


def parse_headers(headers: Iterable[tuple[bytes | str, bytes | str]],
                  now_epoch: float) -> Limits:
    """What an answer's headers say about its server's limit, whatever their style.

    Names are case-insensitive; other headers are skipped. Times come back in seconds
    from `now_epoch` (the answer's arrival). When several styles are present, the most
    restrictive quota (least remaining) wins.
    """
    fields: dict[str, list[str]] | None = None
    for name, value in headers:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = name.lower()
        if name in NAMES:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if fields is None:
                fields = {}
            fields.setdefault(name, []).append(value.strip())
    if fields is None:
        return EMPTY
    return _Parser(fields, now_epoch).limits()


class _Parser:
    """One answer's rate-limit fields, read once; `problems` collects the bad ones."""

    def __init__(self, fields: dict[str, list[str]], now_epoch: float):
        self.fields = fields
        self.now = now_epoch
        self.problems: list[str] = []

    def bad(self, name: str) -> None:
        if name not in self.problems:
            self.problems.append(name)

    def limits(self) -> Limits:
        fields = self.fields
        retry_after = self.one(RETRY_AFTER, self.retry_after, max)
        quotas = []
        if X_LIMIT in fields or X_REMAINING in fields or X_RESET in fields:
            quotas.append(self.trio(X_LIMIT, X_REMAINING, X_RESET, self.x_reset))
        if OAI_LIMIT in fields or OAI_REMAINING in fields or OAI_RESET in fields:
            quotas.append(self.trio(OAI_LIMIT, OAI_REMAINING, OAI_RESET, self.duration))
        if OLD_LIMIT in fields or OLD_REMAINING in fields or OLD_RESET in fields:
            quotas.append(self.trio(OLD_LIMIT, OLD_REMAINING, OLD_RESET, self.seconds,
                                    limit_of=self.old_limit))
        if IETF_LIMIT in fields or IETF_POLICY in fields:
            quotas.append(self.ietf())
        quota = _tightest([q for q in quotas if q is not None])
        return Limits(quota, retry_after, tuple(self.problems))

    # one field

    def one(self, name: str, parse, pick):
        """The field's value parsed; given twice with different values, `pick` of them
        (the cautious one) and a problem; unusable, None and a problem."""
        raw = self.fields.get(name)
        if not raw:
            return None
        values = []
        for text in dict.fromkeys(raw):  # the same value twice is no conflict
            try:
                values.append(parse(text))
            except _Capped as capped:
                self.bad(name)
                values.append(capped.value)
            except _Bad:
                self.bad(name)
        if len(raw) > 1 and len(set(raw)) > 1:
            self.bad(name)
        values = [v for v in values if v is not None]
        return pick(values) if values else None

    def trio(self, limit_name: str, remaining_name: str, reset_name: str, reset,
             limit_of=None) -> Quota | None:
        limit = self.one(limit_name, limit_of or self.count, min)
        remaining = self.one(remaining_name, self.count, min)
        reset_s = self.one(reset_name, reset, max)
        if limit is not None and remaining is not None and remaining > limit:
            self.bad(remaining_name)
            remaining = limit
        if limit is None and remaining is None and reset_s is None:
            return None
        return Quota(limit, remaining, reset_s)

    # values

    @staticmethod
    def number(text: str) -> float:
        """A plain non-negative decimal (no exponent, no NaN or infinity); _Bad otherwise."""
        match = _NUMBER.fullmatch(text)
        if match is None or match.group(1) == "-":
            raise _Bad(text)
        return float(match.group(2))

    def count(self, text: str) -> int:
        return math.floor(self.number(text))

    def old_limit(self, text: str) -> int:
        """RateLimit-Limit of the older drafts: "100", or "100, 100;w=60" with policies."""
        return self.count(text.split(",", 1)[0].split(";", 1)[0])

    def seconds(self, text: str) -> float:
        """A delay in seconds, capped at MAX_RESET_S (an epoch sent here is capped too)."""
        return self.cap(self.number(text))

    def cap(self, seconds: float) -> float:
        if seconds > MAX_RESET_S:
            raise _Capped(MAX_RESET_S)
        return seconds

    def at(self, epoch: float) -> float:
        """Seconds until a wall-clock time; _Bad when it is in the past, capped far ahead."""
        seconds = epoch - self.now
        if seconds < -PAST_SLACK_S:
            raise _Bad(epoch)
        return self.cap(max(0.0, seconds))

    def x_reset(self, text: str) -> float:
        """X-RateLimit-Reset: seconds from now, or an epoch (GitHub), told apart by size."""
        value = self.number(text)
        if value >= EPOCH_MIN_S:
            return self.at(value)
        return self.cap(value)

    def duration(self, text: str) -> float:
        """x-ratelimit-reset-requests: "1s", "6m0s", "250ms" (or plain seconds)."""
        if _NUMBER.fullmatch(text):
            return self.seconds(text)
        text = text.strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise _Bad(text)
        return self.cap(sum(float(n) * _UNIT_S[u] for n, u in parts))

    def retry_after(self, text: str) -> float:
        """Retry-After: delay-seconds or an HTTP-date."""
        if _NUMBER.fullmatch(text):
            return self.seconds(text)
        return self.at(_http_date(text))

    # the IETF fields

    def ietf(self) -> Quota | None:
        """RateLimit: "name";r=..;t=.. (with RateLimit-Policy: "name";q=..;w=.. for the
        limit); with several policies, the one with the least remaining."""
        policies = self.items(IETF_POLICY, "q")
        services = self.items(IETF_LIMIT, "r", "t")
        if not services:
            if IETF_LIMIT in self.fields or len(policies) != 1:
                return None
            ((limit,),) = policies.values()  # one policy, no RateLimit yet: its limit only
            return Quota(limit, None, None)
        best = None
        for name, (remaining, reset_s) in services.items():
            limit = policies.get(name, (None,))[0]
            if remaining is None:
                continue
            if limit is not None and remaining > limit:
                self.bad(IETF_LIMIT)
                remaining = limit
            quota = Quota(limit, remaining, reset_s)
            best = quota if best is None else _tightest([best, quota])
        return best

    def items(self, name: str, *keys: str) -> dict[str, tuple]:
        """The field's list items by policy name: the values of `keys` (the first is
        required). A malformed item or value is a problem; the item name given twice with
        different values keeps the cautious one (least count, longest wait)."""
        raw = self.fields.get(name)
        out: dict[str, tuple] = {}
        if not raw:
            return out
        for item in _split(",".join(raw), ","):
            parts = _split(item, ";")
            policy = _unquote(parts[0].strip())
            if not policy:
                self.bad(name)
                continue
            params = {}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                params[key.strip().lower()] = value.strip()
            values = []
            for key in keys:
                text = params.get(key)
                value = None
                if text is not None:
                    try:
                        value = self.count(text) if key in ("q", "r") else self.seconds(text)
                    except _Capped as capped:
                        self.bad(name)
                        value = capped.value
                    except _Bad:
                        self.bad(name)
                values.append(value)
            if values[0] is None:
                if keys[0] not in params:
                    self.bad(name)
                continue
            values = tuple(values)
            if policy in out and out[policy] != values:
                self.bad(name)
                old = out[policy]
                values = (min(old[0], values[0]),) + tuple(
                    max((v for v in pair if v is not None), default=None)
                    for pair in zip(old[1:], values[1:], strict=True))
            out[policy] = values
        return out


def _tightest(quotas: list[Quota]) -> Quota | None:
    """The most restrictive of several quotas: least remaining, then the longest reset."""
    if not quotas:
        return None
    if len(quotas) == 1:
        return quotas[0]
    known = [q for q in quotas if q.remaining is not None]
    if not known:
        return quotas[0]
    return min(known, key=lambda q: (q.remaining, -(q.reset_s or 0.0)))


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes (structured-field lists and parameters)."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _unquote(text: str) -> str:
    """A structured-field string ("name") or token (name) as plain text."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _http_date(text: str) -> float:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _Bad(text) from None


def read_retry_after(value: bytes | str | None, now_epoch: float) -> float | None:
    """One Retry-After value read leniently (delay-seconds or HTTP-date): None when absent
    or unreadable; a negative delay or a date in the past is 0, a huge one is kept as it
    is. `parse_headers` is the strict reader; this one is for a caller that has one value."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = _http_date(text) - now_epoch
        except _Bad:
            return None
    return max(0.0, seconds) if seconds == seconds else None
