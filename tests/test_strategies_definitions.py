"""Each strategy against its definition, on tiny scripted sequences."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from banditlb.attempts import STOP, AttemptLoop, Send, Wait
from banditlb.outcomes import Outcome
from banditlb.rules import Rules
from banditlb.strategies import make_strategy
from banditlb.strategies.base import Context

A, F, L = Outcome.ACCEPTED, Outcome.FAILED, Outcome.RATE_LIMITED


def feed(p, server: int, outcomes, now: float = 0.0) -> None:
    for outcome in outcomes:
        p.observe(server, outcome, now, 0.01)


def first_decision(p, now: float = 0.0, rules: Rules | None = None):
    """One new id through the attempt loop: what it decides first."""
    return AttemptLoop(p, rules or Rules(), now).decide(now)


def first_pick(p, now: float = 0.0) -> int:
    """One new id through the attempt loop: the server its first attempt goes to."""
    decision = first_decision(p, now)
    assert type(decision) is Send, decision
    return decision.server


def pick(p, now: float = 0.0, ready=None, **ctx) -> int:
    """The chooser's pick among `ready` (every server by default) for the given attempt."""
    return p.chooser.choose(list(range(p.n)) if ready is None else ready,
                            Context(now=now, **ctx))


# v1 explore-first ---------------------------------------------------------------------

def test_v1_discovers_untried_first_then_by_variance_then_exploits_after_50():
    p = make_strategy("v1", 5)
    picks = []
    for _ in range(60):
        s = first_pick(p)
        picks.append(s)
        feed(p, s, [A if s == 2 else F])
    assert picks[:5] == [0, 1, 2, 3, 4]
    assert p.chooser.requests == 60 and not p.chooser.discovering
    discovery = Counter(picks[:50])
    assert min(discovery.values()) >= 8  # variance keeps spreading the attempts
    assert picks[50:] == [2] * 10  # request 51 on: best observed success rate


def test_v1_discovery_lasts_exactly_the_given_number_of_requests():
    p = make_strategy("v1", 3, params={"discovery_requests": 4})
    for _ in range(4):
        first_pick(p)
        assert p.chooser.discovering
    first_pick(p)
    assert not p.chooser.discovering


def test_v1_estimate_is_the_beta_mean_and_429_is_a_failure():
    p = make_strategy("v1", 2)
    feed(p, 0, [A, A, A, L])
    assert p.estimate(0, 0.0) == pytest.approx(4 / 6)
    assert p.chooser.tally.failures[0] == 1 and p.chooser.tally.rate_limited[0] == 1


# v2/v3 UCB ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["v2", "v3"])
def test_ucb_tries_every_server_once_before_any_repeat(name):
    p = make_strategy(name, 6)
    picks = []
    for _ in range(6):
        s = first_pick(p)
        picks.append(s)
        feed(p, s, [A])  # even a success does not make it repeat before the others
    assert sorted(picks) == list(range(6))


def test_ucb_index_by_hand():
    p = make_strategy("v2", 2)
    feed(p, 0, [A] * 11 + [F] * 9)
    feed(p, 1, [A] * 95 + [F] * 5)
    t = 120
    index = [11 / 20 + math.sqrt(2 * math.log(t) / 20), 0.95 + math.sqrt(2 * math.log(t) / 100)]
    assert first_pick(p) == index.index(max(index)) == 1
    assert p.estimate(0, 0.0) == pytest.approx(0.55)


def test_ucb_modified_explores_harder_within_free_attempts():
    p = make_strategy("v3", 2)
    feed(p, 0, [A] * 11 + [F] * 9)  # 0.55 over 20 tries
    feed(p, 1, [A] * 95 + [F] * 5)  # 0.95 over 100 tries
    # c=3: 0.55 + sqrt(3 ln 120 / 20) = 1.397 > 0.95 + sqrt(3 ln 120 / 100) = 1.329
    assert first_pick(p) == 0
    # c=1 past the free attempts: 1.039 < 1.169
    assert pick(p, attempt=3, tried=(0, 1, 0)) == 1


