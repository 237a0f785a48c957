"""Dashboard data endpoints over a real SQLite store and a real fleet, served over loopback."""

from __future__ import annotations

import csv
import http.server
import io
import json
import math
import socket
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from banditlb.cli import app
from banditlb.dashboard.runstats import cumulative_regret, request_outcomes, request_scores
from banditlb.dashboard.stored_truth import NoTruth, success_schedules
from banditlb.dashboard.truth import (
    TruthCache,
    TruthUnavailable,
    capacity_per_s,
    free_slots,
    oracle_expected,
)
from banditlb.fleet.runner import start_fleet_thread
from banditlb.rules import Rules
from banditlb.store import CSV_COLUMNS, db_path
from test_dashboard_support import fill_store, get, get_json, serve_dashboard


def server(p: float, kind: str = "none", tokens: float = 0.0, rate: float = 1.0,
           fault: str | None = None, boxed: bool = False) -> dict:
    limiter = {"kind": kind} if kind == "none" else \
        {"kind": kind, "tokens": tokens, "rate": rate, "boxed": boxed}
    return {"port": 1, "success": p, "fault": fault, "limiter": limiter}


def test_oracle_without_limits_repeats_the_best_server():
    servers = [server(0.5), server(0.9), server(0.2)]
    assert oracle_expected(servers, 3) == pytest.approx(1 - 0.1 ** 3)


def test_oracle_uses_only_servers_that_would_admit_now():
    servers = [server(0.99, "token_bucket", tokens=0.4),      # no whole token: refuses
               server(0.95, fault="hang"),                      # faulty
               server(0.97, "moving", tokens=3, boxed=True),    # in the penalty box
               server(0.8, "token_bucket", tokens=1.7),         # one attempt
               server(0.6, "token_bucket", tokens=5)]           # the rest
    assert [free_slots(s, 3) for s in servers] == [0, 0, 0, 1, 3]
    assert oracle_expected(servers, 3) == pytest.approx(1 - 0.2 * 0.4 * 0.4)


def test_oracle_is_capped_by_the_fleet_capacity():
    servers = [server(0.9, "token_bucket", tokens=3, rate=2.0),
               server(0.5, "token_bucket", tokens=3, rate=4.0)]
    assert capacity_per_s(servers) == pytest.approx(3.8)
    assert oracle_expected(servers, 3, rps=10.0) == pytest.approx(0.38)
    assert oracle_expected(servers, 3, rps=1.0) == pytest.approx(1 - 0.1 ** 3)
    assert math.isinf(capacity_per_s([server(0.5)]))


def test_requests_rebuilt_from_attempts_and_regret_curve():
    attempts = [
        {"request_number": 1, "outcome": "failed", "ts": 10.0, "latency_ms": 5.0},
        {"request_number": 1, "outcome": "accepted", "ts": 10.01, "latency_ms": 10.0},
        {"request_number": 3, "outcome": "rate_limited", "ts": 10.2, "latency_ms": 1.0},
    ] + [{"request_number": 3, "outcome": "failed", "ts": 10.2 + k / 100, "latency_ms": 1.0}
         for k in range(1, 5)]
    outcomes = request_outcomes(attempts)
    assert [(o.number, o.attempts, o.accepted) for o in outcomes] == [(1, 2, True),
                                                                      (3, 5, False)]
    assert outcomes[0].latency_ms == pytest.approx(20.0)
    scores = request_scores(outcomes, 3, Rules(penalty_weight=0.5, free_attempts=3))
    assert scores == [1.0, 0.0, -1.0]
    assert cumulative_regret(scores, [1.0, 1.0, 1.0]) == [[1, 0.0], [2, 1.0], [3, 3.0]]


def test_true_rates_follow_a_shifted_fleet():
    run = {"source": "harness", "scenario": "T1", "seed": 0, "summary": {}}
    schedules = success_schedules(run, {14000, 14003, 14009})
    assert sorted(schedules) == list(range(14000, 14010))
    assert schedules == {port + 10000: s for port, s in success_schedules(
        run, set(range(4000, 4010))).items()}
    assert all(0 <= p <= 1 for s in schedules.values() for _, p in s)
    with pytest.raises(NoTruth, match="too few servers"):
        success_schedules(run, {14003, 14007})
    with pytest.raises(NoTruth, match="do not match"):
        success_schedules(run, {14003, 99})
    with pytest.raises(NoTruth, match="harness"):
        success_schedules({**run, "source": "lb"}, {4000})


