"""The simulator's results for fixed seeds, pinned.

Speed work on the simulator, the router, the fleet models and the strategies must
not change what a simulation computes: these numbers were produced before that
work and must stay exactly the same. A deliberate change of behaviour (a model,
a strategy, how a strategy draws its random numbers) changes them: check that the
results stay statistically the same (`banditlb simulate --strategies all
--scenarios T1,T2,T3 --seeds 20 --json` before and after), then update the
table with the printout of the failing cases.
"""

from __future__ import annotations

import pytest

from banditlb.attempts import Rules
from banditlb.fleet.scenario import load_scenario
from banditlb.sim.engine import simulate

# strategy, scenario, seed, penalty weight:
#   (accepted, attempts, penalized, rate limited, timeouts, sum of number * score per request)
PINNED = [
    ("v1", "T1", 0, 1.0, (594, 668, 0, 0, 0, 178862.0)),
    ("v2", "T2", 0, 1.0, (548, 1097, 0, 247, 0, 163214.0)),
    ("v4", "T1", 0, 1.0, (595, 664, 0, 0, 0, 179001.0)),
    ("v4", "T1", 1, 0.5, (600, 664, 3, 0, 0, 179481.5)),
    ("v5", "T2", 0, 1.0, (557, 980, 0, 164, 0, 169339.0)),
    ("v6", "T3", 0, 1.0, (520, 1074, 0, 252, 0, 158678.0)),
    ("v7", "T3", 0, 1.0, (516, 1070, 0, 254, 0, 156020.0)),
    ("v8", "T3", 0, 1.0, (116, 1645, 0, 1441, 0, 8384.0)),
    ("v9", "T2", 0, 1.0, (481, 1125, 0, 332, 0, 146058.0)),
    ("v10", "T3", 0, 1.0, (38, 1742, 0, 1671, 0, 1201.0)),
    ("epsilon-greedy", "T2", 0, 1.0, (354, 1285, 0, 708, 0, 103546.0)),
    ("exp3", "T1", 0, 1.0, (587, 820, 0, 0, 0, 176956.0)),
    ("oracle", "T3", 0, 1.0, (564, 843, 0, 0, 0, 171434.0)),  # holds for capacity now
    ("random", "faults", 0, 1.0, (507, 1115, 0, 0, 126, 154160.0)),
]


@pytest.mark.parametrize(("strategy", "scenario", "seed", "weight", "expected"), PINNED,
                         ids=[f"{p[0]}-{p[1]}-seed{p[2]}-w{p[3]}" for p in PINNED])
def test_results_for_fixed_seeds_are_unchanged(strategy, scenario, seed, weight, expected):
    # a hanging upstream outlasts the gap between arrivals: ids overlap in virtual time
    timeout_s = 2.5 if scenario == "faults" else 1.0
    rules = Rules(penalty_weight=weight, attempt_timeout_s=timeout_s)
    stats = simulate(strategy, load_scenario(scenario), seed, 600, 10, rules)
    position_sum = sum(i * s for i, s in enumerate(stats.per_request_score))
    got = (stats.accepted, stats.attempts, stats.penalized, stats.rate_limited, stats.timeouts,
           round(position_sum, 6))
    assert got == expected
    assert stats.score == pytest.approx(stats.accepted - weight * stats.penalized)
