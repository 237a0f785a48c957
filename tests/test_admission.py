"""Each admission rule against its definition, time given: Open, Mask, Block, Pacing and
the oracle's TrueCapacity. Pure objects, no clock: every test says what time it is."""

from __future__ import annotations

import json
import math
import random

import pytest

from banditlb.admission import Block, Mask, Open, Pacing, TrueCapacity
from banditlb.attempts import AttemptLoop, Send, Wait
from banditlb.fleet.scenario import load_scenario
from banditlb.outcomes import ACCEPTED, CONN_ERROR, FAILED, RATE_LIMITED, TIMEOUT
from banditlb.rules import Rules
from banditlb.strategies import make_strategy

TOKEN_BUCKET = {"decrease": 1.0, "doubling_s": 1e9, "backoff_s": 0.0, "reserve": 0.0}
"""Pacing reduced to a plain token bucket at the refused rate: no cut, no regrowth worth
speaking of, no backoff, no reserve (so the figures below can be written by hand)."""


def learn_rate(pacing: Pacing, server: int, admits: int, refused_at: float,
               retry_after_s: float | None = None) -> None:
    """`admits` accepted attempts evenly over the rate window before `refused_at`, then a
    429 at `refused_at`: the first 429 sets the rate to admits / rate_window_s."""
    window = pacing.rate_window_s
    for i in range(admits):
        pacing.observe(server, ACCEPTED, refused_at - window + (i + 1) * window / admits, None)
    pacing.observe(server, RATE_LIMITED, refused_at, retry_after_s)


# Open -----------------------------------------------------------------------------------

def test_open_admits_everything_always():
    rule = Open(3)
    for outcome in (RATE_LIMITED, CONN_ERROR, FAILED):
        rule.observe(1, outcome, 5.0, 60.0)
    rule.sent(1, 5.0)
    assert list(rule.ready(5.0, False)) == list(rule.ready(5.0, True)) == [0, 1, 2]
    assert rule.chance(1, 5.0) == 1.0
    assert rule.next_admit(1, 5.0, False) == 5.0
    assert list(rule.probes(5.0)) == [0, 1, 2]
    assert rule.snapshot(5.0) == {}


# Mask (v6, v7) --------------------------------------------------------------------------

def test_mask_holds_a_limited_server_for_the_cooldown_then_releases_it():
    rule = Mask(3, cooldown_s=1.0)
    rule.observe(0, RATE_LIMITED, 10.0, None)
    assert rule.ready(10.0, False) == [1, 2]
    assert rule.ready(10.999, True) == [1, 2]
    assert rule.chance(0, 10.5) == 0.0 and rule.chance(1, 10.5) == 1.0
    assert rule.next_admit(0, 10.5, False) == 11.0
    assert rule.next_admit(1, 10.5, False) == 10.5
    assert rule.snapshot(10.5)["masked_until"] == [11.0, None, None]
    assert rule.ready(11.0, False) == [0, 1, 2]  # released exactly at the cooldown's end
    assert rule.chance(0, 11.0) == 1.0
    assert rule.snapshot(11.0)["masked_until"] == [None, None, None]


def test_mask_ignores_everything_but_429s_and_a_new_429_restarts_the_cooldown():
    rule = Mask(2, cooldown_s=2.0)
    for outcome in (FAILED, TIMEOUT, CONN_ERROR, ACCEPTED):
        rule.observe(0, outcome, 1.0, 30.0)
    assert rule.ready(1.0, False) == [0, 1]
    rule.observe(0, RATE_LIMITED, 1.0, 30.0)  # v6 does not read Retry-After
    rule.observe(0, RATE_LIMITED, 2.5, None)
    assert rule.next_admit(0, 3.0, False) == 4.5
    rule.observe(0, ACCEPTED, 3.0, None)  # an answer admitted meanwhile lifts nothing
    assert rule.ready(4.4, False) == [1] and rule.ready(4.5, False) == [0, 1]