# v4 Thompson --------------------------------------------------------------------------

def test_v4_follows_the_posterior_and_learns_429_as_failure():
    p = make_strategy("v4", 3, seed=3)
    feed(p, 0, [F] * 20)
    feed(p, 1, [A] * 20)
    feed(p, 2, [L] * 20)
    assert p.chooser.posterior.beta[2] == 21 and p.chooser.posterior.alpha[2] == 1
    assert p.estimate(1, 0.0) == pytest.approx(21 / 22)
    assert [first_pick(p) for _ in range(200)] == [1] * 200


# v5 flattened Thompson ----------------------------------------------------------------

def test_v5_flattened_shapes_computed_by_hand():
    p = make_strategy("v5", 2)
    feed(p, 0, [A] * 8 + [F] * 2)  # alpha 9, beta 3, total 12
    # variance scale 4, 2, 1 -> factor max(2, 12/scale)/12 = 0.25, 0.5, 1
    assert p.chooser.flattened(0, 0) == pytest.approx((2.25, 1.0))  # beta 0.75 floored at 1
    assert p.chooser.flattened(0, 1) == pytest.approx((4.5, 1.5))
    assert p.chooser.flattened(0, 2) == pytest.approx((9.0, 3.0))
    feed(p, 1, [A])  # alpha 2, beta 1, total 3: 3/4 < 2, factor 2/3
    assert p.chooser.flattened(1, 0) == pytest.approx((4 / 3, 1.0))


def test_v5_gives_a_weak_server_more_first_attempts_than_v4():
    def weak_share(name):
        p = make_strategy(name, 2, seed=11)
        feed(p, 0, [A] * 18 + [F] * 2)
        feed(p, 1, [A] * 3 + [F] * 2)
        return sum(first_pick(p) == 1 for _ in range(2000)) / 2000

    assert weak_share("v5") > weak_share("v4") + 0.1


# v6 masked Thompson -------------------------------------------------------------------

def test_v6_429_masks_for_the_cooldown_and_is_no_failure():
    p = make_strategy("v6", 3, seed=1)
    feed(p, 0, [A] * 30)
    feed(p, 0, [L], now=10.0)
    assert (p.chooser.posterior.alpha[0], p.chooser.posterior.beta[0]) == (31, 1)
    assert p.chooser.tally.failures[0] == 0 and p.chooser.tally.rate_limited[0] == 1
    assert all(first_pick(p, now=10.9) != 0 for _ in range(50))
    assert first_pick(p, now=11.0) == 0
    assert p.chooser.quality(0, 10.5) == pytest.approx(31 / 32)  # masked keeps its quality
    assert p.estimate(0, 10.5) == 0.0  # but an attempt sent now is expected to be refused
    assert p.estimate(0, 11.0) == pytest.approx(31 / 32)


def test_v6_when_all_are_masked_the_one_limited_longest_ago():
    p = make_strategy("v6", 3, params={"cooldown_s": 2.0})
    feed(p, 1, [L], now=1.0)
    feed(p, 0, [L], now=1.5)
    feed(p, 2, [L], now=2.0)
    assert first_pick(p, now=2.5) == 1
    assert first_pick(p, now=3.2) == 1  # ready again: the only one ready
    assert first_pick(p, now=3.6) in (0, 1)


# v7 sliding window --------------------------------------------------------------------

def test_v7_forgets_beyond_its_window():
    p = make_strategy("v7", 2, params={"window": 5})
    feed(p, 0, [F] * 20)
    posterior = p.chooser.posterior
    assert (posterior.alpha[0], posterior.beta[0]) == (1, 6)
    feed(p, 0, [A] * 3)
    assert (posterior.alpha[0], posterior.beta[0]) == (4, 3)
    feed(p, 0, [L] * 4 + [A] * 2)  # 429s mask, never enter the window
    assert (posterior.alpha[0], posterior.beta[0]) == (6, 1)
    assert p.estimate(0, 100.0) == pytest.approx(6 / 7)


