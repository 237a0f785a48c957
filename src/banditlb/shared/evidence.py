"""What one replica tells the others: its attempts, as evidence, and how it is merged.

Replicas share evidence, not conclusions. Each one publishes the attempts it sent
and the answers they got; every other replica feeds them to its own strategy
(`Strategy.sent_elsewhere` / `observe_elsewhere`), so each keeps deciding alone, on
the merged evidence:
- quality: the chooser counts the others' accepted and failed attempts as its own,
  windows and drift resets included (they see the same stream);
- capacity: an attempt sent elsewhere takes a token from this replica's copy of the
  server's bucket, so R replicas together pace to the server, not R times it; a
  refusal elsewhere cuts the learned rate and blocks the server here too, for the
  Retry-After it carried, counted from when it came (not from when it arrived here).
- what is in flight, and the concurrency cap learned from it, stay per replica.

The same `apply` serves the live replicas (banditlb.shared.redis_sync) and the
simulator's (banditlb.sim), so the cost of staleness it measures is the real one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import NamedTuple

from banditlb.attempts import judges_quality
from banditlb.outcomes import RATE_LIMITED, Attempt, Outcome
from banditlb.quota import Quota
from banditlb.rules import Rules
from banditlb.strategies import Strategy

SENT, ANSWERED = "s", "a"
STALE_S = 5.0
"""Evidence older than this on arrival (a replica back from a Redis outage flushing
what it kept) still counts for quality, but no longer for capacity: a token taken or
a refusal that long ago says nothing about the bucket now."""


class Evidence(NamedTuple):
    """One attempt sent, or one answer, at one upstream (named, not numbered: replicas
    may list their upstreams in other orders)."""

    kind: str
    upstream: str
    wall: float
    """When it happened (Unix time) at the replica that saw it."""
    outcome: Outcome | None = None
    latency_s: float = 0.0
    retry_after_s: float | None = None
    quota: Quota | None = None
    judged: bool = True
    """False for an answer that says nothing about quality (a timeout cut short)."""
    crowded: bool = False
    """Refused while others of that replica's were in flight there."""


def sent(upstream: str, wall: float) -> Evidence:
    return Evidence(SENT, upstream, wall)


def answered(upstream: str, attempt: Attempt, wall: float, rules: Rules,
             others_in_flight: int) -> Evidence:
    """What a replica tells the others of one answer (the balancer and the simulator
    alike): judged as the attempt loop judges it, crowded when it is a refusal while
    `others_in_flight` of this replica's attempts were still at that server."""
    limits = attempt.limits
    return Evidence(ANSWERED, upstream, wall, attempt.outcome, attempt.latency_s,
                    attempt.retry_after_s, None if limits is None else limits.quota,
                    judges_quality(attempt, rules),
                    attempt.outcome is RATE_LIMITED and others_in_flight > 0)


def encode(batch: Iterable[Evidence]) -> bytes:
    """A batch as compact JSON: one list per piece of evidence."""
    rows = []
    for e in batch:
        if e.kind == SENT:
            rows.append([SENT, e.upstream, round(e.wall, 6)])
            continue
        q = e.quota
        rows.append([ANSWERED, e.upstream, round(e.wall, 6), e.outcome.value,
                     round(e.latency_s, 6), e.retry_after_s,
                     None if q is None else [q.limit, q.remaining, q.reset_s],
                     int(e.judged), int(e.crowded)])
    return json.dumps(rows, separators=(",", ":")).encode()


class MalformedEvidence(ValueError):
    """A batch that is not what `encode` writes (another version, or not ours)."""


def decode(data: bytes) -> list[Evidence]:
    """The batch `encode` wrote; MalformedEvidence for anything else."""
    try:
        rows = json.loads(data)
        return [_row(r) for r in rows]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MalformedEvidence(f"not a batch of evidence: {exc}") from exc


def _row(r: list) -> Evidence:
    wall = _finite(r[2])
    if r[0] == SENT and len(r) == 3:
        return Evidence(SENT, str(r[1]), wall)
    if r[0] != ANSWERED or len(r) != 9:
        raise ValueError(f"unknown row {r!r}")
    q = r[6]
    quota = None if q is None else Quota(
        None if q[0] is None else int(q[0]), None if q[1] is None else int(q[1]),
        None if q[2] is None else _finite(q[2]))
    return Evidence(ANSWERED, str(r[1]), wall, Outcome(r[3]), _finite(r[4]),
                    None if r[5] is None else _finite(r[5]), quota, bool(r[7]), bool(r[8]))


def _finite(x) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("a time that is not a finite number")
    return x


def apply(strategy: Strategy, server: int, e: Evidence, now: float, age_s: float) -> None:
    """Feed one piece of another replica's evidence to `strategy` at time `now`, `age_s`
    after it happened: times it carries (Retry-After, a quota's reset) keep their end."""
    age_s = max(0.0, age_s)
    fresh = age_s <= STALE_S
    if e.kind == SENT:
        if fresh:
            strategy.sent_elsewhere(server, now)
        return
    if not fresh:
        if e.judged:
            strategy.chooser.observe(server, e.outcome, now, e.latency_s)
        return
    retry_after = e.retry_after_s
    if retry_after is not None:
        retry_after = max(0.0, retry_after - age_s)
    quota = e.quota
    if quota is not None and quota.reset_s is not None:
        quota = Quota(quota.limit, quota.remaining, max(0.0, quota.reset_s - age_s))
    strategy.observe_elsewhere(server, e.outcome, now, e.latency_s, retry_after, quota,
                               e.judged, e.crowded)
