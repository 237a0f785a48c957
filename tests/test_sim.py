"""The virtual-time simulator: determinism, the oracle as an upper bound, the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from banditlb.attempts import Rules
from banditlb.cli import app
from banditlb.fleet.scenario import load_scenario
from banditlb.sim.engine import simulate
from banditlb.sim.matrix import run_matrix
from banditlb.strategies import strategy_names

CHALLENGE = [load_scenario(name) for name in ("T1", "T2", "T3")]


def test_same_seed_same_run_and_other_seed_other_run():
    t3 = load_scenario("T3")
    first = simulate("v4", t3, 3, 300, 10, Rules())
    again = simulate("v4", t3, 3, 300, 10, Rules())
    other = simulate("v4", t3, 4, 300, 10, Rules())
    assert first.per_request_score == again.per_request_score
    assert (first.attempts, first.rate_limited) == (again.attempts, again.rate_limited)
    assert first.per_request_score != other.per_request_score


def test_counts_add_up():
    stats = simulate("random", load_scenario("T2"), 0, 500, 10, Rules())
    assert stats.requests == len(stats.per_request_score) == 500
    assert stats.accepted <= 500 <= stats.attempts <= 500 * 3  # weight 1 stops at 3
    assert stats.penalized == 0
    assert stats.score == pytest.approx(sum(stats.per_request_score)) == stats.accepted


def test_weight_half_goes_past_the_free_attempts_and_is_penalized():
    stats = simulate("v4", load_scenario("T1"), 0, 500, 10,
                     Rules(penalty_weight=0.5, free_attempts=1))
    assert stats.penalized > 0
    assert stats.score == pytest.approx(stats.accepted - 0.5 * stats.penalized)


def test_hanging_upstreams_time_out_and_requests_overlap_in_virtual_time():
    rules = Rules(attempt_timeout_s=2.5)  # longer than the gap between arrivals
    stats = simulate("random", load_scenario("faults"), 0, 300, 10, rules)
    assert stats.timeouts > 0
    assert stats.accepted > 200  # random keeps trying the faulty three


def test_oracle_beats_every_strategy_on_the_challenge_fleets():
    rows = run_matrix(strategy_names(), CHALLENGE, range(4), 400, 10, Rules(), workers=2)
    for scenario in ("T1", "T2", "T3"):
        scores = {r.strategy: r.score_per_100 for r in rows if r.scenario == scenario}
        oracle = scores.pop("oracle")
        assert oracle >= max(scores.values()), scenario
        by_name = {r.strategy: r for r in rows if r.scenario == scenario}
        assert by_name["oracle"].pct_of_oracle == pytest.approx(100.0)


def test_auto_stays_close_to_the_oracle_and_ahead_of_the_originals():
    names = ["auto", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"]
    rows = run_matrix(names, CHALLENGE, range(6), 600, 10, Rules(), workers=2)
    floors = {"T1": 98.0, "T2": 94.0, "T3": 88.0}  # the targets (99/97/92) less room
    # On T1 every good strategy is within a few requests in 3,600 of the others, so
    # there auto must only not fall behind; where limits bind it must lead clearly.
    leads = {"T1": -0.3, "T2": 1.5, "T3": 0.3}
    for scenario, floor in floors.items():
        by_name = {r.strategy: r for r in rows if r.scenario == scenario}
        auto = by_name.pop("auto")
        assert auto.pct_of_oracle >= floor, scenario
        best_other = max(r.score_per_100 for r in by_name.values())
        assert auto.score_per_100 - best_other >= leads[scenario], scenario


def test_simulate_json_has_one_line_per_pair_with_the_documented_fields(tmp_path):
    plot = tmp_path / "regret.png"
    result = CliRunner().invoke(app, [
        "simulate", "--strategies", "thompson,random", "--scenarios", "T1,T2",
        "--requests", "150", "--seeds", "2", "--workers", "1", "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(d["strategy"], d["scenario"]) for d in lines] == [
        ("v4", "T1"), ("random", "T1"), ("v4", "T2"), ("random", "T2")]
    assert set(lines[0]) == {"strategy", "scenario", "score_per_100", "ci95", "pct_of_oracle",
                             "accepted_pct", "penalized_per_100", "rate_limited_per_100",
                             "waited_pct", "latency_p50_ms", "latency_p99_ms", "arrivals",
                             "seeds", "requests"}
    assert lines[0]["seeds"] == 2 and lines[0]["requests"] == 150
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--strategies", "nope"], "unknown strategy"),
    (["--scenarios", "T9"], "unknown scenario"),
    (["--strategies", "v4", "--param", "window=50"], "no chosen strategy has parameter"),
    (["--strategies", "v7", "--param", "window"], "expected key=value"),
])
def test_simulate_rejects_bad_options_with_a_reason(args, message):
    result = CliRunner().invoke(app, ["simulate", "--requests", "10", "--seeds", "1", *args])
    assert result.exit_code == 2
    assert message in result.output
