"""The strategy registry: names, aliases, parameters and their errors."""

from __future__ import annotations

import pytest

from banditlb.attempts import AttemptLoop, Send, Wait
from banditlb.outcomes import Outcome
from banditlb.rules import Rules
from banditlb.strategies import (
    UnknownStrategy,
    alias_of,
    canonical_name,
    make_strategy,
    parse_params,
    strategy_names,
    strategy_spec,
)

LEARNERS = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"]
BASELINES = ["random", "round-robin", "epsilon-greedy", "exp3"]
WRITE_UP = LEARNERS + BASELINES + ["oracle"]


def test_names_in_display_order_oracle_last():
    names = strategy_names()
    assert names == ["auto"] + WRITE_UP  # our default first
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
        make_strategy("thompsn", 3)
    message = str(info.value)
    assert "thompsn" in message
    assert "v4 (thompson)" in message and "round-robin" in message
    assert isinstance(info.value, ValueError)


def test_unknown_param_names_the_valid_ones():
    with pytest.raises(ValueError, match="no parameter windw.*window"):
        make_strategy("v7", 3, params={"windw": 5})
    with pytest.raises(ValueError, match="its parameters: hold$"):  # every one can hold
        make_strategy("random", 3, params={"epsilon": 0.2})
    with pytest.raises(ValueError, match="no parameter cooldwn_s.*cooldown_s, hold"):
        make_strategy("v6", 3, params={"cooldwn_s": 2})


def test_param_types_are_checked_and_numbers_converted():
    assert make_strategy("v7", 3, params={"window": 12.0}).chooser.window == 12
    v6 = make_strategy("v6", 3, params={"cooldown_s": 2})
    assert v6.admission.cooldown_s == 2.0 and isinstance(v6.params["cooldown_s"], float)
    with pytest.raises(ValueError, match="window must be an integer"):
        make_strategy("v7", 3, params={"window": 2.5})
    with pytest.raises(ValueError, match="epsilon must be a number"):
        make_strategy("epsilon-greedy", 3, params={"epsilon": "lots"})
    with pytest.raises(ValueError, match="epsilon must be within"):
        make_strategy("epsilon-greedy", 3, params={"epsilon": 2})
    with pytest.raises(ValueError, match="hold must be true or false"):
        make_strategy("v4", 3, params={"hold": 1})
    with pytest.raises(ValueError, match="cooldown_s must be >= 0"):
        make_strategy("v6", 3, params={"cooldown_s": -1})


@pytest.mark.parametrize("name", WRITE_UP + ["auto"])
def test_params_round_trip(name):
    truth = [None, None, None]
    strategy = make_strategy(name, 3, seed=5, truth=truth)
    again = make_strategy(name, 3, seed=5, params=strategy.params, truth=truth)
    assert again.params == strategy.params == strategy_spec(name).param_defaults()
    assert strategy.name == name and strategy.chooser.seed == 5
    assert strategy.alias == alias_of(name) and strategy.n == 3


@pytest.mark.parametrize(("name", "admission", "hold"), [
    ("auto", "Pacing", True), ("v1", "Open", False), ("v4", "Open", False),
    ("v6", "Mask", False), ("v7", "Mask", False), ("v8", "Block", False),
    ("v10", "Open", False), ("round-robin", "Open", False), ("oracle", "TrueCapacity", True),
])
def test_each_strategy_is_a_chooser_with_its_admission_rule(name, admission, hold):
    strategy = make_strategy(name, 3, truth=[None] * 3)
    assert type(strategy.admission).__name__ == admission
    assert strategy.hold is hold and strategy.params["hold"] is hold
    assert strategy.chooser.n == strategy.admission.n == 3


