"""Thompson sampling against the T1 fleet models: it finds the best server.

A plain loop in virtual time drives the router and the models directly (no
sockets): 2,000 ids at 10 per second, default rules (3 free attempts, weight 1).
"""

from __future__ import annotations

import pytest

from banditlb.attempts import OK, STOP, AttemptLoop, Send
from banditlb.fleet.scenario import load_scenario
from banditlb.outcomes import Attempt, Outcome
from banditlb.rules import Rules
from banditlb.strategies import make_strategy

REQUESTS = 2000


def drive(strategy: str, seed: int) -> tuple[list[int], float, int]:
    """(attempts per server, score, attempts in total) for one seeded run on T1."""
    models = load_scenario("T1").build(seed)
    chosen = make_strategy(strategy, len(models), seed=seed, truth=models)
    rules = Rules()
    per_server = [0] * len(models)
    score = 0.0
    for i in range(REQUESTS):
        now = i / 10.0
        loop = AttemptLoop(chosen, rules, now)
        while (decision := loop.decide(now)) is not STOP:
            assert type(decision) is Send  # T1 has no rate limits: nothing to wait for
            server = decision.server
            reply = models[server].handle(now)
            loop.record(Attempt(server, Outcome.from_status(reply.status), now,
                                reply.latency_s, reply.status))
            per_server[server] += 1
            now += reply.latency_s
        result = loop.result()
        score += rules.id_score(result.status == OK, len(result.attempts))
    return per_server, score, sum(per_server)


def best_server() -> int:
    models = load_scenario("T1").build(0)
    truths = [m.true_success(0.0) for m in models]
    return truths.index(max(truths))


@pytest.mark.parametrize("seed", [0, 1])
def test_thompson_sends_most_attempts_to_the_best_server_and_beats_random(seed):
    per_server, v4_score, v4_attempts = drive("v4", seed)
    _, random_score, random_attempts = drive("random", seed)
    assert per_server[best_server()] / v4_attempts >= 0.80  # 0.89 and 0.85 for these seeds
    assert v4_score >= random_score + 60  # about +115 for these seeds
    assert v4_attempts <= 0.8 * random_attempts  # about 0.71
