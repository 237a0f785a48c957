"""The truth behind a stored run, rebuilt from its scenario file and seed.

A harness run resets the fleet with the run's seed and then sends ids by its arrival
process (uniform unless its params say otherwise), so the same scenario, seed, rate,
arrivals and request count replayed in the simulator give what the fleet truly was:
each server's success probability over time, and the score of the oracle (the
simulator's strategy that reads the true state). Other runs (the balancer's own,
custom scenarios) have no known truth.
"""

from __future__ import annotations

from functools import lru_cache

from banditlb.arrivals import ArrivalsError, parse_arrivals
from banditlb.fleet.scenario import Scenario, ScenarioError, load_scenario
from banditlb.rules import Rules

MAX_ORACLE_REQUESTS = 200_000
"""Longer runs are not re-simulated for the dashboard (it would take seconds)."""
LB_DEADLINE_S = 5.0
"""The balancer's default per-request deadline, which harness runs use."""


class NoTruth(LookupError):
    """Why a stored run has no known truth; the message is shown next to the charts."""


def _preset(run: dict) -> Scenario:
    if run["source"] != "harness":
        raise NoTruth("oracle unknown: only harness runs start from a fleet reset with a "
                      "known seed")
    if not run["scenario"]:
        raise NoTruth("oracle unknown: the run has no scenario")
    try:
        return load_scenario(run["scenario"])
    except ScenarioError as exc:
        raise NoTruth(f"oracle unknown: {exc}") from exc


def run_rules(run: dict) -> Rules:
    """The scoring rules the run was scored with (defaults: weight 1, 3 free attempts)."""
    summary = run["summary"]
    return Rules(free_attempts=int(summary.get("free_attempts", 3)),
                 penalty_weight=float(summary.get("penalty_weight", 1.0)),
                 deadline_s=LB_DEADLINE_S)


def oracle_scores(run: dict, requests: int) -> list[float]:
    """The oracle's score for each of the run's first `requests` requests, in order."""
    scenario = _preset(run)
    rps = run["summary"].get("rps")
    if not rps or run["seed"] is None:
        raise NoTruth("oracle unknown: the run recorded no request rate or seed")
    if not 0 < requests <= MAX_ORACLE_REQUESTS:
        raise NoTruth(f"oracle unknown: {requests} requests (at most {MAX_ORACLE_REQUESTS})")
    rules = run_rules(run)
    arrivals = (run.get("params") or {}).get("arrivals", "uniform")
    try:
        return list(_simulated_oracle(scenario.name, run["seed"], requests, float(rps),
                                      rules.penalty_weight, rules.free_attempts, arrivals))
    except ArrivalsError as exc:
        raise NoTruth(f"oracle unknown: {exc}") from exc


@lru_cache(maxsize=64)
def _simulated_oracle(scenario: str, seed: int, requests: int, rps: float,
                      penalty_weight: float, free_attempts: int,
                      arrivals: str) -> tuple[float, ...]:
    # the simulator is imported when a stored run's oracle is first asked for, so the
    # balancer process does not load it to serve requests
    from banditlb.sim.engine import simulate

    rules = Rules(free_attempts=free_attempts, penalty_weight=penalty_weight,
                  deadline_s=LB_DEADLINE_S)
    stats = simulate("oracle", load_scenario(scenario), seed, requests, rps, rules,
                     arrivals=parse_arrivals(arrivals))
    return tuple(stats.per_request_score)


def success_schedules(run: dict, ports: set[int]) -> dict[int, list[tuple[float, float]]]:
    """Port -> [(seconds since the run began, true success probability from then on)].

    The fleet may have been shifted to other ports (tests, side-by-side runs); the
    shift is the one that puts every port the run used on a port of the scenario.
    """
    scenario = _preset(run)
    if run["seed"] is None:
        raise NoTruth("true rates unknown: the run recorded no seed")
    offset = _port_offset(scenario.ports, ports)
    schedules = {}
    for spec, model in zip(scenario.servers, scenario.build(run["seed"]), strict=True):
        times = [0.0, *(t for t, _ in spec.drift)]
        schedules[spec.port + offset] = [(t, model.true_success(t)) for t in times]
    return schedules


def _port_offset(scenario_ports: list[int], used: set[int]) -> int:
    if not used:
        return 0
    known = set(scenario_ports)
    anchor = min(used)
    fits = [offset for offset in {anchor - p for p in scenario_ports}
            if {port - offset for port in used} <= known]
    if not fits:
        raise NoTruth("true rates unknown: the run's ports do not match its scenario")
    if len(fits) > 1:
        raise NoTruth("true rates unknown: the run used too few servers to tell which "
                      "scenario port each one was")
    return fits[0]