def test_mask_probes_the_server_released_soonest():
    rule = Mask(3, cooldown_s=2.0)
    rule.observe(1, RATE_LIMITED, 1.0, None)
    rule.observe(0, RATE_LIMITED, 1.5, None)
    rule.observe(2, RATE_LIMITED, 2.0, None)
    assert rule.ready(2.5, False) == []
    assert list(rule.probes(2.5)) == [1]
    assert rule.ready(3.0, False) == [1] and rule.ready(3.5, False) == [0, 1]


def test_mask_rejects_a_negative_cooldown():
    with pytest.raises(ValueError, match="cooldown_s"):
        Mask(2, cooldown_s=-1.0)


# Block (v8) -----------------------------------------------------------------------------

def block_after_429(rule: Block, server: int, now: float) -> float:
    rule.observe(server, RATE_LIMITED, now, None)
    return rule.next_admit(server, now, False) - now


def test_block_doubles_with_each_429_up_to_the_max_multiplier():
    rule = Block(2)
    durations, now = [], 0.0
    for _ in range(5):
        durations.append(block_after_429(rule, 0, now))
        assert rule.ready(now + durations[-1] - 0.001, False) == [1]
        now += durations[-1]
        assert rule.ready(now, False) == [0, 1]
    assert durations == [5.0, 10.0, 20.0, 20.0, 20.0]
    assert rule.snapshot(now)["block_multiplier"] == [4.0, 1.0]


def test_block_resets_on_an_accepted_attempt_not_on_a_failure():
    rule = Block(2, block_s=1.0, max_multiplier=8.0)
    assert block_after_429(rule, 0, 0.0) == 1.0
    assert block_after_429(rule, 0, 1.0) == 2.0
    rule.observe(0, FAILED, 3.0, None)
    rule.observe(0, TIMEOUT, 3.0, None)
    assert block_after_429(rule, 0, 3.0) == 4.0
    rule.observe(0, ACCEPTED, 7.0, None)
    assert block_after_429(rule, 0, 8.0) == 1.0


def test_block_reports_when_each_block_ends_and_probes_the_one_ending_first():
    rule = Block(3)
    rule.observe(0, RATE_LIMITED, 0.0, None)  # until 5
    rule.observe(0, RATE_LIMITED, 5.0, None)  # until 15
    rule.observe(1, RATE_LIMITED, 1.0, None)  # until 6
    rule.observe(2, RATE_LIMITED, 5.0, None)  # until 10
    snap = rule.snapshot(5.5)
    assert snap["blocked_until"] == [15.0, 6.0, 10.0]
    assert snap["block_multiplier"] == [4.0, 2.0, 2.0]
    assert list(rule.probes(5.5)) == [1]
    assert rule.chance(1, 5.5) == 0.0 and rule.chance(1, 6.0) == 1.0


def test_block_rejects_nonsense():
    with pytest.raises(ValueError):
        Block(2, block_s=-1.0)
    with pytest.raises(ValueError):
        Block(2, max_multiplier=0.5)


# Pacing (auto) --------------------------------------------------------------------------

def test_pacing_is_unpaced_until_the_first_429():
    rule = Pacing(2)
    for step in range(200):  # 200 attempts in 0.2 s, to one server, never refused
        now = step * 0.001
        assert rule.ready(now, False) == [0, 1]
        rule.sent(0, now)
        rule.observe(0, ACCEPTED if step % 3 else FAILED, now + 0.001, None)
    assert rule.chance(0, 0.2) == 1.0
    assert rule.next_admit(0, 0.2, False) == 0.2
    assert rule.snapshot(0.2)["rate"] == [None, None]
    rule.observe(0, TIMEOUT, 0.3, None)  # a timeout says nothing about capacity
    assert rule.ready(0.3, False) == [0, 1]


