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


def test_remaining_zero_means_not_ready_until_the_reset_then_the_limit():
    rule = Pacing(2)
    rule.sent(0, 0.0)
    rule.observe(0, ACCEPTED, 0.01, None, told(0, 2.0))
    assert 0 not in rule.ready(0.5, True) and rule.chance(0, 0.5) == 0.0
    assert 2.0 < rule.next_admit(0, 0.5, True) < 2.02
    assert 0 in rule.ready(2.02, False)  # the limit (5) is back after the reset
    assert rule.snapshot(2.02)["budget_left"][0] == 5


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
