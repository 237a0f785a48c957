"""The retry budget: retries at most a share of recent requests, with a floor per window."""

from __future__ import annotations

import pytest

from banditlb.attempts import GAVE_UP, AttemptLoop, Send
from banditlb.outcomes import FAILED, Attempt
from banditlb.retry_budget import RetryBudget, RetryBudgetConfig
from banditlb.rules import Rules
from banditlb.strategies import make_strategy


def test_retries_stay_within_the_share_of_requests_in_the_window():
    budget = RetryBudget(RetryBudgetConfig(percent=20, min_retries=0, window_s=10))
    for k in range(50):
        budget.request(k * 0.1)
    granted = sum(budget.allows_retry(5.0) for _ in range(30))
    assert granted == 10 and budget.denied == 20  # 20% of 50 requests


def test_the_floor_lets_a_quiet_pool_retry_and_old_requests_leave_the_window():
    budget = RetryBudget(RetryBudgetConfig(percent=20, min_retries=3, window_s=10))
    budget.request(0.0)
    assert [budget.allows_retry(0.0) for _ in range(4)] == [True, True, True, False]
    # 11 s later the window holds neither the request nor the three retries
    assert budget.allows_retry(11.0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="retry budget"):
        RetryBudgetConfig(percent=-1)


def test_the_router_stops_an_id_when_the_budget_refuses_its_retry():
    strategy = make_strategy("round-robin", 3, seed=0)
    budget = RetryBudget(RetryBudgetConfig(percent=0, min_retries=0))
    loop = AttemptLoop(strategy, Rules(max_attempts=5), 0.0, budget)
    first = loop.decide(0.0)
    assert type(first) is Send  # the first attempt is never a retry
    loop.record(Attempt(first.server, FAILED, 0.0, 0.01, 500))
    assert loop.decide(0.02) is None and loop.status == GAVE_UP and budget.denied == 1