def test_pacing_paces_a_server_at_its_refused_rate_after_the_first_429():
    rule = Pacing(1, **TOKEN_BUCKET)
    learn_rate(rule, 0, admits=10, refused_at=10.0)  # 10 admits in 5 s: 2 per second
    assert rule.snapshot(10.0)["rate"] == [2.0]
    assert rule.ready(10.0, True) == [] and rule.chance(0, 10.0) == 0.0
    sends = []
    for ms in range(10_000, 20_000):  # try every millisecond for 10 s, send when ready
        now = ms / 1000
        if rule.ready(now, False):
            rule.sent(0, now)
            sends.append(now)
    assert sends[0] == pytest.approx(10.5)
    assert 19 <= len(sends) <= 20  # 2 per second, where unpaced would send 10,000
    assert min(b - a for a, b in zip(sends, sends[1:], strict=False)) >= 0.5 - 1e-9


def test_pacing_backs_off_right_after_a_429_with_the_default_parameters():
    rule = Pacing(2)
    learn_rate(rule, 0, admits=10, refused_at=10.0)
    assert rule.ready(10.4, True) == [1]
    assert rule.chance(0, 10.4) == 0.0
    assert rule.snapshot(10.4)["blocked_until"] == [10.5, None]
    assert 0 not in rule.probes(10.4)
    assert 0 in rule.probes(10.5)


def test_sent_takes_a_token_so_two_ids_at_one_instant_do_not_share_the_last_one():
    rule = Pacing(1, **TOKEN_BUCKET)
    learn_rate(rule, 0, admits=5, refused_at=10.0)  # 1 per second
    assert rule.ready(11.0, False) == [0]  # one token back
    rule.sent(0, 11.0)
    assert rule.ready(11.0, False) == [] and rule.ready(11.0, True) == []
    assert rule.chance(0, 11.0) == 0.0
    assert rule.next_admit(0, 11.0, False) == pytest.approx(12.0)


def test_two_ids_at_one_instant_through_the_router_the_second_waits():
    auto = make_strategy("auto", 1, params=TOKEN_BUCKET)
    learn_rate(auto.admission, 0, admits=5, refused_at=10.0)
    first = AttemptLoop(auto, Rules(deadline_s=5.0), 11.0)
    second = AttemptLoop(auto, Rules(deadline_s=5.0), 11.0)
    assert first.decide(11.0) == Send(0)
    decision = second.decide(11.0)
    assert type(decision) is Wait and decision.until == pytest.approx(12.0)


def test_pacing_backoff_doubles_on_a_refusal_streak_and_an_admit_resets_it():
    rule = Pacing(1)
    now, waits = 0.0, []
    for _ in range(7):
        rule.observe(0, RATE_LIMITED, now, None)
        waits.append(rule.blocked_until[0] - now)
        now = rule.blocked_until[0]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # backoff_max_s = 8
    rule.observe(0, ACCEPTED, now, None)
    rule.observe(0, RATE_LIMITED, now + 1.0, None)
    assert rule.blocked_until[0] == now + 1.5
    assert rule.snapshot(now + 1.0)["rate_limited"] == [8]


def test_a_refused_connection_quarantines_like_a_refusal_streak():
    rule = Pacing(2)
    rule.observe(0, CONN_ERROR, 1.0, 30.0)  # a Retry-After cannot come with a refusal
    assert rule.blocked_until[0] == 1.5
    rule.observe(0, CONN_ERROR, 1.5, None)
    assert rule.blocked_until[0] == 2.5
    assert rule.ready(2.4, True) == [1] and rule.chance(0, 2.4) == 0.0
    assert list(rule.probes(2.4)) == [1]


