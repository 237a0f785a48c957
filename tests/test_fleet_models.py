"""The fleet's models driven with explicit `now` values: rates, limits, penalty box, seeds."""

from __future__ import annotations

import random

import pytest

from banditlb.fleet.models import MovingLimit, ServerModel
from banditlb.fleet.scenario import load_scenario


def statuses(model: ServerModel, times: list[float]) -> list[int]:
    return [model.handle(t).status for t in times]


def polite_admissions(model: ServerModel, start: float, end: float, step: float = 0.01) -> int:
    """Requests admitted by a client that only sends when the server has capacity."""
    admitted, t = 0, start
    while t < end:
        if model.available(t) and model.handle(t).status != 429:
            admitted += 1
        t += step
    return admitted


def test_t1_observed_success_rates_converge_to_the_configured_ones():
    scenario = load_scenario("T1")
    for spec, model in zip(scenario.servers, scenario.build(seed=0), strict=True):
        observed = statuses(model, [i * 0.1 for i in range(2000)])
        rate = observed.count(200) / len(observed)
        assert abs(rate - spec.success) < 0.03, (spec.port, rate, spec.success)
        assert set(observed) <= {200, 500}


def test_t2_server_driven_over_its_rate_answers_429_then_recovers():
    model = load_scenario("T2").build(seed=0)[5]  # rate 2/s, burst 2
    burst = statuses(model, [10.0 + i * 0.01 for i in range(20)])
    assert burst[:2].count(429) == 0
    assert burst[2:].count(429) == 18
    assert statuses(model, [11.5]) != [429]  # 1.3 s later: tokens are back
    # Driven at its rate (2/s) it is never limited.
    assert 429 not in statuses(model, [20.0 + i * 0.5 for i in range(50)])


def test_t3_capacity_follows_the_wave():
    model = load_scenario("T3").build(seed=0)[0]  # rate 2.5 * (1 + 0.6 sin(2 pi t / 40))
    assert model.limiter.rate(10.0) == pytest.approx(4.0)
    assert model.limiter.rate(30.0) == pytest.approx(1.0)
    peak = polite_admissions(model, 48.0, 52.0)
    trough = polite_admissions(model, 68.0, 72.0)
    assert peak >= 2 * trough > 0


def test_t3_collapse_window_drains_saved_capacity():
    model = load_scenario("T3").build(seed=0)[0]  # collapses at [12, 16), [72, 76), ...
    assert model.available(11.9)  # bucket full just before the collapse
    assert not model.limiter.collapsed(11.9) and model.limiter.collapsed(12.5)
    assert statuses(model, [12.5, 13.0, 15.9]) == [429, 429, 429]
    assert model.limiter.rate(13.0) == 0.0
    later = load_scenario("T3").build(seed=0)[0]
    assert 429 not in statuses(later, [16.6])  # capacity refills after the window


def test_t3_penalty_box_boxes_a_hammering_client_with_growing_cooldowns():
    limiter: MovingLimit = load_scenario("T3").build(seed=0)[2].limiter  # no collapse < 20 s
    cooldowns = []
    t = 0.0
    for _ in range(5):
        while not limiter.box.boxed(t):  # hammer at 100/s until boxed
            limiter.admit(t)
            t += 0.01
        boxed_at = t - 0.01
        cooldowns.append(round(limiter.box.boxed_until - boxed_at, 6))
        assert not limiter.admit(limiter.box.boxed_until - 0.001)  # still 429 inside the box
        t = limiter.box.boxed_until + 0.5  # wait for the release, then hammer again
    assert cooldowns == [2.0, 4.0, 8.0, 16.0, 16.0]


def test_t3_boxed_server_refuses_even_with_tokens_back():
    model = load_scenario("T3").build(seed=0)[2]
    t = 0.0
    while not model.limiter.box.boxed(t):
        model.handle(t)
        t += 0.01
    release = model.limiter.box.boxed_until
    assert model.limiter.state(release - 0.01)["tokens"] >= 1.0
    assert model.handle(release - 0.01).status == 429
    assert model.handle(release + 0.5).status != 429


@pytest.mark.parametrize("name", ["T1", "T2", "T3", "drift"])
def test_same_seed_and_arrivals_give_identical_outcomes(name):
    scenario = load_scenario(name)
    rng = random.Random(7)
    arrivals = [(rng.randrange(len(scenario.servers)), i * 0.05) for i in range(3000)]

    def replay(seed: int) -> list[tuple[int, float, float | None]]:
        models = scenario.build(seed)
        return [(r.status, r.latency_s, r.retry_after_s)
                for r in (models[index].handle(t) for index, t in arrivals)]

    assert replay(3) == replay(3)
    assert replay(3) != replay(4)


def test_a_shifted_scenario_draws_what_the_original_draws():
    original = load_scenario("T3")
    shifted = original.shifted(20000).shifted(123)
    assert shifted.ports[0] == original.ports[0] + 20123
    pairs = zip(original.build(5), shifted.build(5), strict=True)
    for a, b in pairs:
        times = [i * 0.07 for i in range(500)]
        assert [(r.status, r.latency_s) for r in map(a.handle, times)] == \
            [(r.status, r.latency_s) for r in map(b.handle, times)]
