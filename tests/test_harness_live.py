"""The harness end to end: real fleet, real balancer, real store, over loopback."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from banditlb.arrivals import FORMS, parse_arrivals
from banditlb.balancer.runner import start_lb_thread
from banditlb.cli import app
from banditlb.dashboard.stored_truth import NoTruth, oracle_scores, run_rules
from banditlb.fleet.runner import start_fleet_thread
from banditlb.fleet.scenario import load_scenario
from banditlb.harness import MatrixConfig, run_matrix
from banditlb.sim.engine import simulate
from banditlb.store import Store, score_attempts


@pytest.fixture
def live(tmp_path):
    """A T1 fleet on free ports and a balancer in front of it recording into tmp_path."""
    with start_fleet_thread(["T1"], seed=0) as fleet, \
            start_lb_thread(fleet.upstreams("T1"), data_dir=tmp_path,
                            fleet_url=fleet.control_url) as lb:
        yield fleet, lb, tmp_path


def test_recorded_attempts_reproduce_the_fleet_score(live):
    fleet, lb, data_dir = live
    config = MatrixConfig(strategies=["v1", "v4"], scenarios=["T1"],
                          fleet_url=fleet.control_url, lb_url=lb.url, requests=30, rps=20,
                          seed=3, session="e2e", data_dir=data_dir)
    results = run_matrix(config)

    assert [(r.strategy, r.scenario) for r in results] == [("v1", "T1"), ("v4", "T1")]
    with Store(data_dir) as store:
        session = store.session_by_name("e2e")
        assert [r["id"] for r in store.runs(session)] == [r.run_id for r in results]
        for result in results:
            run = store.run(result.run_id)
            assert run["source"] == "harness" and run["seed"] == 3
            assert run["summary"]["score"] == result.score
            assert run["summary"]["penalty_weight"] == 1.0
            recomputed = score_attempts(store.attempts(result.run_id))
            for key in ("score", "ids_accepted", "penalized_attempts", "attempts"):
                assert recomputed[key] == result.truth[key], key
            assert result.requests == 30 and len(store.requests(result.run_id)) == 30
            assert result.answered_ok == result.ids_accepted > 0
            assert result.recording and result.dropped == 0


def test_harness_command_with_running_services(live):
    fleet, lb, data_dir = live
    result = CliRunner().invoke(app, [
        "harness", "--strategies", "thompson", "--scenarios", "T1", "--requests", "20",
        "--rps", "40", "--fleet-url", fleet.control_url, "--lb-url", lb.url,
        "--data-dir", str(data_dir), "--session", "cli"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "winner on T1: v4" in result.output
    with Store(data_dir) as store:
        (run,) = store.runs(store.session_by_name("cli"))
    assert run["strategy"] == "v4" and run["summary"]["requests"] == 20


def test_harness_command_sends_by_the_chosen_arrivals(live):
    """closed:3 through the real balancer: every id answered, the mode in the table's
    title and in the stored run's params, client p50/p99 in the summary."""
    fleet, lb, data_dir = live
    result = CliRunner().invoke(app, [
        "harness", "--strategies", "v4", "--scenarios", "T1", "--requests", "15",
        "--rps", "40", "--arrivals", "closed:3", "--seed", "2", "--fleet-url",
        fleet.control_url, "--lb-url", lb.url, "--data-dir", str(data_dir), "--session",
        "closed"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "closed:3 arrivals" in " ".join(result.output.split())
    assert "latency (p50, p99) at the client" in " ".join(result.output.split())
    with Store(data_dir) as store:
        (run,) = store.runs(store.session_by_name("closed"))
        assert len(store.requests(run["id"])) == 15
    assert run["params"] == {"arrivals": "closed:3"}
    assert run["summary"]["requests"] == 15 and run["summary"]["ids_seen"] == 15
    assert 0 < run["summary"]["client_p50_ms"] <= run["summary"]["client_p99_ms"]


@pytest.mark.parametrize("command", ["harness", "demo"])
@pytest.mark.parametrize("spec", ["zigzag", "burst:0", "closed:many"])
def test_a_bad_arrivals_value_is_refused_before_anything_starts(tmp_path, command, spec):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{probe.getsockname()[1]}"
    args = ["--fleet-url", nobody, "--lb-url", nobody] if command == "harness" \
        else ["--no-wait", "--port", "0"]
    result = CliRunner().invoke(app, [command, "--arrivals", spec, "--data-dir",
                                      str(tmp_path / "store"), *args])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert FORMS in text and repr(spec) in text
    assert "cannot reach" not in text
    assert not (tmp_path / "store").exists(), "the store was opened before the check"


def test_harness_command_refuses_the_oracle_and_bad_services(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{probe.getsockname()[1]}"
    runner = CliRunner()
    result = runner.invoke(app, ["harness", "--strategies", "oracle",
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "simulator" in result.output
    result = runner.invoke(app, ["harness", "--strategies", "v4", "--scenarios", "T1",
                                 "--fleet-url", nobody, "--lb-url", nobody,
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"cannot reach {nobody}/score" in result.output.replace("\n", "")


def test_demo_runs_and_exits_with_no_wait(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--no-wait", "--port", "0", "--requests", "8",
                                      "--rps", "50", "--data-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "dashboard: http://127.0.0.1:" in result.output
    with Store(tmp_path) as store:
        runs = store.runs(store.session_by_name("demo"))
    assert sorted((r["strategy"], r["scenario"]) for r in runs) == [
        (s, t) for s in ("auto", "v4", "v6") for t in ("T1", "T2", "T3")]


def test_the_dashboard_oracle_replays_a_run_with_its_arrivals():
    """A harness run's stored arrivals reach the oracle the dashboard simulates for it."""
    run = {"source": "harness", "scenario": "T2", "seed": 0, "summary": {"rps": 10.0},
           "params": {"arrivals": "burst:10"}}
    expected = simulate("oracle", load_scenario("T2"), 0, 100, 10.0, run_rules(run),
                        arrivals=parse_arrivals("burst:10")).per_request_score
    assert oracle_scores(run, 100) == expected
    assert oracle_scores({**run, "params": {}}, 100) == oracle_scores(
        {**run, "params": {"arrivals": "uniform"}}, 100)
    with pytest.raises(NoTruth, match="cannot read trace"):
        oracle_scores({**run, "params": {"arrivals": "trace:/nowhere/sends.txt"}}, 100)
