"""Many simulated runs (strategies x scenarios x seeds) in parallel, summarised with 95% CIs.

Every run may be several replicas sharing evidence `sync_s` late (`replicas`, `sync_s`:
see banditlb.sim.engine); the oracle, the yardstick, runs as the same replicas."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.fleet.scenario import Scenario
from banditlb.rules import Rules
from banditlb.sim.engine import DEFAULT_SYNC_S, ISOLATED, RunStats, check_replicas, simulate
from banditlb.stats import mean_ci95
from banditlb.strategies import canonical_name
from banditlb.waitlist import DEFAULT_MAX_WAITING

ORACLE = "oracle"


@dataclass(frozen=True)
class Job:
    strategy: str
    scenario: Scenario
    seed: int
    requests: int
    rps: float
    rules: Rules
    params: dict
    arrivals: Arrivals = UNIFORM
    max_waiting: int = DEFAULT_MAX_WAITING
    replicas: int = 1
    sync_s: float = DEFAULT_SYNC_S


def run_job(job: Job) -> RunStats:
    return simulate(job.strategy, job.scenario, job.seed, job.requests, job.rps, job.rules,
                    job.params, job.arrivals, job.max_waiting, job.replicas, job.sync_s)


@dataclass
class Summary:
    """One (strategy, scenario) row: means over seeds, score with its 95% CI."""

    strategy: str
    scenario: str
    seeds: int
    requests: int
    score_per_100: float
    ci95: float
    pct_of_oracle: float | None
    accepted_pct: float
    penalized_per_100: float
    rate_limited_per_100: float
    waited_pct: float = 0.0
    """Ids that waited for capacity at least once, % of requests."""
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    """Per id from send to answer, the mean over seeds of each run's percentile."""
    arrivals: str = "uniform"
    regret_mean: np.ndarray | None = None
    """Mean cumulative regret against the oracle after each request (same fleet seed)."""
    regret_ci95: np.ndarray | None = None
    replicas: int = 1
    sync_ms: float | None = None
    """The replicas' sync delay; None when they share nothing (or there is one)."""
    capacity_scale: float = 1.0
    """The fleet's capacity against its scenario file's (fleet.scenario.scale_capacity)."""

    def as_json(self) -> dict:
        """The fields below; with several replicas also `replicas` and `sync_ms` (null:
        isolated), with a scaled fleet `capacity_scale`."""
        extra: dict = {}
        if self.replicas > 1:
            extra = {"replicas": self.replicas, "sync_ms": self.sync_ms}
        if self.capacity_scale != 1:
            extra["capacity_scale"] = self.capacity_scale
        return {
            "strategy": self.strategy, "scenario": self.scenario,
            "score_per_100": round(self.score_per_100, 3), "ci95": round(self.ci95, 3),
            "pct_of_oracle": None if self.pct_of_oracle is None
            else round(self.pct_of_oracle, 2),
            "accepted_pct": round(self.accepted_pct, 2),
            "penalized_per_100": round(self.penalized_per_100, 3),
            "rate_limited_per_100": round(self.rate_limited_per_100, 3),
            "waited_pct": round(self.waited_pct, 2),
            "latency_p50_ms": round(self.latency_p50_ms, 2),
            "latency_p99_ms": round(self.latency_p99_ms, 2), "arrivals": self.arrivals,
            "seeds": self.seeds, "requests": self.requests, **extra,
        }


def run_matrix(strategies: list[str], scenarios: list[Scenario], seeds: Iterable[int],
               requests: int, rps: float, rules: Rules,
               params_for: Callable[[str], dict] = lambda name: {},
               workers: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               arrivals: Arrivals = UNIFORM,
               max_waiting: int = DEFAULT_MAX_WAITING, replicas: int = 1,
               sync_s: float = DEFAULT_SYNC_S) -> list[Summary]:
    """Simulate every (strategy, scenario, seed); the oracle always runs as the yardstick.
    `rps` is the total rate, spread over the `replicas`."""
    check_replicas(replicas, sync_s)
    names = [canonical_name(s) for s in strategies]
    runs = names if ORACLE in names else [*names, ORACLE]
    seeds = list(seeds)
    jobs = [Job(s, sc, seed, requests, rps, rules, params_for(s), arrivals,
                max_waiting, replicas, sync_s)
            for sc in scenarios for s in runs for seed in seeds]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    results: list[RunStats] = []
    if workers <= 1:
        for job in jobs:
            results.append(run_job(job))
            if progress:
                progress(len(results), len(jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for stats in pool.map(run_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
                results.append(stats)
                if progress:
                    progress(len(results), len(jobs))
    by_key: dict[tuple[str, str], list[RunStats]] = {}
    for job, stats in zip(jobs, results, strict=True):
        by_key.setdefault((job.strategy, job.scenario.name), []).append(stats)
    summaries = []
    sync_ms = None if replicas == 1 or sync_s == ISOLATED else 1000 * sync_s
    for sc in scenarios:
        oracle = by_key[(ORACLE, sc.name)]
        for name in names:
            summary = _summarise(name, sc.name, by_key[(name, sc.name)], oracle,
                                 arrivals.label)
            summary.replicas, summary.sync_ms = replicas, sync_ms
            summary.capacity_scale = sc.capacity_scale
            summaries.append(summary)
    return summaries


def _summarise(name: str, scenario: str, runs: list[RunStats], oracle: list[RunStats],
               arrivals: str) -> Summary:
    per100 = [100 * r.score / r.requests for r in runs]
    mean, ci = mean_ci95(per100)
    oracle_mean = sum(100 * r.score / r.requests for r in oracle) / len(oracle)
    regret = np.cumsum([np.subtract(o.per_request_score, r.per_request_score)
                        for o, r in zip(oracle, runs, strict=True)], axis=1)
    n = len(runs)
    regret_ci = (1.96 * regret.std(axis=0, ddof=1) / np.sqrt(n)) if n > 1 \
        else np.zeros(regret.shape[1])
    return Summary(
        strategy=name, scenario=scenario, seeds=n, requests=runs[0].requests,
        score_per_100=mean, ci95=ci,
        pct_of_oracle=100 * mean / oracle_mean if oracle_mean > 0 else None,
        accepted_pct=sum(100 * r.accepted / r.requests for r in runs) / n,
        penalized_per_100=sum(100 * r.penalized / r.requests for r in runs) / n,
        rate_limited_per_100=sum(100 * r.rate_limited / r.requests for r in runs) / n,
        waited_pct=sum(100 * r.waited / r.requests for r in runs) / n,
        latency_p50_ms=sum(r.latency_p50_ms for r in runs) / n,
        latency_p99_ms=sum(r.latency_p99_ms for r in runs) / n, arrivals=arrivals,
        regret_mean=regret.mean(axis=0), regret_ci95=regret_ci,
    )
