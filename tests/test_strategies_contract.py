"""What every strategy promises the router: usable servers only, None only when none
is usable, JSON-able snapshots, the same decisions for the same seed and outcomes."""

from __future__ import annotations

import json

import pytest

from banditlb.attempts import RequestRoute, Rules
from banditlb.outcomes import Attempt, Outcome
from banditlb.strategies import make_policy
from banditlb.strategies.base import Context

WRITE_UP = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10",
            "random", "round-robin", "epsilon-greedy", "exp3", "oracle"]
HABIT = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"]
N = 6


class FixedTruth:
    """A server's true state for the oracle: constant success, admitting or not."""

    def __init__(self, p: float, admits: bool = True):
        self.p, self.admits = p, admits

    def true_success(self, now: float) -> float:
        return self.p

    def available(self, now: float) -> bool:
        return self.admits


TRUTH = [FixedTruth(p) for p in (0.2, 0.3, 0.4, 0.5, 0.7, 0.7)]
"""Two best servers, so the oracle's seeded tie-breaking shows in its decisions."""


def policy(name: str, seed: int = 0, n: int = N, **params):
    return make_policy(name, n, seed=seed, params=params, truth=TRUTH[:n])


def scripted_outcome(server: int, count: int) -> Outcome:
    """A fixed pattern per server: good servers mostly accept, 429s here and there."""
    if (server + count) % 7 == 0:
        return Outcome.RATE_LIMITED
    if count % 11 == 5:
        return Outcome.TIMEOUT
    return Outcome.ACCEPTED if (count * (server + 1)) % 10 < server + 3 else Outcome.FAILED


def run_script(p, requests: int = 150, penalty_weight: float = 0.5) -> list[int]:
    """Drive ids through the router; outcomes depend only on (server, its attempt count)."""
    counts = [0] * p.n
    choices = []
    now = 0.0
    rules = Rules(penalty_weight=penalty_weight, max_attempts=5)
    for i in range(requests):
        down = frozenset({i % p.n}) if i % 3 == 0 else frozenset()
        route = RequestRoute(p, rules, now, unavailable=lambda _now, d=down: d)
        while (server := route.next_server(now)) is not None:
            assert server not in down
            choices.append(server)
            route.record(Attempt(server, scripted_outcome(server, counts[server]), now, 0.01))
            counts[server] += 1
            now += 0.01
        now += 0.1
    return choices


@pytest.mark.parametrize("name", WRITE_UP)
def test_same_seed_same_decisions(name):
    first = run_script(policy(name, seed=7))
    assert first == run_script(policy(name, seed=7))
    assert len(set(first)) > 1


@pytest.mark.parametrize("name", WRITE_UP)
def test_only_usable_servers_and_none_only_when_none_is(name):
    p = policy(name)
    for step in range(60):
        down = frozenset(s for s in range(N) if (s + step) % 3 == 0)
        ctx = Context(now=step * 0.1, attempt=step % 4, tried=(step % N,), unavailable=down)
        p.begin_request(ctx.now)
        pick = p.select(ctx)
        assert pick is not None and pick not in down
        p.observe(pick, scripted_outcome(pick, step), ctx.now + 0.01, 0.01)
    assert p.select(Context(now=10.0, unavailable=frozenset(range(N)))) is None
    only = frozenset(range(N)) - {4}
    assert p.select(Context(now=10.0, attempt=1, tried=(4,), unavailable=only)) == 4


@pytest.mark.parametrize("name", WRITE_UP)
def test_snapshot_is_json_with_estimates_and_counts(name):
    p = policy(name)
    run_script(p, requests=30)
    snap = json.loads(json.dumps(p.snapshot(5.0)))
    assert len(snap["estimates"]) == N
    assert all(0.0 <= e <= 1.0 for e in snap["estimates"])
    for key in ("successes", "failures", "rate_limited"):
        assert len(snap[key]) == N
    assert sum(snap["successes"]) > 0 and sum(snap["rate_limited"]) > 0


@pytest.mark.parametrize(("name", "key"), [("v6", "masked_until"), ("v7", "masked_until"),
                                           ("v8", "blocked_until")])
def test_snapshot_says_which_servers_are_held_until_when(name, key):
    p = policy(name)
    p.observe(2, Outcome.RATE_LIMITED, 10.0, 0.001)
    held = p.snapshot(10.5)[key]
    assert held[2] > 10.5 and held[0] is None
    assert p.snapshot(100.0)[key][2] is None


@pytest.mark.parametrize("name", HABIT)
def test_within_free_attempts_a_tried_server_is_skipped(name):
    p = policy(name)
    for _ in range(30):
        p.observe(3, Outcome.ACCEPTED, 0.0, 0.01)
    for attempt in (1, 2):
        for _ in range(20):
            assert p.select(Context(now=1.0, attempt=attempt, tried=(3,))) != 3


@pytest.mark.parametrize("name", [n for n in HABIT if n != "v3"])
def test_past_free_attempts_the_best_known_server(name):
    p = policy(name)
    for server in range(N):
        for k in range(20):
            won = k < 10 + server
            p.observe(server, Outcome.ACCEPTED if won else Outcome.FAILED, 0.0, 0.01)
    best = N - 1
    for _ in range(20):
        assert p.select(Context(now=1.0, attempt=3, tried=(best, best, best))) == best
