"""One simulated run: arrivals in virtual time, the real router and strategy, the
fleet's own models answering.

Events are processed in time order from a heap, so overlapping requests (slow or
hanging upstreams, ids waiting for capacity) see the strategy exactly as a live
balancer would: an outcome is learned when it arrives, not when the attempt is
sent, and waiting ids are woken oldest first by the same `Waitlist` the balancer
uses. Open-loop send times come from the `Arrivals`, so a live run of the same
seed sends at the same times; a closed loop sends each client's next id when its
previous one is answered.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.attempts import OK, STOP, AttemptLoop, Send
from banditlb.fleet.models import ServerModel
from banditlb.fleet.scenario import Scenario
from banditlb.outcomes import CONN_ERROR, RATE_LIMITED, TIMEOUT, Attempt, Outcome
from banditlb.ratelimit import parse_headers
from banditlb.rules import Rules
from banditlb.stats import percentile
from banditlb.strategies import make_strategy
from banditlb.waitlist import DEFAULT_MAX_WAITING, Waitlist

_tuple_new = tuple.__new__
"""Attempt(...) without the NamedTuple's Python-level __new__ (half its cost): one per attempt."""
outcome_of = Outcome.from_status
SIM_EPOCH = 1_800_000_000.0
"""The wall clock a simulated run starts at, for rate-limit fields given as epochs or
dates (written and read back as the live fleet and balancer do)."""
ARRIVE, ANSWER, WAKE = 0, 1, 2
"""Event kinds; at equal times events run in the order they were scheduled."""


@dataclass
class RunStats:
    """What one (strategy, scenario, seed) run produced, scored by the router's rules."""

    requests: int
    accepted: int = 0
    attempts: int = 0
    penalized: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    waited: int = 0
    """Ids that waited for capacity at least once."""
    turned_away: int = 0
    """Ids answered unavailable because the waitlist was full."""
    score: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    """Per id, from its send to its answer (waits included)."""
    per_request_score: list[float] = field(default_factory=list)
    """Score contribution of each request in arrival order (for regret curves)."""


def attempt_from_reply(server: int, model: ServerModel, now: float, timeout_s: float) -> Attempt:
    """Ask the model what happens to an attempt sent now; clip it at the timeout."""
    reply = model.handle(now)
    if reply.fault == "refuse":
        return Attempt(server, CONN_ERROR, now, reply.latency_s)
    if reply.latency_s > timeout_s:
        return Attempt(server, TIMEOUT, now, timeout_s)
    status = reply.status
    if model.rate_limit_headers != "none":
        fields = model.rate_limit_fields(reply, now, SIM_EPOCH + now)
        if fields:  # the very fields the live fleet sends, read by the balancer's parser
            limits = parse_headers(fields, SIM_EPOCH + now)
            outcome = outcome_of(status, limits.retry_after_s is not None)
            retry_after = limits.retry_after_s if outcome is RATE_LIMITED else None
            return Attempt(server, outcome, now, reply.latency_s, status, retry_after, limits)
    retry_after = reply.retry_after_s
    outcome = outcome_of(status, retry_after is not None)
    return _tuple_new(Attempt, (server, outcome, now, reply.latency_s, status, retry_after, None))


def simulate(strategy: str, scenario: Scenario, seed: int, requests: int, rps: float,
             rules: Rules, params: dict | None = None, arrivals: Arrivals = UNIFORM,
             max_waiting: int = DEFAULT_MAX_WAITING) -> RunStats:
    """Run `requests` ids (sent as `arrivals` says, at a mean of `rps`) through one strategy."""
    models = scenario.build(seed)
    chosen = make_strategy(strategy, len(models), seed=seed, params=params, truth=models,
                           free_attempts=rules.free_attempts)
    count = arrivals.count(requests)
    waitlist: Waitlist[AttemptLoop] = Waitlist(max_waiting)
    per_request = [0.0] * count
    latencies = [0.0] * count
    accepted = attempts = penalized = rate_limited = timeouts = waited = turned = 0
    heap: list[tuple] = []
    seq = 0
    for number, t in enumerate(arrivals.send_times(count, rps, seed)):
        heap.append((t, number, ARRIVE, number, None))
    seq = len(heap)
    heapq.heapify(heap)
    next_number = len(heap)  # closed loop: the next id a client sends
    loops: dict[AttemptLoop, int] = {}

    def advance(loop: AttemptLoop, now: float) -> None:
        """Decide for one id until it sends, waits or ends."""
        nonlocal seq
        while True:
            decision = loop.decide(now)
            if decision is STOP:
                return finish(loop, now)
            if type(decision) is Send:
                server = decision.server
                attempt = attempt_from_reply(server, models[server], now,
                                             loop.timeout_for_next(now))
                seq += 1
                heapq.heappush(heap, (now + attempt.latency_s, seq, ANSWER, loop, attempt))
                return None
            if waitlist.add(loop, decision.until):
                seq += 1
                heapq.heappush(heap, (decision.until, seq, WAKE, None, None))
                return None
            loop.turn_away(now, decision.until)

    def finish(loop: AttemptLoop, now: float) -> None:
        nonlocal accepted, attempts, penalized, rate_limited, timeouts, waited, turned
        nonlocal seq, next_number
        waitlist.forget(loop)
        number = loops.pop(loop)
        tries = loop.attempts
        n = len(tries)
        won = loop.status == OK
        beyond = rules.penalized(n)
        accepted += won
        attempts += n
        penalized += beyond
        waited += loop.waited_s > 0
        turned += loop.retry_after_s is not None
        if n > won:  # some attempt was not accepted
            for a in tries:
                outcome = a.outcome
                rate_limited += outcome is RATE_LIMITED
                timeouts += outcome is TIMEOUT
        per_request[number] = won - rules.penalty_weight * beyond
        latencies[number] = now - loop.started_at
        if arrivals.closed and next_number < count:
            seq += 1
            heapq.heappush(heap, (arrivals.next_send(loop.started_at, now, rps), seq,
                                  ARRIVE, next_number, None))
            next_number += 1

    while heap:
        now, _, kind, subject, attempt = heapq.heappop(heap)
        if kind == ARRIVE:
            loop = AttemptLoop(chosen, rules, now)
            loops[loop] = subject
            advance(loop, now)
        elif kind == ANSWER:
            subject.record(attempt)
            advance(subject, now)
        else:
            for loop in waitlist.due(now):
                advance(loop, now)
    ms = sorted(1000.0 * t for t in latencies)
    return RunStats(count, accepted=accepted, attempts=attempts, penalized=penalized,
                    rate_limited=rate_limited, timeouts=timeouts, waited=waited,
                    turned_away=turned, score=rules.score(accepted, penalized),
                    latency_p50_ms=percentile(ms, 50) if ms else 0.0,
                    latency_p99_ms=percentile(ms, 99) if ms else 0.0,
                    per_request_score=per_request)