def test_v7_masks_like_v6():
    p = make_strategy("v7", 2, params={"cooldown_s": 3.0})
    feed(p, 1, [L], now=5.0)
    assert all(first_pick(p, now=7.9) == 0 for _ in range(20))
    assert p.snapshot(6.0)["masked_until"] == [None, 8.0]


# v8 blocking --------------------------------------------------------------------------

def blocked_for(p, server: int, now: float) -> float:
    feed(p, server, [L], now=now)
    return p.admission.until[server] - now


def test_v8_block_doubles_per_consecutive_429_up_to_4x():
    p = make_strategy("v8", 2)
    durations = []
    now = 0.0
    for _ in range(4):
        durations.append(blocked_for(p, 0, now))
        now += durations[-1]
    assert durations == [5.0, 10.0, 20.0, 20.0]


def test_v8_success_resets_the_block_a_failure_does_not():
    p = make_strategy("v8", 2)
    assert blocked_for(p, 0, 0.0) == 5.0
    assert blocked_for(p, 0, 5.0) == 10.0
    feed(p, 0, [F], now=15.0)
    assert blocked_for(p, 0, 16.0) == 20.0
    feed(p, 0, [A], now=40.0)
    assert blocked_for(p, 0, 41.0) == 5.0
    assert p.chooser.tally.failures[0] == 1 and p.chooser.tally.rate_limited[0] == 4


def test_v8_picks_unblocked_else_the_block_that_ends_first():
    p = make_strategy("v8", 3)
    feed(p, 2, [A] * 30)
    blocked_for(p, 2, 0.0)  # until 5
    assert all(first_pick(p, now=1.0) != 2 for _ in range(30))
    blocked_for(p, 0, 0.0)  # until 5
    blocked_for(p, 0, 5.0)  # until 15
    blocked_for(p, 1, 1.0)  # until 6
    blocked_for(p, 2, 5.0)  # until 15
    assert first_pick(p, now=5.5) == 1


# v9/v10 bandits with knapsacks --------------------------------------------------------

@pytest.mark.parametrize("name", ["v9", "v10"])
def test_knapsack_strategies_try_every_server_first(name):
    p = make_strategy(name, 4)
    picks = []
    for _ in range(4):
        s = first_pick(p)
        picks.append(s)
        feed(p, s, [A])
    assert picks == [0, 1, 2, 3]


def test_v9_explores_with_budget_left_exploits_without():
    p = make_strategy("v9", 2)
    feed(p, 0, [A] * 5 + [F] * 5)  # 0.5 over 10: wide interval
    feed(p, 1, [A] * 70 + [F] * 30)  # 0.7 over 100
    assert first_pick(p) == 0  # full budget: optimism favours the uncertain server
    assert pick(p, attempt=3, tried=(0, 1, 0)) == 1  # none left


def test_v9_429s_cost_capacity():
    p = make_strategy("v9", 2)
    feed(p, 0, [A] * 60 + [L] * 40)  # accepted 0.6, 429 for 0.4
    feed(p, 1, [A] * 55 + [F] * 45)  # accepted 0.55, no 429
    assert first_pick(p) == 1
    assert p.estimate(0, 0.0) == pytest.approx(0.6)


def test_v10_price_of_capacity_follows_429s():
    p = make_strategy("v10", 2, params={"learning_rate": 0.1, "target_rate": 0.1})
    feed(p, 1, [A, F] * 50)  # accepted 0.5, no 429: the price decays
    assert p.chooser.price == pytest.approx(math.exp(-0.1 * 0.1 * 100))
    feed(p, 0, [A, L] * 50)  # accepted 0.5, half 429s: the price rises
    assert p.chooser.price == pytest.approx(math.exp(-1.0 + 0.1 * (50 * 0.9 - 50 * 0.1)))
    assert first_pick(p) == 1
    feed(p, 1, [A] * 400)
    assert p.chooser.price == pytest.approx(math.exp(-1.0))  # 400 more without a 429