def test_a_retry_after_is_believed():
    rule = Pacing(1)
    learn_rate(rule, 0, admits=10, refused_at=10.0, retry_after_s=3.0)
    assert rule.blocked_until[0] == 13.0  # not the 0.5 s backoff
    for now in (10.5, 12.0, 12.999):
        assert rule.ready(now, True) == [] and rule.chance(0, now) == 0.0
        assert rule.next_admit(0, now, True) >= 13.0
    assert rule.ready(13.0, False) == [0]
    assert rule.retry_after_capped == 0


def test_a_huge_retry_after_is_capped_and_counted():
    rule = Pacing(1, max_retry_after_s=60.0)
    rule.observe(0, RATE_LIMITED, 100.0, 86_400.0)  # "come back tomorrow"
    assert rule.blocked_until[0] == 160.0
    rule.observe(0, RATE_LIMITED, 160.0, math.inf)
    assert rule.blocked_until[0] == 220.0
    rule.observe(0, RATE_LIMITED, 220.0, 60.0)  # at the cap: not counted
    assert rule.retry_after_capped == 2
    assert rule.snapshot(220.0)["retry_after_capped"] == 2


def test_the_balancers_retry_after_cap_reaches_auto():
    auto = make_strategy("auto", 2, max_retry_after_s=10.0)
    assert auto.admission.max_retry_after_s == 10.0 and auto.params["max_retry_after_s"] == 10.0
    auto.observe(0, RATE_LIMITED, 5.0, 0.0003, retry_after_s=3600.0)
    assert auto.admission.blocked_until[0] == 15.0
    assert auto.snapshot(5.0)["retry_after_capped"] == 1
    explicit = make_strategy("auto", 2, params={"max_retry_after_s": 2.0}, max_retry_after_s=10.0)
    assert explicit.admission.max_retry_after_s == 2.0
    with pytest.raises(ValueError, match="max_retry_after_s"):
        Pacing(1, max_retry_after_s=math.nan)


@pytest.mark.parametrize("bogus", [-5.0, math.nan, -math.inf])
def test_a_negative_or_nan_retry_after_is_ignored(bogus):
    rule = Pacing(1)
    rule.observe(0, RATE_LIMITED, 10.0, bogus)
    assert rule.blocked_until[0] == 10.5  # the backoff, as if no Retry-After came
    rule.observe(0, RATE_LIMITED, 10.5, bogus)
    assert rule.blocked_until[0] == 11.5
    assert rule.retry_after_capped == 0


def pacing_walk(seed: int, start: float, **params):
    """A seeded random history for three servers; yields (rule, now) between events."""
    rng = random.Random(seed)
    rule = Pacing(3, **params)
    now = start
    for _ in range(150):
        now += rng.expovariate(5.0)
        yield rule, now
        server = rng.randrange(3)
        if server in rule.ready(now, False) or rng.random() < 0.3:
            rule.sent(server, now)
            outcome = rng.choices([ACCEPTED, FAILED, RATE_LIMITED, CONN_ERROR],
                                  [5, 2, 2, 0.3])[0]
            retry_after = rng.choice([None, None, 1.0, 3.0]) if outcome is RATE_LIMITED \
                else None
            rule.observe(server, outcome, now + 0.002, retry_after)


def assert_next_admit_keeps_its_promise(seeds, start: float, **params) -> int:
    checked = 0
    for seed in seeds:
        for rule, now in pacing_walk(seed, start, **params):
            for last_chance in (False, True):
                ready = rule.ready(now, last_chance)
                for server in range(3):
                    then = rule.next_admit(server, now, last_chance)
                    if server in ready:
                        assert then == now
                        continue
                    checked += 1
                    assert then > now, (seed, now, server)
                    assert server in rule.ready(then, last_chance), (seed, now, then, server)
    return checked


@pytest.mark.parametrize("params", [{}, {"reserve": 0.0}, {"backoff_s": 0.0},
                                    {"doubling_s": 1.0, "recover_s": 0.5}])
