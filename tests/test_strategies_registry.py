"""The strategy registry: names, aliases, parameters and their errors."""

from __future__ import annotations

import pytest

from banditlb.strategies import (
    UnknownStrategy,
    alias_of,
    canonical_name,
    make_policy,
    parse_params,
    strategy_names,
)

LEARNERS = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"]
BASELINES = ["random", "round-robin", "epsilon-greedy", "exp3"]
WRITE_UP = LEARNERS + BASELINES + ["oracle"]


def test_names_in_display_order_oracle_last():
    names = strategy_names()
    assert [n for n in names if n in WRITE_UP] == WRITE_UP
    assert names[-1] == "oracle"
    assert "oracle" not in strategy_names(include_oracle=False)
    assert [n for n in strategy_names(include_oracle=False) if n in WRITE_UP] == \
        LEARNERS + BASELINES


@pytest.mark.parametrize(("given", "short"), [
    ("thompson", "v4"), ("Thompson", "v4"), (" V4 ", "v4"), ("explore-first", "v1"),
    ("ucb", "v2"), ("ucb-modified", "v3"), ("thompson-modified", "v5"),
    ("thompson-masked", "v6"), ("sliding-window", "v7"), ("blocking", "v8"),
    ("balanced-exploration", "v9"), ("primal-dual", "v10"), ("ROUND-ROBIN", "round-robin"),
])
def test_canonical_name_accepts_short_name_or_alias(given, short):
    assert canonical_name(given) == short


def test_alias_of():
    assert alias_of("v4") == "thompson"
    assert alias_of("primal-dual") == "primal-dual"
    assert alias_of("exp3") == "exp3"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownStrategy) as info:
        make_policy("thompsn", 3)
    message = str(info.value)
    assert "thompsn" in message
    assert "v4 (thompson)" in message and "round-robin" in message
    assert isinstance(info.value, ValueError)


def test_unknown_param_names_the_valid_ones():
    with pytest.raises(ValueError, match="no parameter windw.*window"):
        make_policy("v7", 3, params={"windw": 5})
    with pytest.raises(ValueError, match="its parameters: none"):
        make_policy("random", 3, params={"epsilon": 0.2})


def test_param_types_are_checked_and_numbers_converted():
    assert make_policy("v7", 3, params={"window": 12.0}).window == 12
    assert make_policy("v6", 3, params={"cooldown_s": 2}).cooldown_s == 2.0
    with pytest.raises(ValueError, match="window must be an integer"):
        make_policy("v7", 3, params={"window": 2.5})
    with pytest.raises(ValueError, match="epsilon must be a number"):
        make_policy("epsilon-greedy", 3, params={"epsilon": "lots"})
    with pytest.raises(ValueError, match="epsilon must be within"):
        make_policy("epsilon-greedy", 3, params={"epsilon": 2})


@pytest.mark.parametrize("name", WRITE_UP)
def test_params_round_trip(name):
    truth = [None, None, None]
    policy = make_policy(name, 3, seed=5, truth=truth)
    again = make_policy(name, 3, seed=5, params=policy.params, truth=truth)
    assert again.params == policy.params
    assert policy.name == name and policy.seed == 5


def test_oracle_needs_truth_others_ignore_it():
    with pytest.raises(ValueError, match="true state"):
        make_policy("oracle", 3)
    with pytest.raises(ValueError, match="describes 2 servers"):
        make_policy("oracle", 3, truth=[None, None])
    make_policy("v4", 3, truth=[None, None, None])


def test_a_policy_needs_a_server():
    with pytest.raises(ValueError, match="at least one server"):
        make_policy("v4", 0)


def test_parse_params_types_values():
    assert parse_params(["window=50", "cooldown_s=1.5", "flag=true", "other=False",
                         " gamma = 0.2 ", "label=abc"]) == {
        "window": 50, "cooldown_s": 1.5, "flag": True, "other": False, "gamma": 0.2,
        "label": "abc"}
    assert parse_params([]) == {}


@pytest.mark.parametrize(("item", "reason"), [
    ("window", "expected key=value"),
    ("=5", "expected key=value"),
    ("window=", "no value"),
    ("two words=1", "not a parameter name"),
])
def test_parse_params_rejects_bad_items_with_the_reason(item, reason):
    with pytest.raises(ValueError, match=reason):
        parse_params([item])


def test_parse_params_rejects_a_repeated_key():
    with pytest.raises(ValueError, match="window given twice"):
        parse_params(["window=5", "window=6"])


def test_the_routers_free_attempts_reach_strategies_that_plan_around_them():
    assert make_policy("v4", 5, free_attempts=2).free_attempts == 2
    assert make_policy("auto", 5, free_attempts=4).free_attempts == 4
    assert make_policy("v4", 5, params={"free_attempts": 1}, free_attempts=2).free_attempts == 1
    assert "free_attempts" not in make_policy("random", 5, free_attempts=2).params


def test_auto_survives_a_clock_far_from_zero_and_long_quiet_spells():
    from banditlb.outcomes import Outcome
    from banditlb.strategies.base import Context

    policy = make_policy("auto", 3)
    start = 1e6  # a live balancer's monotonic clock after days of uptime
    policy.observe(0, Outcome.ACCEPTED, start, 0.001)
    policy.observe(0, Outcome.RATE_LIMITED, start + 0.1, 0.001)
    for later in (start + 1, start + 1e4, start + 1e7):
        assert policy.select(Context(now=later)) in (0, 1, 2)
        assert 0.0 <= policy.estimate(0, later) <= 1.0
