"""One simulated run: arrivals in virtual time, the real router and strategy, the
fleet's own models answering.

Events are processed in time order from a heap, so overlapping requests (slow or
hanging upstreams, ids waiting for capacity) see the strategy exactly as a live
balancer would: an outcome is learned when it arrives, not when the attempt is
sent, and waiting ids are woken oldest first by the same `Waitlist` the balancer
uses. Open-loop send times come from the `Arrivals`, so a live run of the same
seed sends at the same times; a closed loop sends each client's next id when its
previous one is answered.

Several replicas (`replicas` > 1) are several balancers in front of the one fleet:
each has its own strategy (replica k seeded seed + k, as bench/replicas.py starts the
live ones) and its own waitlist, the ids are spread round-robin (id number k goes
to replica k % R) and the fleet's models, so its limits, are shared. With a finite
`sync_s`, every attempt a replica sends and every answer it gets reach each other
replica `sync_s` later as a piece of `banditlb.shared.evidence.Evidence`, fed to its
strategy by the same `evidence.apply` the live replicas use; `sync_s` = ISOLATED
(infinity) shares nothing. One replica runs exactly as it always did. (A live replica
flushes its evidence every sync_ms, a refusal at once, so live evidence is up to about
sync_ms plus a Redis round trip late; a fixed `sync_s` is the late end of that.)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.attempts import OK, STOP, AttemptLoop, Send
from banditlb.fleet.models import ServerModel
from banditlb.fleet.scenario import Scenario
from banditlb.outcomes import CONN_ERROR, RATE_LIMITED, TIMEOUT, Attempt, Outcome
from banditlb.ratelimit import parse_headers
from banditlb.rules import Rules
from banditlb.shared import evidence
from banditlb.shared.config import DEFAULT_SYNC_MS
from banditlb.stats import percentile
from banditlb.strategies import make_strategy
from banditlb.waitlist import DEFAULT_MAX_WAITING, Waitlist

_tuple_new = tuple.__new__
"""Attempt(...) without the NamedTuple's Python-level __new__ (half its cost): one per attempt."""
outcome_of = Outcome.from_status
SIM_EPOCH = 1_800_000_000.0
"""The wall clock a simulated run starts at, for rate-limit fields given as epochs or
dates (written and read back as the live fleet and balancer do)."""
ARRIVE, ANSWER, WAKE, HEAR = 0, 1, 2, 3
"""Event kinds; at equal times events run in the order they were scheduled (so evidence
sent with no delay reaches the others after what was already due at that time)."""
ISOLATED = math.inf
"""The sync delay of replicas that share nothing."""
DEFAULT_SYNC_S = DEFAULT_SYNC_MS / 1000
"""The live replicas' default (`--sync-ms`)."""


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
             max_waiting: int = DEFAULT_MAX_WAITING, replicas: int = 1,
             sync_s: float = DEFAULT_SYNC_S) -> RunStats:
    """Run `requests` ids (sent as `arrivals` says, at a mean of `rps` in all) through one
    strategy, or through `replicas` copies of it that hear each other `sync_s` late."""
    check_replicas(replicas, sync_s)
    models = scenario.build(seed)
    strategies = [make_strategy(strategy, len(models), seed=seed + k, params=params,
                                truth=models, free_attempts=rules.free_attempts)
                  for k in range(replicas)]
    chosen = strategies[0]
    count = arrivals.count(requests)
    waitlists: list[Waitlist[AttemptLoop]] = [Waitlist(max_waiting) for _ in strategies]
    waitlist = waitlists[0]
    replica_of = {s: k for k, s in enumerate(strategies)}
    sharing = replicas > 1 and sync_s != ISOLATED
    names = [str(m.port) for m in models]
    in_flight = [[0] * len(models) for _ in strategies]
    """Per replica and server, its attempts sent and not answered (for `crowded`)."""
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
                if sharing:
                    replica = replica_of[loop.strategy]
                    in_flight[replica][server] += 1
                    seq += 1
                    heapq.heappush(heap, (now + sync_s, seq, HEAR, replica,
                                          (server, evidence.sent(names[server],
                                                                 SIM_EPOCH + now))))
                return None
            queue = waitlist if replicas == 1 else waitlists[replica_of[loop.strategy]]
            if queue.add(loop, decision.until):
                seq += 1
                heapq.heappush(heap, (decision.until, seq, WAKE, queue, None))
                return None
            loop.turn_away(now, decision.until)

    def finish(loop: AttemptLoop, now: float) -> None:
        nonlocal accepted, attempts, penalized, rate_limited, timeouts, waited, turned
        nonlocal seq, next_number
        (waitlist if replicas == 1 else waitlists[replica_of[loop.strategy]]).forget(loop)
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

    def told(loop: AttemptLoop, attempt: Attempt, now: float) -> None:
        """What the balancer's shared state publishes for an answer (evidence.answered,
        as core.py's _shared_attempt), heard by the others sync_s later."""
        nonlocal seq
        replica = replica_of[loop.strategy]
        server = attempt.server
        flying = in_flight[replica]
        flying[server] -= 1
        e = evidence.answered(names[server], attempt, SIM_EPOCH + now, rules, flying[server])
        seq += 1
        heapq.heappush(heap, (now + sync_s, seq, HEAR, replica, (server, e)))

    while heap:
        now, _, kind, subject, attempt = heapq.heappop(heap)
        if kind == ARRIVE:
            loop = AttemptLoop(chosen if replicas == 1 else strategies[subject % replicas],
                               rules, now)
            loops[loop] = subject
            advance(loop, now)
        elif kind == ANSWER:
            subject.record(attempt)
            if sharing:
                told(subject, attempt, now)
            advance(subject, now)
        elif kind == WAKE:
            for loop in subject.due(now):
                advance(loop, now)
        else:  # HEAR: one replica's evidence reaches every other one
            server, e = attempt
            for k, other in enumerate(strategies):
                if k != subject:
                    evidence.apply(other, server, e, now, sync_s)
    ms = sorted(1000.0 * t for t in latencies)
    return RunStats(count, accepted=accepted, attempts=attempts, penalized=penalized,
                    rate_limited=rate_limited, timeouts=timeouts, waited=waited,
                    turned_away=turned, score=rules.score(accepted, penalized),
                    latency_p50_ms=percentile(ms, 50) if ms else 0.0,
                    latency_p99_ms=percentile(ms, 99) if ms else 0.0,
                    per_request_score=per_request)


def check_replicas(replicas: int, sync_s: float) -> None:
    """ValueError, saying what is expected, for a replica count or sync delay that
    cannot be simulated."""
    if type(replicas) is not int or replicas < 1:
        raise ValueError(f"replicas must be a whole number >= 1 (got {replicas!r})")
    if not sync_s >= 0:  # NaN too
        raise ValueError(f"the sync delay must be >= 0 seconds, or ISOLATED (got {sync_s!r})")


ISOLATED_WORDS = ("inf", "infinity", "off", "isolated")


def parse_sync_ms(text: str) -> float:
    """A sync delay as written on the command line, in seconds: milliseconds >= 0, or
    inf/off/isolated for replicas that share nothing (ISOLATED). ValueError says why not."""
    word = text.strip().lower()
    if word in ISOLATED_WORDS:
        return ISOLATED
    try:
        ms = float(word)
    except ValueError:
        ms = math.nan
    if not 0 <= ms < math.inf:
        raise ValueError(f"sync delay {text!r}: expected milliseconds >= 0, or off "
                         "(inf, isolated) for replicas that share nothing")
    return ms / 1000
