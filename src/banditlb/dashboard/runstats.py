"""A stored run boiled down for the compare view: one table row and one regret curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from banditlb.dashboard.stored_truth import NoTruth, oracle_scores, run_rules
from banditlb.rules import Rules
from banditlb.stats import percentile

CURVE_POINTS = 200
"""Regret curves are thinned to about this many points: enough for a chart, small to send."""


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """One request rebuilt from its attempts."""

    number: int
    attempts: int
    accepted: bool
    latency_ms: float
    """From the first attempt's start to the last attempt's end."""


def request_outcomes(attempts: list[dict]) -> list[RequestOutcome]:
    """Requests in request-number order, from attempt rows (dicts from Store.attempts)."""
    by_number: dict[int, list[dict]] = {}
    for a in attempts:
        by_number.setdefault(a["request_number"], []).append(a)
    outcomes = []
    for number in sorted(by_number):
        rows = by_number[number]
        start = min(a["ts"] for a in rows)
        end = max(a["ts"] + a["latency_ms"] / 1000.0 for a in rows)
        outcomes.append(RequestOutcome(number, len(rows),
                                       any(a["outcome"] == "accepted" for a in rows),
                                       (end - start) * 1000.0))
    return outcomes


def request_count(run: dict, attempts: list[dict]) -> int:
    """Requests the run answered: from its summary, else the highest request number seen."""
    return int(run["summary"].get("requests")
               or max((a["request_number"] for a in attempts), default=0))


def request_scores(outcomes: Sequence[RequestOutcome], requests: int,
                   rules: Rules) -> list[float]:
    """Score of requests 1..`requests` in order; a request without attempts scores 0."""
    scores = [0.0] * requests
    for o in outcomes:
        if 1 <= o.number <= requests:
            scores[o.number - 1] = rules.id_score(o.accepted, o.attempts)
    return scores


def cumulative_regret(scores: Sequence[float], oracle: Sequence[float]) -> list[list[float]]:
    """[[request, oracle score so far - score so far], ...], thinned to ~CURVE_POINTS."""
    step = max(1, math.ceil(len(scores) / CURVE_POINTS))
    curve, regret = [], 0.0
    for i, (score, best) in enumerate(zip(scores, oracle, strict=False), 1):
        regret += best - score
        if i % step == 0 or i == len(scores):
            curve.append([i, round(regret, 3)])
    return curve


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(sorted(values), q), 3) if values else None


def compare_row(run: dict, attempts: list[dict], client_requests: list[dict]) -> dict:
    """The compare table's row for a run, plus its regret curve when the oracle is known.

    Counts come from the run's summary when it has them (a harness run stores the fleet's
    ground truth there) and are recomputed from the attempts otherwise.
    """
    summary, rules = run["summary"], run_rules(run)
    outcomes = request_outcomes(attempts)
    requests = request_count(run, attempts)
    scores = request_scores(outcomes, requests, rules)
    accepted = summary.get("ids_accepted", summary.get("accepted",
                                                       sum(o.accepted for o in outcomes)))
    penalized = summary.get("penalized_attempts", summary.get(
        "penalized", sum(rules.penalized(o.attempts) for o in outcomes)))
    score = summary.get("score", sum(scores))
    latencies = [r["latency_ms"] for r in client_requests] or [o.latency_ms for o in outcomes]
    row = {
        "run_id": run["id"], "strategy": run["strategy"], "scenario": run["scenario"],
        "params": run["params"], "source": run["source"], "requests": requests,
        "score": score, "score_per_100": 100.0 * score / requests if requests else None,
        "accepted_pct": 100.0 * accepted / requests if requests else None,
        "penalized": penalized,
        "rate_limited": summary.get("rate_limited",
                                    sum(a["outcome"] == "rate_limited" for a in attempts)),
        "p50_ms": _ms(latencies, 50), "p99_ms": _ms(latencies, 99),
        "pct_of_oracle": None, "oracle_score": None, "oracle_note": None, "regret": None,
    }
    try:
        oracle = oracle_scores(run, requests)
    except NoTruth as exc:
        row["oracle_note"] = str(exc)
        return row
    oracle_total = sum(oracle)
    row["oracle_score"] = round(oracle_total, 3)
    if oracle_total > 0:
        row["pct_of_oracle"] = 100.0 * score / oracle_total
    row["regret"] = cumulative_regret(scores, oracle)
    return row
