"""The run matrix: every (strategy, scenario) against the live fleet, recorded in the store.

Each run starts from the same fleet state (reset with the same seed) and sends the same
ids at the same times (the arrival process and the seed fix them), so strategies differ
only by their decisions. The score is the fleet's ground truth, not the balancer's own
count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.harness.control import BalancerControl, FleetControl
from banditlb.harness.loadgen import client_latency, fire, make_ids
from banditlb.store import DEFAULT_DATA_DIR, RequestRow, Store

GROUND_TRUTH_KEYS = ("score", "ids_seen", "ids_accepted", "attempts", "penalized_attempts",
                     "rate_limited", "failed", "per_server")


@dataclass(frozen=True)
class MatrixConfig:
    """What to run and where: services must already be up at fleet_url and lb_url."""

    strategies: list[str]
    scenarios: list[str]
    fleet_url: str
    lb_url: str
    requests: int = 100
    rps: float = 10.0
    seed: int = 0
    session: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    penalty_weight: float = 1.0
    free_attempts: int = 3
    admin_token: str | None = None
    client_timeout_s: float = 30.0
    arrivals: Arrivals = UNIFORM
    """When the ids leave; the schedule is seeded by `seed` like the fleet."""


@dataclass(frozen=True)
class RunResult:
    """One (strategy, scenario) run: the fleet's ground truth and the client's view."""

    strategy: str
    scenario: str
    run_id: int
    session_id: int
    score: float
    ids_accepted: int
    penalized_attempts: int
    rate_limited: int
    attempts: int
    requests: int
    answered_ok: int
    client_p50_ms: float
    client_p99_ms: float
    recording: bool
    dropped: int
    truth: dict = field(repr=False)
    arrivals: str = UNIFORM.label


OnRunStart = Callable[[str, str, int], Callable[[RequestRow], None] | None]
"""(strategy, scenario, requests) -> a callback for each answered request, or None."""


def run_matrix(config: MatrixConfig, on_run_start: OnRunStart | None = None) -> list[RunResult]:
    """Run every (scenario, strategy) pair in order and return their results."""
    return list(iter_runs(config, on_run_start))


def iter_runs(config: MatrixConfig, on_run_start: OnRunStart | None = None
              ) -> Iterator[RunResult]:
    """Like run_matrix, one result at a time (a caller interrupted midway keeps the others)."""
    fleet = FleetControl(config.fleet_url)
    balancer = BalancerControl(config.lb_url, config.admin_token)
    with Store(config.data_dir) as store:
        session_id = _session(store, config.session)
        for scenario in config.scenarios:
            upstreams = fleet.upstreams(scenario)
            ids = make_ids(config.arrivals.count(config.requests), f"{config.seed}:{scenario}")
            for strategy in config.strategies:
                on_answer = on_run_start(strategy, scenario, len(ids)) if on_run_start else None
                yield _one_run(config, store, session_id, fleet, balancer, strategy, scenario,
                               upstreams, ids, on_answer)


def _session(store: Store, name: str | None) -> int:
    if name is None:
        return store.create_session()
    existing = store.session_by_name(name)
    return existing if existing is not None else store.create_session(name)


def _one_run(config: MatrixConfig, store: Store, session_id: int, fleet: FleetControl,
             balancer: BalancerControl, strategy: str, scenario: str, upstreams: list[str],
             ids: list[str], on_answer: Callable[[RequestRow], None] | None) -> RunResult:
    run_id = store.create_run(session_id, strategy, scenario,
                              {"arrivals": config.arrivals.label}, config.seed, "harness")
    try:
        fleet.reset(config.seed)
        balancer.switch(strategy, upstreams, scenario, run_id, config.seed)
        rows = asyncio.run(fire(f"{config.lb_url.rstrip('/')}/", ids, config.rps,
                                config.arrivals, config.seed,
                                timeout_s=config.client_timeout_s, on_answer=on_answer)).rows
        flushed = balancer.flush()
        truth = fleet.scores(config.penalty_weight, config.free_attempts)[scenario]
    except BaseException as exc:
        store.end_run(run_id, {"interrupted": True} if isinstance(exc, KeyboardInterrupt)
                      else {"error": str(exc)})
        raise
    store.record_requests(run_id, rows)
    result = _result(strategy, scenario, run_id, session_id, rows, truth, flushed,
                     config.arrivals)
    store.end_run(run_id, summary_of(result, config))
    return result


def _result(strategy: str, scenario: str, run_id: int, session_id: int, rows: list[RequestRow],
            truth: dict, flushed: dict, arrivals: Arrivals) -> RunResult:
    p50, p99 = client_latency(rows)
    return RunResult(
        strategy=strategy, scenario=scenario, run_id=run_id, session_id=session_id,
        score=truth["score"], ids_accepted=truth["ids_accepted"],
        penalized_attempts=truth["penalized_attempts"], rate_limited=truth["rate_limited"],
        attempts=truth["attempts"], requests=len(rows),
        answered_ok=sum(r.status == 200 for r in rows),
        client_p50_ms=p50, client_p99_ms=p99,
        recording=bool(flushed.get("recording", True)), dropped=int(flushed.get("dropped", 0)),
        truth=truth, arrivals=arrivals.label)


def summary_of(result: RunResult, config: MatrixConfig) -> dict:
    """What the store keeps for a harness run: fleet ground truth plus the client's view."""
    return {**{k: result.truth[k] for k in GROUND_TRUTH_KEYS if k in result.truth},
            "penalty_weight": config.penalty_weight, "free_attempts": config.free_attempts,
            "requests": result.requests, "rps": config.rps, "answered_ok": result.answered_ok,
            "client_p50_ms": result.client_p50_ms, "client_p99_ms": result.client_p99_ms,
            "recording": result.recording, "dropped": result.dropped}
