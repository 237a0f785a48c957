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

from banditlb.fleet.models import ServerModel
from banditlb.fleet.scenario import Scenario
from banditlb.outcomes import Attempt, Outcome
from banditlb.policies import make_policy
from banditlb.routing import OK, RequestRoute, Rules


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
        return Attempt(server, Outcome.CONN_ERROR, now, reply.latency_s)
    if reply.latency_s > timeout_s:
        return Attempt(server, Outcome.TIMEOUT, now, timeout_s)
    return Attempt(server, Outcome.from_status(reply.status), now, reply.latency_s,
                   reply.status, reply.retry_after_s)


def simulate(strategy: str, scenario: Scenario, seed: int, requests: int, rps: float,
             rules: Rules, params: dict | None = None) -> RunStats:
    """Run `requests` ids arriving every 1/rps virtual seconds through one strategy."""
    models = scenario.build(seed)
    policy = make_policy(strategy, len(models), seed=seed, params=params, truth=models)
    stats = RunStats(requests, per_request_score=[0.0] * requests)
    free, weight = rules.free_attempts, rules.penalty_weight
    heap: list[tuple[float, int, int, RequestRoute, Attempt]] = []
    seq = 0
    interval = 1.0 / rps

    def finish(number: int, route: RequestRoute) -> None:
        result = route.result()
        n = len(result.attempts)
        accepted = result.status == OK
        penalized = max(0, n - free)
        stats.accepted += accepted
        stats.attempts += n
        stats.penalized += penalized
        for a in result.attempts:
            stats.rate_limited += a.outcome is Outcome.RATE_LIMITED
            stats.timeouts += a.outcome is Outcome.TIMEOUT
        stats.per_request_score[number] = accepted - weight * penalized

    def drive(number: int, route: RequestRoute, now: float, next_event: float) -> None:
        """Run attempts of one id until it ends or another event comes first."""
        nonlocal seq
        while (server := route.next_server(now)) is not None:
            attempt = attempt_from_reply(server, models[server], now, route.timeout_for_next(now))
            end = now + attempt.latency_s
            if end >= next_event or (heap and heap[0][0] <= end):
                seq += 1
                heapq.heappush(heap, (end, seq, number, route, attempt))
                return
            route.record(attempt)  # nothing else happens meanwhile: no need for the heap
            now = end
        finish(number, route)

    arrival = 0
    while arrival < requests or heap:
        arrival_t = arrival * interval
        if arrival < requests and (not heap or arrival_t <= heap[0][0]):
            arrival += 1
            next_t = arrival * interval if arrival < requests else math.inf
            drive(arrival - 1, RequestRoute(policy, rules, arrival_t), arrival_t, next_t)
            continue
        now, _, number, route, attempt = heapq.heappop(heap)
        route.record(attempt)
        drive(number, route, now, arrival * interval if arrival < requests else math.inf)
    stats.score = sum(stats.per_request_score)
    return stats