def test_param_defaults_are_the_choosers_the_admission_rules_and_hold():
    v6 = strategy_spec("thompson-masked").param_defaults()
    assert v6 == {"prior_alpha": 1.0, "prior_beta": 1.0, "free_attempts": 3,
                  "cooldown_s": 1.0, "hold": False}
    v8 = strategy_spec("v8").param_defaults()
    assert (v8["block_s"], v8["max_multiplier"], v8["hold"]) == (5.0, 4.0, False)
    auto = strategy_spec("auto").param_defaults()
    assert {"prior_alpha", "drift_z", "skip_tried", "decrease", "doubling_s", "reserve",
            "max_retry_after_s", "pace", "hold"} <= set(auto)
    assert auto["hold"] is True and auto["max_retry_after_s"] == 60.0
    assert strategy_spec("random").param_defaults() == {"hold": False}
    assert "truth" not in strategy_spec("oracle").param_defaults()


def test_hold_is_a_parameter_of_every_strategy():
    assert make_strategy("v6", 3, params={"hold": True}).hold is True
    assert make_strategy("auto", 3, params={"hold": False}).hold is False


def test_params_go_to_the_chooser_or_the_admission_rule_that_takes_them():
    auto = make_strategy("auto", 3, params={"drift_z": 3.0, "reserve": 0.0, "pace": False})
    assert auto.chooser.drift_z == 3.0
    assert auto.admission.reserve == 0.0 and auto.admission.pace is False
    v8 = make_strategy("v8", 3, params={"prior_beta": 2.0, "block_s": 1.0})
    assert v8.chooser.prior_beta == 2.0 and v8.admission.block_s == 1.0


def test_strategy_spec_knows_names_and_aliases():
    assert strategy_spec("Thompson").name == "v4"
    assert strategy_spec("v8").alias == "blocking"
    assert strategy_spec("oracle").needs_truth and not strategy_spec("auto").needs_truth
    with pytest.raises(UnknownStrategy):
        strategy_spec("nope")


def test_oracle_needs_truth_others_ignore_it():
    with pytest.raises(ValueError, match="true state"):
        make_strategy("oracle", 3)
    with pytest.raises(ValueError, match="describes 2 servers"):
        make_strategy("oracle", 3, truth=[None, None])
    make_strategy("v4", 3, truth=[None, None, None])


def test_a_strategy_needs_a_server():
    with pytest.raises(ValueError, match="at least one server"):
        make_strategy("v4", 0)


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
    assert make_strategy("v4", 5, free_attempts=2).chooser.free_attempts == 2
    assert make_strategy("auto", 5, free_attempts=4).chooser.free_attempts == 4
    assert make_strategy("v4", 5, params={"free_attempts": 1},
                         free_attempts=2).chooser.free_attempts == 1
    assert "free_attempts" not in make_strategy("random", 5, free_attempts=2).params


def test_the_balancers_retry_after_cap_reaches_only_rules_that_read_retry_after():
    assert make_strategy("auto", 5, max_retry_after_s=30.0).admission.max_retry_after_s == 30.0
    assert make_strategy("auto", 5, params={"max_retry_after_s": 5.0},
                         max_retry_after_s=30.0).admission.max_retry_after_s == 5.0
    for name in ("v4", "v6", "v8"):
        assert "max_retry_after_s" not in make_strategy(name, 5, max_retry_after_s=30.0).params


def test_auto_survives_a_clock_far_from_zero_and_long_quiet_spells():
    strategy = make_strategy("auto", 3)
    start = 1e6  # a live balancer's monotonic clock after days of uptime
    strategy.observe(0, Outcome.ACCEPTED, start, 0.001)
    strategy.observe(0, Outcome.RATE_LIMITED, start + 0.1, 0.001)
    for later in (start + 1, start + 1e4, start + 1e7):
        decision = AttemptLoop(strategy, Rules(deadline_s=5.0), later).decide(later)
        assert type(decision) in (Send, Wait)
        if type(decision) is Send:
            assert decision.server in (0, 1, 2)
        else:
            assert later < decision.until < later + 5.0
        assert 0.0 <= strategy.estimate(0, later) <= 1.0
