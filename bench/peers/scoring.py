"""From raw results to table rows and target checks: per-100 figures with 95% CIs.

Live records are one ground-truth score per (peer, scenario, seed, weight); simulated
records are `banditlb simulate --json` summaries. The oracle is simulated on the same
fleet seeds and the same arrival process as the live runs, so "% of oracle" compares like
with like (callers pass the records of one arrival process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from banditlb.stats import mean_ci95

ORACLE = "oracle"
AUTO = "auto"
ORIGINALS = tuple(f"v{n}" for n in range(1, 11))
ORACLE_TARGETS = {"T1": 99.0, "T2": 97.0, "T3": 92.0}
"""auto's score as % of the oracle's, per scenario (issue #6)."""


@dataclass(frozen=True)
class Row:
    """One line of a results table."""

    peer: str
    source: str
    """"live" or "simulated"."""
    seeds: int
    score_per_100: float
    ci95: float
    pct_of_oracle: float | None
    accepted_pct: float
    penalized_per_100: float
    rate_limited_per_100: float
    per_seed: tuple[float, ...] = ()
    """Score per 100 for each seed in order (live rows only)."""
    p50_ms: float | None = None
    p99_ms: float | None = None
    """Latency from an id's send to its answer at the client: each run's percentile,
    averaged over the seeds (simulated rows: in virtual time, when the summary has it)."""


@dataclass(frozen=True)
class Margin:
    """auto's lead over one rival, in score per 100 (negative: behind)."""

    versus: str
    margin: float
    ci95: float
    paired: bool
    """True when both sides ran on the same seeds live (CI of the per-seed differences)."""


@dataclass(frozen=True)
class TargetCheck:
    scenario: str
    weight: float
    pct_of_oracle: float | None
    pct_ci95: float
    target_pct: float | None
    margins: tuple[Margin, ...]

    @property
    def oracle_met(self) -> bool | None:
        if self.target_pct is None or self.pct_of_oracle is None:
            return None
        return self.pct_of_oracle >= self.target_pct

    @property
    def ahead_of_all(self) -> bool:
        return all(m.margin > 0 for m in self.margins)


def per_100(value: float, requests: int) -> float:
    return 100.0 * value / requests


def _pct(score: float, oracle: float | None) -> float | None:
    return None if oracle is None or oracle <= 0 else 100.0 * score / oracle


def select(records: list[dict], **where: object) -> list[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in where.items())]


def oracle_per_100(simulated: list[dict], scenario: str, weight: float,
                   seeds: int) -> float | None:
    found = select(simulated, strategy=ORACLE, scenario=scenario, penalty_weight=weight,
                   seeds=seeds)
    return found[0]["score_per_100"] if found else None


def live_row(records: list[dict], peer: str, oracle: float | None) -> Row:
    """Aggregate one peer's live runs (already filtered to one scenario and weight)."""
    runs = sorted(select(records, peer=peer), key=lambda r: r["seed"])
    if not runs:
        raise ValueError(f"no live runs of {peer!r}")
    scores = [per_100(r["score"], r["requests"]) for r in runs]
    mean, ci = mean_ci95(scores)

    def avg(key: str) -> float:
        return sum(per_100(r[key], r["requests"]) for r in runs) / len(runs)

    return Row(peer, "live", len(runs), mean, ci, _pct(mean, oracle), avg("ids_accepted"),
               avg("penalized_attempts"), avg("rate_limited"), tuple(scores),
               _mean_of(runs, "client_p50_ms"), _mean_of(runs, "client_p99_ms"))


def _mean_of(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def simulated_row(summary: dict, oracle: float | None) -> Row:
    return Row(summary["strategy"], "simulated", summary["seeds"], summary["score_per_100"],
               summary["ci95"], _pct(summary["score_per_100"], oracle),
               summary["accepted_pct"], summary["penalized_per_100"],
               summary["rate_limited_per_100"], p50_ms=summary.get("latency_p50_ms"),
               p99_ms=summary.get("latency_p99_ms"))


def live_peers(records: list[dict]) -> list[str]:
    """Peer names in the order they first appear (auto, nginx, HAProxy variants)."""
    return list(dict.fromkeys(r["peer"] for r in records))


def table(live: list[dict], simulated: list[dict], scenario: str, weight: float,
          seeds: int) -> list[Row]:
    """Every row of one (scenario, weight) table, best score first; oracle included."""
    oracle = oracle_per_100(simulated, scenario, weight, seeds)
    here = select(live, scenario=scenario, penalty_weight=weight)
    rows = [live_row(here, peer, oracle) for peer in live_peers(here)]
    rows += [simulated_row(s, oracle) for s in select(simulated, scenario=scenario,
                                                      penalty_weight=weight, seeds=seeds)]
    return sorted(rows, key=lambda r: -r.score_per_100)


def paired_margin(auto: Row, rival: Row) -> Margin:
    """Per-seed differences (same seeds, same ids, same fleet draws to start from)."""
    diffs = [a - b for a, b in zip(auto.per_seed, rival.per_seed, strict=True)]
    mean, ci = mean_ci95(diffs)
    return Margin(rival.peer, mean, ci, True)


def unpaired_margin(auto: Row, rival: Row) -> Margin:
    """Difference of means; CI from both CIs (independent samples, conservative)."""
    return Margin(rival.peer, auto.score_per_100 - rival.score_per_100,
                  math.hypot(auto.ci95, rival.ci95), False)


def target_check(rows: list[Row], scenario: str, weight: float) -> TargetCheck | None:
    """auto (live) against the oracle target, each live peer and the best of v1..v10."""
    autos = [r for r in rows if r.peer == AUTO and r.source == "live"]
    if not autos:
        return None
    auto = autos[0]
    margins = [paired_margin(auto, r) for r in rows
               if r.source == "live" and r.peer != AUTO and len(r.per_seed) == len(auto.per_seed)]
    originals = [r for r in rows if r.source == "simulated" and r.peer in ORIGINALS]
    if originals:
        margins.append(unpaired_margin(auto, max(originals, key=lambda r: r.score_per_100)))
    oracle = next((r for r in rows if r.peer == ORACLE), None)
    pct_ci = 100.0 * auto.ci95 / oracle.score_per_100 if oracle and oracle.score_per_100 > 0 \
        else math.nan
    return TargetCheck(scenario, weight, auto.pct_of_oracle, pct_ci,
                       ORACLE_TARGETS.get(scenario), tuple(margins))