def test_v10_cheap_capacity_goes_for_reward():
    p = make_strategy("v10", 2, params={"lambda_init": 0.001})
    feed(p, 0, [A] * 60 + [L] * 40)
    feed(p, 1, [A] * 50 + [F] * 50)
    assert first_pick(p) == 0


# baselines ----------------------------------------------------------------------------

def test_round_robin_order_skips_servers_not_ready():
    p = make_strategy("round-robin", 4)
    assert [first_pick(p) for _ in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [pick(p, ready=[0, 1, 2]) for _ in range(3)] == [2, 0, 1]


def test_random_is_roughly_uniform():
    p = make_strategy("random", 4, seed=2)
    counts = Counter(first_pick(p) for _ in range(4000))
    assert all(850 < counts[s] < 1150 for s in range(4))


def test_epsilon_greedy_explores_about_a_tenth():
    p = make_strategy("epsilon-greedy", 10, seed=4)
    feed(p, 6, [A] * 10)
    for s in range(10):
        if s != 6:
            feed(p, s, [F] * 10)
    picks = [first_pick(p) for _ in range(5000)]
    away = sum(s != 6 for s in picks) / len(picks)
    assert 0.06 < away < 0.12  # 0.1 * 9/10 expected


def test_exp3_weights_move_toward_the_good_arm():
    p = make_strategy("exp3", 3, seed=5)
    for _ in range(600):
        s = first_pick(p)
        feed(p, s, [A if s == 1 else F])
    exp3 = p.chooser
    probs = exp3.probabilities([0, 1, 2])
    assert probs[1] > 0.9 and exp3.log_weights[1] > exp3.log_weights[0] + 5
    assert probs[0] == pytest.approx(probs[2])  # unrewarded arms keep their weight
    assert min(probs) >= exp3.gamma / 3 - 1e-12


# oracle -------------------------------------------------------------------------------

class Truth:
    def __init__(self, p: float, admits: bool, admits_in: float = 1.0):
        self.p, self.admits, self.wait = p, admits, admits_in

    def true_success(self, now: float) -> float:
        return self.p

    def available(self, now: float) -> bool:
        return self.admits

    def admits_in(self, now: float) -> float:
        return 0.0 if self.admits else self.wait


def test_oracle_picks_the_best_available():
    truth = [Truth(0.5, True), Truth(0.9, False), Truth(0.7, True), Truth(0.7, True)]
    p = make_strategy("oracle", 4, seed=1, truth=truth)
    picks = Counter(first_pick(p) for _ in range(400))
    assert set(picks) == {2, 3} and min(picks.values()) > 150  # ties broken at random
    assert p.estimate(1, 0.0) == 0.0 and p.estimate(2, 0.0) == 0.7
    assert p.chooser.quality(1, 0.0) == 0.9
    truth[2].admits = truth[3].admits = False
    assert first_pick(p) == 0


def test_oracle_with_nothing_admitting_holds_until_the_true_admission():
    truth = [Truth(0.5, False, 2.0), Truth(0.9, False, 3.0), Truth(0.7, False, 1.5)]
    p = make_strategy("oracle", 3, truth=truth)
    assert first_decision(p, now=10.0) == Wait(11.5)  # no deadline: it can wait
    assert first_decision(p, now=10.0, rules=Rules(deadline_s=1.0)) is STOP  # too late


def test_oracle_that_does_not_hold_with_nothing_admitting_picks_the_best_overall():
    p = make_strategy("oracle", 3, params={"hold": False},
                      truth=[Truth(0.5, False), Truth(0.9, False), Truth(0.7, False)])
    assert first_pick(p) == 1
