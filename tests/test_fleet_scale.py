"""scale_capacity: the same fleet with R times the capacity (for R replicas at R x the rate)."""

from __future__ import annotations

import pytest

from banditlb.fleet.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    preset_names,
    scale_capacity,
)
from test_fleet_models import polite_admissions


def test_rates_and_bursts_are_multiplied_and_a_polite_client_gets_that_many_more():
    t2 = load_scenario("T2")
    four = scale_capacity(t2, 4)
    assert four.name == "T2" and four.capacity_scale == 4 and four.ports == t2.ports
    assert [s.limiter for s in four.servers][:2] == [
        {"kind": "token_bucket", "rate": 12.0, "burst": 12},
        {"kind": "token_bucket", "rate": 10.0, "burst": 8}]
    one, many = t2.build(0)[1], four.build(0)[1]
    base = polite_admissions(one, 0.0, 20.0, step=0.002)
    assert base == pytest.approx(2 + 2.5 * 20, abs=2)  # burst, then the rate
    assert polite_admissions(many, 0.0, 20.0, step=0.002) == pytest.approx(4 * base, rel=0.03)


def test_what_is_not_capacity_stays_and_draws_the_same_numbers():
    t3 = load_scenario("T3")
    double = scale_capacity(t3, 2)
    moving = double.servers[0].limiter
    written = t3.servers[0].limiter
    assert moving["base_rate"] == 2 * written["base_rate"]
    assert moving["burst"] == 2 * written["burst"]
    assert moving["box"]["strikes_to_box"] == 2 * written["box"]["strikes_to_box"]
    for key in ("amplitude", "period_s", "phase", "collapse_every_s", "collapse_duration_s",
                "collapse_offset_s"):
        assert moving[key] == written[key]
    assert moving["box"]["base_s"] == written["box"]["base_s"]
    # one request a second never meets T2's limits: success and latency draws are the same
    t2 = load_scenario("T2")
    times = [float(t) for t in range(0, 200)]
    for a, b in zip(t2.build(5), scale_capacity(t2, 3).build(5), strict=True):
        replies = [(r.status, r.latency_s) for r in map(a.handle, times)]
        assert 429 not in {status for status, _ in replies}
        assert replies == [(r.status, r.latency_s) for r in map(b.handle, times)]


def test_schedules_windows_caps_and_groups_scale_and_groups_stay_shared():
    scenario = parse_scenario("""
        [[servers]]
        port = 1
        success = 1.0
        [[servers.limiter]]
        kind = "token_bucket"
        burst = 2
        rate = { shape = "steps", steps = [[0.0, 3.0], [10.0, 1.0]] }
        [[servers.limiter]]
        kind = "fixed_window"
        limit = 5
        window_s = 10.0
        group = "acct"
        [[servers]]
        port = 2
        success = 1.0
        limiter = { kind = "fixed_window", limit = 5, window_s = 10.0, group = "acct" }
        [[servers]]
        port = 3
        success = 1.0
        limiter = { kind = "penalty_box", inner = { kind = "concurrency", max_in_flight = 2 } }
        [[servers]]
        port = 4
        success = 1.0
        limiter = { kind = "gcra", rate = { shape = "sinusoid", base = 2.0 }, burst = 3 }
    """)
    triple = scale_capacity(scenario, 3)
    bucket, window = triple.servers[0].limiter
    assert bucket["rate"]["steps"] == [[0.0, 9.0], [10.0, 3.0]] and bucket["burst"] == 6
    assert window == {"kind": "fixed_window", "limit": 15, "window_s": 10.0, "group": "acct"}
    assert triple.servers[2].limiter == {
        "kind": "penalty_box", "strikes_to_box": 9,
        "inner": {"kind": "concurrency", "max_in_flight": 6}}
    assert triple.servers[3].limiter == {"kind": "gcra", "burst": 9,
                                         "rate": {"shape": "sinusoid", "base": 6.0}}
    a, b, _, _ = triple.build(0)
    assert a.limiter.limiters[1] is b.limiter  # still one account
    assert sum(b.handle(0.0).status == 200 for _ in range(20)) == 15
    # below 1, whole numbers are rounded and stop at 1, as does a bucket's burst
    tenth = scale_capacity(scenario, 0.1)
    assert tenth.servers[2].limiter["inner"]["max_in_flight"] == 1
    assert tenth.servers[0].limiter[0]["burst"] == 1.0
    assert tenth.servers[1].limiter["limit"] == 1.0
    assert tenth.servers[3].limiter["rate"]["base"] == pytest.approx(0.2)


def test_every_preset_scales_and_builds():
    for name in preset_names():
        scenario = load_scenario(name)
        for factor in (0.5, 3, 8):
            assert len(scale_capacity(scenario, factor).build(1)) == len(scenario.servers)
    t1 = load_scenario("T1")
    assert scale_capacity(t1, 1) is t1
    assert scale_capacity(scale_capacity(t1, 2), 4).capacity_scale == 8


@pytest.mark.parametrize("factor", [0, -2, float("inf"), float("nan"), "4", True])
def test_a_factor_that_is_not_a_positive_number_is_refused(factor):
    with pytest.raises(ScenarioError, match="capacity scale must be a number > 0"):
        scale_capacity(load_scenario("T2"), factor)