def test_sessions_runs_compare_and_replay(tmp_path):
    filled = fill_store(tmp_path, requests=60)
    with serve_dashboard(tmp_path) as url:
        status, sessions = get_json(f"{url}/dashboard/api/sessions")
        assert status == 200 and [s["name"] for s in sessions["sessions"]] == ["matrix"]
        _, runs = get_json(f"{url}/dashboard/api/runs?session={filled['session_id']}")
        assert [r["id"] for r in runs["runs"]] == filled["run_ids"]

        _, compare = get_json(f"{url}/dashboard/api/compare")
        assert compare["session"]["name"] == "matrix"
        rows = compare["rows"]
        assert [r["run_id"] for r in rows] == filled["run_ids"]
        for row in rows:
            assert row["requests"] == 60 and row["p50_ms"] <= row["p99_ms"]
            assert row["oracle_score"] > 0 and row["pct_of_oracle"] is not None
            # The curve ends where the totals say: oracle score - score from the attempts.
            assert row["regret"][-1][0] == 60

        _, replay = get_json(f"{url}/dashboard/api/runs/{filled['run_ids'][0]}/replay")
        assert list(replay["columns"])[:2] == ["request_number", "attempt_number"]
        assert len(replay["oracle"]) == 60 and replay["oracle_note"] is None
        assert replay["truth_note"] is None
        assert set(replay["truth"]) == {str(p) for p in range(4000, 4010)}


def test_csv_matches_runs_export(tmp_path):
    filled = fill_store(tmp_path, strategies=("v4",), scenarios=("T1",), requests=20)
    run_id = filled["run_ids"][0]
    exported = tmp_path / "export.csv"
    result = CliRunner().invoke(app, ["runs", "export", str(run_id), "--csv", str(exported),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with serve_dashboard(tmp_path) as url:
        status, body = get(f"{url}/dashboard/api/runs/{run_id}/csv")
    assert status == 200
    assert body == exported.read_bytes()
    header = next(csv.reader(io.StringIO(body.decode())))
    assert tuple(header) == CSV_COLUMNS


def test_errors_are_clear_and_nothing_is_created(tmp_path):
    missing = tmp_path / "nothing-here"
    with serve_dashboard(missing) as url:
        _, runs = get_json(f"{url}/dashboard/api/runs")
        assert runs["runs"] == [] and "no runs recorded" in runs["note"]
        status, doc = get_json(f"{url}/dashboard/api/runs/7/replay")
        assert status == 404 and "no run 7" in doc["error"]
        status, doc = get_json(f"{url}/dashboard/api/runs?session=abc")
        assert status == 400 and "session must be an integer" in doc["error"]
        status, doc = get_json(f"{url}/dashboard/api/truth")
        assert status == 200 and not doc["available"]
        assert "no fleet URL configured" in doc["reason"]
    assert not db_path(missing).exists()


def test_truth_comes_only_from_the_configured_fleet(tmp_path):
    with start_fleet_thread(["T1"], seed=0) as fleet:
        ports = fleet.ports["T1"]
        with serve_dashboard(tmp_path, fleet.control_url) as url:
            query = f"ports={','.join(map(str, ports[:4]))}&free_attempts=3"
            # A URL in the request is ignored: only the configured fleet is ever asked.
            status, truth = get_json(f"{url}/dashboard/api/truth?{query}"
                                     f"&url=http://127.0.0.1:1/&fleet_url=http://127.0.0.1:1/")
    assert status == 200 and truth["available"]
    assert [s["port"] for s in truth["servers"]] == ports[:4]
    best = max(s["success"] for s in truth["servers"])
    assert truth["oracle_per_request"] == pytest.approx(1 - (1 - best) ** 3)


def test_truth_is_fetched_once_per_interval_whoever_asks():
    hits = []

    class Fleet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = json.dumps({"scenarios": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fleet) as fleet:
        thread = threading.Thread(target=fleet.serve_forever, daemon=True)
        thread.start()
        cache = TruthCache(f"http://127.0.0.1:{fleet.server_address[1]}", max_age_s=60)
        for _ in range(10):
            assert cache.get() == {"scenarios": {}}
        fleet.shutdown()
    assert hits == ["/truth"]
    missing = TruthCache(None, max_age_s=60)
    with pytest.raises(TruthUnavailable, match="no fleet URL"):
        missing.get()


def test_truth_unreachable_fleet_says_why(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with serve_dashboard(tmp_path, f"http://127.0.0.1:{closed}") as url:
        _, truth = get_json(f"{url}/dashboard/api/truth")
    assert not truth["available"] and "cannot reach" in truth["reason"]


def test_pages_and_static_files_are_served(tmp_path):
    with serve_dashboard(tmp_path) as url:
        for path in ("/dashboard", "/dashboard/runs", "/dashboard/compare",
                     "/dashboard/playground"):
            status, body = get(url + path)
            assert status == 200 and b"/dashboard/static/" in body
        status, body = get(f"{url}/dashboard/static/charts.js")
        assert status == 200 and b"export function lineChart" in body
        status, _ = get(f"{url}/")  # redirects to the dashboard
        assert status == 200


def test_dashboard_command_prints_its_address_and_serves(tmp_path):
    child = subprocess.Popen([sys.executable, "-m", "banditlb", "dashboard", "--port", "0",
                              "--data-dir", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        assert "banditlb dashboard http://127.0.0.1:" in line
        address = line.split()[2]
        status, body = get(address)
        assert status == 200 and b"<title>banditlb" in body
    finally:
        child.terminate()
        child.wait(10)
        child.stderr.close()


def test_dashboard_command_rejects_a_bad_fleet_url(tmp_path):
    result = CliRunner().invoke(app, ["dashboard", "--fleet-url", "file:///etc/passwd",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "http://" in result.output
