"""A reload keeps what was learned about the upstreams that stay, for every strategy."""

from __future__ import annotations

import copy
import random

import pytest

from banditlb.outcomes import ACCEPTED, FAILED, RATE_LIMITED
from banditlb.strategies import make_strategy, strategy_names
from banditlb.strategies.base import Context
from banditlb.strategies.carry import carried

LEARNERS = strategy_names(include_oracle=False)
SUCCESS = [0.9, 0.3, 0.6, 0.5]


def drive(strategy, steps: int, seed: int, start: float = 0.0) -> list[int]:
    """A small fleet without the network: each pick succeeds with its rate, or is
    refused now and then; returns the picks."""
    rng = random.Random(seed)
    picks, now = [], start
    for _ in range(steps):
        now += 0.1
        admission = strategy.admission
        ready = admission.ready(now, False) or list(admission.probes(now)) or [0]
        strategy.chooser.begin_request(now)
        pick = strategy.chooser.choose(ready, Context(now))
        admission.sent(pick, now)
        draw = rng.random()
        outcome = RATE_LIMITED if draw < 0.1 else (
            ACCEPTED if draw < 0.1 + 0.9 * SUCCESS[pick % len(SUCCESS)] else FAILED)
        strategy.observe(pick, outcome, now + 0.002, 0.002, 1.0 if outcome is RATE_LIMITED
                         else None)
        strategy.chooser.end_request(now, outcome is ACCEPTED, 1)
        picks.append(pick)
    return picks


@pytest.mark.parametrize("name", LEARNERS)
def test_carrying_to_the_same_upstreams_changes_nothing(name):
    old = make_strategy(name, 4, seed=3)
    drive(old, 200, seed=1)
    twin = carried(copy.deepcopy(old), make_strategy(name, 4, seed=99), [0, 1, 2, 3])
    assert drive(twin, 150, seed=2, start=20.0) == drive(old, 150, seed=2, start=20.0)


@pytest.mark.parametrize("name", LEARNERS)
def test_upstreams_that_stay_keep_their_beliefs_and_new_ones_start_fresh(name):
    old = make_strategy(name, 4, seed=3)
    drive(old, 300, seed=1)
    before = copy.deepcopy(old)
    # upstream 0 removed, 1-3 stay (now 0-2), a new one comes last
    new = carried(old, make_strategy(name, 4, seed=3), [1, 2, 3, None])
    fresh = make_strategy(name, 4, seed=3)
    for i, k in enumerate([1, 2, 3]):
        assert new.chooser.quality(i, 30.0) == pytest.approx(before.chooser.quality(k, 30.0))
    assert new.chooser.quality(3, 30.0) == pytest.approx(fresh.chooser.quality(3, 30.0))
    drive(new, 200, seed=5, start=30.0)  # and it goes on working over the new set


def test_auto_carries_pacing_and_keeps_shared_lists_shared():
    old = make_strategy("auto", 3, seed=0)
    drive(old, 300, seed=1)
    rates = list(old.admission.rate)
    new = carried(old, make_strategy("auto", 2, seed=0), [2, None])
    assert new.admission.rate == [rates[2], float("inf")]
    assert new.admission.budgets.in_flight is new.admission.flight.count
    assert new.n == 2 and len(new.admission.blocked_until) == 2


def test_a_keep_list_that_does_not_fit_is_refused():
    old = make_strategy("auto", 2)
    with pytest.raises(ValueError, match="keep"):
        carried(old, make_strategy("auto", 2), [0])
    with pytest.raises(ValueError, match="keep"):
        carried(old, make_strategy("auto", 2), [0, 5])
