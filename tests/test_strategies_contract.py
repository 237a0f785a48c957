"""What every strategy promises the router: its chooser picks one of the ready servers
(whatever they are), JSON-able snapshots, the same decisions for the same seed and
outcomes."""

from __future__ import annotations

import json

import pytest

from banditlb.attempts import STOP, AttemptLoop, Send, Wait
from banditlb.outcomes import Attempt, Outcome
from banditlb.rules import Rules
from banditlb.strategies import make_strategy
from banditlb.strategies.base import Context

WRITE_UP = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10",
            "random", "round-robin", "epsilon-greedy", "exp3", "oracle"]
EVERY = ["auto"] + WRITE_UP
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

    def admits_in(self, now: float) -> float:
        return 0.0 if self.admits else 1.0


TRUTH = [FixedTruth(p) for p in (0.2, 0.3, 0.4, 0.5, 0.7, 0.7)]
"""Two best servers, so the oracle's seeded tie-breaking shows in its decisions."""


def strategy(name: str, seed: int = 0, n: int = N, **params):
    return make_strategy(name, n, seed=seed, params=params, truth=TRUTH[:n])


def scripted_outcome(server: int, count: int) -> Outcome:
    """A fixed pattern per server: good servers mostly accept, 429s here and there."""
    if (server + count) % 7 == 0:
        return Outcome.RATE_LIMITED
    if count % 11 == 5:
        return Outcome.TIMEOUT
    return Outcome.ACCEPTED if (count * (server + 1)) % 10 < server + 3 else Outcome.FAILED


def run_script(s, requests: int = 150, penalty_weight: float = 0.5) -> list[int]:
    """Drive ids through the attempt loop; outcomes depend only on (server, its attempt
    count). Waits jump the clock; every server sent to is one the loop may use."""
    counts = [0] * s.n
    choices = []
    now = 0.0
    rules = Rules(penalty_weight=penalty_weight, max_attempts=5, deadline_s=5.0)
    for _ in range(requests):
        loop = AttemptLoop(s, rules, now)
        while (decision := loop.decide(now)) is not STOP:
            if type(decision) is Wait:
                assert now < decision.until < loop.deadline_at
                now = decision.until
                continue
            server = decision.server
            assert 0 <= server < s.n
            choices.append(server)
            loop.record(Attempt(server, scripted_outcome(server, counts[server]), now, 0.01))
            counts[server] += 1
            now += 0.01
        now += 0.1
    return choices


@pytest.mark.parametrize("name", EVERY)
def test_same_seed_same_decisions(name):
    first = run_script(strategy(name, seed=7))
    assert first == run_script(strategy(name, seed=7))
    assert len(set(first)) > 1


@pytest.mark.parametrize("name", EVERY)
def test_the_chooser_picks_among_the_ready_servers_whatever_they_are(name):
    s = strategy(name)
    for step in range(60):
        ready = [x for x in range(N) if (x + step) % 3 != 0]
        ctx = Context(now=step * 0.1, attempt=step % 4, tried=(step % N,))
        s.chooser.begin_request(ctx.now)
        pick = s.chooser.choose(ready, ctx)
        assert pick in ready
        s.observe(pick, scripted_outcome(pick, step), ctx.now + 0.01, 0.01)
    assert s.chooser.choose([4], Context(now=10.0, attempt=1, tried=(4,))) == 4
    assert s.chooser.choose((2,), Context(now=10.0)) == 2  # any sequence, a tuple too


@pytest.mark.parametrize("name", WRITE_UP)
def test_snapshot_is_json_with_estimates_and_counts(name):
    s = strategy(name)
    run_script(s, requests=30)
    snap = json.loads(json.dumps(s.snapshot(5.0)))
    assert len(snap["estimates"]) == N and len(snap["quality"]) == N
    assert all(0.0 <= e <= 1.0 for e in snap["estimates"])
    for key in ("successes", "failures", "rate_limited"):
        assert len(snap[key]) == N
    assert sum(snap["successes"]) > 0 and sum(snap["rate_limited"]) > 0


def test_auto_snapshot_is_json_with_quality_and_capacity():
    s = strategy("auto")
    run_script(s, requests=30)
    snap = json.loads(json.dumps(s.snapshot(5.0), allow_nan=False))
    for key in ("estimates", "quality", "drift_resets", "rate", "rate_limited",
                "blocked_until"):
        assert len(snap[key]) == N, key
    assert all(0.0 <= e <= 1.0 for e in snap["estimates"])
    assert sum(snap["rate_limited"]) > 0 and snap["retry_after_capped"] == 0


@pytest.mark.parametrize(("name", "key"), [("v6", "masked_until"), ("v7", "masked_until"),
                                           ("v8", "blocked_until"), ("auto", "blocked_until")])
def test_snapshot_says_which_servers_are_held_until_when(name, key):
    s = strategy(name)
    s.observe(2, Outcome.RATE_LIMITED, 10.0, 0.001)
    held = s.snapshot(10.4)[key]
    assert held[2] > 10.4 and held[0] is None
    assert s.snapshot(100.0)[key][2] is None


@pytest.mark.parametrize("name", HABIT)
def test_within_free_attempts_a_tried_server_is_skipped(name):
    s = strategy(name)
    for _ in range(30):
        s.observe(3, Outcome.ACCEPTED, 0.0, 0.01)
    for attempt in (1, 2):
        for _ in range(20):
            assert s.chooser.choose(range(N), Context(now=1.0, attempt=attempt,
                                                      tried=(3,))) != 3
    # a tried server is still picked when it is the only one ready
    assert s.chooser.choose([3], Context(now=1.0, attempt=1, tried=(3,))) == 3


@pytest.mark.parametrize("name", [n for n in HABIT if n != "v3"])
def test_past_free_attempts_the_best_known_server(name):
    s = strategy(name)
    for server in range(N):
        for k in range(20):
            won = k < 10 + server
            s.observe(server, Outcome.ACCEPTED if won else Outcome.FAILED, 0.0, 0.01)
    best = N - 1
    for _ in range(20):
        assert s.chooser.choose(range(N), Context(now=1.0, attempt=3,
                                                  tried=(best, best, best))) == best


@pytest.mark.parametrize("name", EVERY)
def test_estimate_is_quality_times_the_chance_of_admission(name):
    s = strategy(name)
    run_script(s, requests=20)
    for server in range(N):
        for now in (5.0, 50.0):
            assert s.estimate(server, now) == pytest.approx(
                s.chooser.quality(server, now) * s.admission.chance(server, now))


def test_a_strategy_learns_through_the_loop_as_it_would_directly():
    through_loop, direct = strategy("v4", seed=3), strategy("v4", seed=3)
    loop = AttemptLoop(through_loop, Rules(), 0.0)
    decision = loop.decide(0.0)
    assert type(decision) is Send
    loop.record(Attempt(decision.server, Outcome.FAILED, 0.0, 0.25))
    direct.observe(decision.server, Outcome.FAILED, 0.25, 0.25)  # learned when it arrives
    assert through_loop.snapshot(1.0) == direct.snapshot(1.0)
