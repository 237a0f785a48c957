"""An upstream that announces its budget in headers is paced to what it announced."""

from __future__ import annotations

import math

from banditlb.admission import Pacing
from banditlb.outcomes import ACCEPTED, RATE_LIMITED
from banditlb.quota import Quota


def told(remaining: int, reset_s: float, limit: int | None = 5) -> Quota:
    return Quota(limit=limit, remaining=remaining, reset_s=reset_s)


def test_an_upstream_that_never_said_is_unpaced_until_its_first_429():
    rule = Pacing(2)
    assert list(rule.ready(0.0, False)) == [0, 1]
    assert rule.snapshot(0.0)["budget_left"] == [None, None]


def test_remaining_zero_comes_back_evenly_and_whole_at_the_reset():
    # limit 5, none left, full again in 2 s: one back every 0.4 s (a bucket's refill)
    rule = Pacing(2, reserve=0.0)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.0, None, told(0, 2.0))
    assert 0 not in rule.ready(0.3, True) and rule.chance(0, 0.3) < 1.0
    assert 0.4 <= rule.next_admit(0, 0.3, True) < 0.41
    assert 0 in rule.ready(0.41, False)
    assert rule.snapshot(2.02)["budget_left"][0] == 5  # the limit is back after the reset


def test_a_refusal_before_the_reset_holds_it_to_steps_a_fixed_window():
    # the even refill promised a token at 0.4 s; the upstream (a fixed window) refused it:
    # the learned pacing, cut to what it admitted lately, now bounds the announced budget
    rule = Pacing(1, reserve=0.0, backoff_s=0.0)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        rule.sent(0, t)
        rule.observe(0, ACCEPTED, t, None, told(4 - round(t * 10), 2.0 - t))
    rule.sent(0, 0.5)
    rule.observe(0, RATE_LIMITED, 0.5, None, told(0, 1.5))
    even = rule.budgets.tokens(0, 1.0)
    assert even >= 1.0 and rule.chance(0, 1.0) < 1.0 and 0 not in rule.ready(1.0, True)
    assert rule.next_admit(0, 1.0, True) > 1.0


def test_a_known_budget_is_spent_by_attempts_on_their_way_not_only_by_answers():
    rule = Pacing(1, reserve=0.0)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(3, 10.0))
    for _ in range(3):
        assert rule.ready(0.02, False)
        rule.sent(0, 0.02)  # three in flight: the budget of three is spoken for
    assert not rule.ready(0.02, True)
    # an answer that says 2 left while two others are still in flight leaves 0
    rule.observe(0, ACCEPTED, 0.03, None, told(2, 10.0))
    assert rule.budgets.tokens(0, 0.03) == 0


def test_trunk_reservation_keeps_the_last_announced_request_for_a_last_chance():
    rule = Pacing(1, reserve=1.0)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(1, 10.0))
    assert not rule.ready(0.02, False) and rule.ready(0.02, True)


def test_an_absurd_reset_is_capped_at_max_retry_after():
    rule = Pacing(1, max_retry_after_s=30.0)
    rule.sent(0, 0.0)
    rule.observe(0, RATE_LIMITED, 0.01, None, told(0, 10 ** 9))
    assert rule.next_admit(0, 0.02, True) <= 30.02


def test_read_headers_false_ignores_announced_budgets():
    rule = Pacing(1, read_headers=False)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(0, 100.0))
    assert rule.ready(0.02, False) and rule.chance(0, 0.02) == 1.0


def test_a_quota_without_a_reset_is_not_acted_on():
    rule = Pacing(1)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, Quota(limit=5, remaining=0, reset_s=None))
    assert rule.ready(0.02, False) and not rule.budgets.told[0]


def test_a_limit_never_announced_is_unbounded_after_the_reset():
    rule = Pacing(1)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(0, 1.0, limit=None))
    assert rule.budgets.tokens(0, 2.0) == math.inf


def test_after_the_reset_a_budget_short_by_attempts_in_flight_waits_for_them():
    # limit 3 announced, the reset has passed, two attempts still out: an early attempt
    # needs 2 (trunk reserve) and must be promised a time that moves forward, not `now`
    rule = Pacing(1, reserve=1.0)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(0, 0.5, limit=3))
    rule.sent(0, 0.6)
    rule.sent(0, 0.6)  # after the reset: 3 - 2 in flight = 1 left
    assert not rule.ready(0.7, False)
    assert rule.next_admit(0, 0.7, False) > 0.7


def test_a_limit_smaller_than_the_reserve_does_not_keep_early_attempts_out():
    rule = Pacing(1, reserve=1.0)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(1, 10.0, limit=1))
    assert rule.ready(0.02, False)  # a limit of 1 could never hold the reserve


def test_header_fields_never_stall_the_simulator():
    import dataclasses

    from banditlb.fleet.scenario import load_scenario
    from banditlb.rules import Rules
    from banditlb.sim.engine import simulate

    preset = load_scenario("T2")
    fielded = dataclasses.replace(preset, servers=[
        dataclasses.replace(s, rate_limit_headers="x-ratelimit", rate_limit_headers_on="all")
        for s in preset.servers])
    stats = simulate("auto", fielded, 0, 300, 10, Rules(deadline_s=5.0))
    assert stats.requests == 300 and stats.accepted > 250
