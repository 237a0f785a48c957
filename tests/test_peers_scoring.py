"""Scoring helpers of the peer benchmark: per-100 rows, margins, target checks, tuning
choice, and the doc written from saved results alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.report import write_report  # noqa: E402
from bench.peers.scoring import (  # noqa: E402
    live_row,
    paired_margin,
    table,
    target_check,
)
from bench.peers.throughput_report import ratio_lines, throughput_section  # noqa: E402
from bench.peers.tuning import NGINX_CANDIDATES, choose  # noqa: E402


def live(peer: str, scenario: str, weight: float, scores: list[float], **extra) -> list[dict]:
    return [{"peer": peer, "config": peer, "source": "live", "scenario": scenario, "seed": seed,
             "penalty_weight": weight, "requests": 200, "score": score,
             "ids_accepted": extra.get("accepted", score), "penalized_attempts": 0,
             "rate_limited": extra.get("rate_limited", 0), "attempts": 300, "failed": 10,
             "ids_seen": 200, "client_ok": 190, "client_no_answer": 0, "client_p50_ms": 3.0,
             "client_p99_ms": 40.0} for seed, score in enumerate(scores)]


def simulated(strategy: str, scenario: str, weight: float, per_100: float,
              seeds: int = 3) -> dict:
    return {"strategy": strategy, "scenario": scenario, "score_per_100": per_100, "ci95": 1.0,
            "pct_of_oracle": None, "accepted_pct": per_100, "penalized_per_100": 0.0,
            "rate_limited_per_100": 0.0, "seeds": seeds, "requests": 200,
            "penalty_weight": weight, "source": "simulated"}


def test_live_row_is_per_100_with_a_ci_and_oracle_share():
    records = live("nginx", "T1", 1.0, [180, 190, 200], rate_limited=20)
    row = live_row(records, "nginx", oracle=100.0)
    assert row.score_per_100 == pytest.approx(95.0)
    assert row.per_seed == (90.0, 95.0, 100.0)
    assert row.ci95 == pytest.approx(4.303 * 5 / 3 ** 0.5, rel=1e-3)
    assert row.pct_of_oracle == pytest.approx(95.0)
    assert row.rate_limited_per_100 == pytest.approx(10.0)


def test_paired_margin_uses_per_seed_differences():
    auto = live_row(live("auto", "T1", 1.0, [190, 192, 194]), "auto", None)
    rival = live_row(live("nginx", "T1", 1.0, [180, 182, 184]), "nginx", None)
    margin = paired_margin(auto, rival)
    assert margin.margin == pytest.approx(5.0) and margin.ci95 == pytest.approx(0.0)
    assert margin.paired


def test_target_check_against_oracle_peers_and_best_original():
    records = live("auto", "T3", 1.0, [180, 182, 184]) + live("nginx", "T3", 1.0,
                                                                [150, 150, 150])
    sims = [simulated("oracle", "T3", 1.0, 95.0), simulated("v4", "T3", 1.0, 92.0),
            simulated("v7", "T3", 1.0, 85.0), simulated("random", "T3", 1.0, 99.0)]
    rows = table(records, sims, "T3", 1.0, seeds=3)
    assert [r.peer for r in rows][:2] == ["random", "oracle"]
    check = target_check(rows, "T3", 1.0)
    assert check.pct_of_oracle == pytest.approx(100 * 91 / 95)
    assert check.target_pct == 92.0 and check.oracle_met is True
    by_rival = {m.versus: m for m in check.margins}
    assert set(by_rival) == {"nginx", "v4"}  # the best original only; baselines are not targets
    assert by_rival["nginx"].margin == pytest.approx(16.0)
    assert by_rival["v4"].margin == pytest.approx(-1.0) and not by_rival["v4"].paired
    assert not check.ahead_of_all


def test_no_target_check_without_live_auto():
    assert target_check(table(live("nginx", "T1", 1.0, [1, 2]), [], "T1", 1.0, 2), "T1",
                        1.0) is None


def test_tuning_keeps_the_best_mean_per_peer_kind():
    best = NGINX_CANDIDATES[2]
    records = [{"peer": f"nginx {t.label}", "score": 50 + (30 if t == best else 0)}
               for t in NGINX_CANDIDATES]
    records += [{"peer": "haproxy balance random(2) error-limit 10", "score": 40},
                {"peer": "haproxy balance random(2) error-limit 3", "score": 30}]
    chosen = choose(records)
    assert chosen["nginx"]["max_fails"] == best.max_fails
    assert chosen["nginx"]["fail_timeout_s"] == best.fail_timeout_s
    assert chosen["haproxy"]["error_limit"] == 10


def test_report_is_written_from_saved_results_alone(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    scenarios = ["T1", "T2"]
    records, sims = [], []
    for scenario in scenarios:
        for weight in (1.0, 0.5):
            records += live("auto", scenario, weight, [196, 198, 197])
            records += live("nginx", scenario, weight, [180, 186, 184])
            for seeds in (3, 20):
                sims += [simulated("oracle", scenario, weight, 99.0, seeds),
                         simulated("v4", scenario, weight, 96.0, seeds)]
    meta = {"date": "today", "machine": "test", "packages": {"nginx": "1", "haproxy": "2"},
            "scenarios": scenarios, "seeds": [0, 1, 2], "requests": 200, "rps": 10.0,
            "elapsed_s": 60, "peers": {"auto (w=1)": "banditlb lb", "nginx": "nginx"}}
    (results / "live.json").write_text(json.dumps({"meta": meta, "records": records}))
    (results / "simulated.json").write_text(json.dumps({"requests": 200, "records": sims}))
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    write_report(results, doc)
    text = doc.read_text()
    # results from before arrival processes were recorded read as uniform
    assert "## Arrivals `uniform`" in text and "side by side" not in text
    assert "#### T2, weight 0.5, `uniform`" in text
    assert "banditlb simulate --strategies all --scenarios T1 --requests 200 --seeds 3 " \
           "--json --penalty-weight 1   #" in text
    assert "| **auto** | live | 98.5 ± 1.2 | 99.5 | 98.5 | 0.00 | 0.0 | 3.0 | 40.0 |  |" in text
    assert "No throughput results saved" in text
    assert (tmp_path / "docs" / "img" / "peers-w1.png").stat().st_size > 0
    assert (tmp_path / "docs" / "img" / "peers-w0.5.png").stat().st_size > 0


def test_report_has_a_section_per_arrival_process(tmp_path):
    """Each arrival process: its own tables against the oracle simulated with the same
    arrivals, client p50/p99 per live row, its own stall rule; and one table across them."""
    results = tmp_path / "results"
    results.mkdir()
    modes = ["uniform", "burst:10", "closed:10"]
    records, sims = [], []
    for mode, (auto_scores, oracle, p99) in zip(modes, [([196, 198, 197], 99.0, 40.0),
                                                        ([180, 184, 182], 92.0, 400.0),
                                                        ([190, 192, 194], 97.0, 60.0)],
                                                strict=True):
        for weight in (1.0, 0.5):
            for record in live("auto", "T2", weight, auto_scores) + \
                    live("nginx", "T2", weight, [170, 172, 174]):
                records.append({**record, "arrivals": mode, "client_p99_ms": p99,
                                "stall_max_ms": 12.0, "tries": 1})
            for seeds in (3, 20):
                sims += [{**simulated("oracle", "T2", weight, oracle, seeds), "arrivals": mode,
                          "latency_p50_ms": 2.0, "latency_p99_ms": 9.0},
                         {**simulated("v4", "T2", weight, 90.0, seeds), "arrivals": mode}]
    meta = {"date": "today", "machine": "test", "packages": {"nginx": "1", "haproxy": "2"},
            "scenarios": ["T2"], "seeds": [0, 1, 2], "requests": 200, "rps": 10.0,
            "arrivals": modes, "elapsed_s": 60, "peers": {"auto (w=1)": "banditlb lb"}}
    (results / "live.json").write_text(json.dumps({"meta": meta, "records": records}))
    (results / "simulated.json").write_text(json.dumps({"requests": 200, "records": sims}))
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    write_report(results, doc)
    text = doc.read_text()

    sections = text.split("\n## Arrivals `")[1:]
    assert [s.split("`", 1)[0] for s in sections] == modes
    burst = sections[1]
    assert "10 ids at once every 1 s (the same mean rate)" in burst
    assert "an id left more than 500 ms after its send time" in burst
    assert "the generator's event loop fell more than 500 ms behind" in sections[2]
    # burst's auto: 91 per 100 against burst's own oracle (92), p99 at the client
    assert "| **auto** | live | 91.0 ± 2.5 | 98.9 | 91.0 | 0.00 | 0.0 | 3.0 | 400.0 |  |" \
        in burst
    assert "| oracle | simulated | 92.0 ± 1.0 | 100.0 | 92.0 | 0.00 | 0.0 | 2.0 | 9.0 | " \
        "92.0 ± 1.0 |" in burst
    assert "--penalty-weight 1 --arrivals burst:10   # simulated rows" in burst
    assert "python -m bench.peers.run --arrivals burst:10" in burst
    assert "### Targets for `auto`, `burst:10` arrivals" in burst

    overview = text.split("## Arrival processes side by side", 1)[1].split("\n## ", 1)[0]
    assert "| T2 | **auto** | 98.5 ± 1.2 (99.5%), 40 ms | 91.0 ± 2.5 (98.9%), 400 ms | " \
           "96.0 ± 2.5 (99.0%), 60 ms |" in overview
    for name in ("peers-w1.png", "peers-burst10-w1.png", "peers-closed10-w0.5.png"):
        assert (tmp_path / "docs" / "img" / name).stat().st_size > 0


def throughput_run(name: str, max_rps: float, ms_per_1k: float | None, limit: str,
                   p50: float) -> dict:
    steps = [{"target_rps": rate, "achieved_rps": rate, "p50_ms": p50, "p99_ms": 40.0,
              "error_pct": 0.0, "ok_pct": 95.0, "proxy_cpu": 0.5, "fleet_cpu": 0.4,
              "generator_cpu": 0.3, "passed": True,
              "proxy_ms_per_1k": ms_per_1k * (1.5 if rate < max_rps else 1.0)
              if ms_per_1k else 0.0}
             for rate in (1000, max_rps)]
    return {"name": name, "latency": {"p50_ms": p50, "p99_ms": 40.0 + p50}, "steps": steps,
            "max_rps": max_rps, "limit": limit, "proxy_ms_per_1k": ms_per_1k}


def test_throughput_ratio_uses_cpu_per_request_when_nginx_was_not_what_ran_out():
    doc = {"date": "today", "cores": 2, "pinning": {"proxy": "0", "generator": "1",
                                                    "fleet": "1"},
           "load_average": [1.0, 1.0, 1.0], "direct_server": 3, "step_s": 4, "step_tries": 3,
           "latency_rate": 100, "latency_s": 10, "p99_bound_ms": 250, "max_error_pct": 0.1,
           "min_keep_up": 0.97, "min_ok_pct": 85, "busy_core": 0.8,
           "runs": [throughput_run("direct", 5000, None, "rig CPU", 2.0),
                    throughput_run("banditlb", 2000, 400, "proxy CPU", 3.0),
                    throughput_run("nginx", 4000, 50, "rig CPU", 2.5)]}
    lines = ratio_lines(doc)
    assert "= **0.50x** (upper bound: nginx stopped on \"rig CPU\"" in lines[0]
    # at 1000 req/s, the rate both passed: 600 ms vs 75 ms per 1,000 requests
    assert "600 ms vs 75 ms = **0.12x** per core" in lines[0]
    assert "at each one's max rate: 400 ms vs 50 ms = **0.12x**" in lines[0]
    assert "(the lower CPU-per-request ratio): **missed**" in lines[0]
    text = throughput_section(doc)
    assert "| banditlb | 2000 | proxy CPU | 3.00 | 43.00 | +1.00 | +1.00 | 400 | 600 |" in text
