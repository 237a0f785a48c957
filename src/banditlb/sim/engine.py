"""One simulated run: open-loop arrivals in virtual time, the real router and policy,
the fleet's own models answering.

Events are processed in time order from a heap, so overlapping requests (slow
or hanging upstreams) see the policy exactly as a live balancer would: an
outcome is learned when it arrives, not when the attempt is sent.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from banditlb.attempts import OK, RequestRoute, Rules
from banditlb.fleet.models import ServerModel
from banditlb.fleet.scenario import Scenario
from banditlb.outcomes import CONN_ERROR, RATE_LIMITED, TIMEOUT, Attempt, Outcome
from banditlb.strategies import make_policy

_tuple_new = tuple.__new__
"""Attempt(...) without the NamedTuple's Python-level __new__ (half its cost): one per attempt."""
outcome_of = Outcome.from_status


@dataclass
class RunStats:
    """What one (strategy, scenario, seed) run produced, scored by the router's rules."""

    requests: int
    accepted: int = 0
    attempts: int = 0
    penalized: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    score: float = 0.0
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
    outcome = outcome_of(status)
    return _tuple_new(Attempt, (server, outcome, now, reply.latency_s, status, reply.retry_after_s))


def simulate(strategy: str, scenario: Scenario, seed: int, requests: int, rps: float,
             rules: Rules, params: dict | None = None) -> RunStats:
    """Run `requests` ids arriving every 1/rps virtual seconds through one strategy."""
    models = scenario.build(seed)
    policy = make_policy(strategy, len(models), seed=seed, params=params, truth=models,
                         free_attempts=rules.free_attempts)
    free, weight = rules.free_attempts, rules.penalty_weight
    per_request = [0.0] * requests
    accepted = attempts = penalized = rate_limited = timeouts = 0
    heap: list[tuple[float, int, int, RequestRoute, Attempt]] = []
    seq = 0
    interval = 1.0 / rps
    arrival, next_arrival = 0, 0.0  # how many ids arrived; when the next one does
    while True:
        if arrival < requests and (not heap or next_arrival <= heap[0][0]):
            number, now = arrival, next_arrival
            route = RequestRoute(policy, rules, now)
            arrival += 1
            next_arrival = arrival * interval if arrival < requests else math.inf
        elif heap:
            now, _, number, route, attempt = heapq.heappop(heap)
            route.record(attempt)
        else:
            break
        # Attempts of this id until it ends or another event comes first.
        while (server := route.next_server(now)) is not None:
            attempt = attempt_from_reply(server, models[server], now, route.timeout_for_next(now))
            end = now + attempt.latency_s
            if end >= next_arrival or (heap and heap[0][0] <= end):
                seq += 1
                heapq.heappush(heap, (end, seq, number, route, attempt))
                break
            route.record(attempt)  # nothing else happens meanwhile: no need for the heap
            now = end
        else:  # the id is done: score it now (keeping every route would feed the GC)
            tries = route.attempts
            n = len(tries)
            won = route.status == OK
            beyond = n - free if n > free else 0
            accepted += won
            attempts += n
            penalized += beyond
            if n > won:  # some attempt was not accepted
                for a in tries:
                    outcome = a.outcome
                    rate_limited += outcome is RATE_LIMITED
                    timeouts += outcome is TIMEOUT
            per_request[number] = won - weight * beyond
    return RunStats(requests, accepted=accepted, attempts=attempts, penalized=penalized,
                    rate_limited=rate_limited, timeouts=timeouts, score=sum(per_request),
                    per_request_score=per_request)