@pytest.mark.parametrize("start", [0.0, 1e6])
def test_next_admit_is_later_than_now_when_not_ready_and_the_server_is_ready_then(params,
                                                                                  start):
    assert assert_next_admit_keeps_its_promise(range(40), start, **params) > 1000


def test_next_admit_keeps_its_promise_when_the_rate_does_not_grow():
    assert_next_admit_keeps_its_promise(range(40), 0.0, decrease=1.0)


def test_trunk_reservation_a_last_chance_is_ready_before_an_earlier_attempt():
    rule = Pacing(1)  # reserve = 1 token
    learn_rate(rule, 0, admits=10, refused_at=10.0)
    last, early = rule.next_admit(0, 10.0, True), rule.next_admit(0, 10.0, False)
    assert 10.5 <= last < early
    assert rule.ready(last, True) == [0] and rule.ready(last, False) == []
    assert rule.ready(early, False) == [0]
    # a full bucket: the first id takes a token, the reserve is left for a last attempt
    rule.sent(0, 30.0)
    assert rule.ready(30.0, False) == [] and rule.ready(30.0, True) == [0]
    assert rule.chance(0, 30.0) == 1.0  # a reserved token still admits


def test_a_clock_starting_far_from_zero_works():
    start = 1e6  # a live balancer's monotonic clock after days of uptime
    rule = Pacing(2)
    rule.observe(0, ACCEPTED, start, None)
    rule.observe(0, RATE_LIMITED, start + 0.1, None)
    assert rule.ready(start + 0.2, True) == [1]
    assert start + 0.6 - 1e-9 <= rule.next_admit(0, start + 0.2, True) < start + 60
    for later in (start + 1, start + 1e4, start + 1e7, start + 1e9):
        assert 0.0 <= rule.chance(0, later) <= 1.0
        assert later <= rule.next_admit(0, later, False) < later + 60
        json.dumps(rule.snapshot(later), allow_nan=False)
    assert rule.ready(start + 1e4, False) == [0, 1]  # regrowth found the capacity again


def test_pacing_rejects_nonsense():
    for params in ({"decrease": 0.0}, {"decrease": 1.5}, {"recover_s": 0.0},
                   {"doubling_s": 0.0}, {"min_rate": 0.0}, {"rate_window_s": 0.0},
                   {"backoff_s": -1.0}, {"reserve": -1.0}, {"max_retry_after_s": -1.0}):
        with pytest.raises(ValueError):
            Pacing(1, **params)


# TrueCapacity (the oracle, simulator only) ---------------------------------------------

def test_true_capacity_reads_the_fleet_models():
    models = load_scenario("T2").build(0)
    rule = TrueCapacity(len(models), truth=models)
    now = 1.0
    assert list(rule.ready(now, False)) == list(range(len(models)))
    while models[0].handle(now).status != 429:  # drain server 0's bucket
        pass
    assert 0 not in rule.ready(now, True) and rule.chance(0, now) == 0.0
    then = rule.next_admit(0, now, False)
    assert then == pytest.approx(now + models[0].admits_in(now)) and then > now
    assert rule.chance(0, then + 1e-9) == 1.0 and 0 in rule.ready(then + 1e-9, False)
    assert list(rule.probes(now)) == list(range(len(models)))


def test_true_capacity_admits_exactly_when_next_admit_says():
    models = load_scenario("T2").build(0)
    rule = TrueCapacity(len(models), truth=models)
    while models[0].handle(1.0).status != 429:  # 3 tokens at 3 per second, all taken at 1.0
        pass
    then = rule.next_admit(0, 1.0, False)
    assert then == pytest.approx(1.0 + 1 / 3)
    assert rule.chance(0, then) == 1.0


def test_true_capacity_needs_the_truth_for_every_server():
    with pytest.raises(ValueError, match="true state"):
        TrueCapacity(2)
    with pytest.raises(ValueError, match="describes 1 servers"):
        TrueCapacity(2, truth=load_scenario("T2").build(0)[:1])
