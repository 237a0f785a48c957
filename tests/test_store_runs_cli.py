"""`banditlb runs list|show|export` against a real store file."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from banditlb.commands.runs import runs_app
from banditlb.store import AttemptRow, AttemptWriter, Store

HEADER = ["session_id", "config_target", "request_number", "attempt_number", "request_id",
          "strategy", "timestamp", "server_port", "success", "latency_ms", "request_complete",
          "request_success", "rate_limited"]


@pytest.fixture
def recorded(tmp_path):
    """A session 'bench' with one run of two requests: 429 then 200, and one 502 alone."""
    with Store(tmp_path) as store:
        session = store.create_session("bench")
        run = store.create_run(session, "v4", "T2", {"prior": 1}, 0, "harness")
        store.create_run(store.create_session("other"), "v1", "T1", {}, 0, "lb")
        store.end_run(run, {"score": 1, "ids_accepted": 1, "penalty_weight": 1.0,
                            "free_attempts": 3})
    attempts = [(0, 1, "a" * 24, 5001, "rate_limited", 429, False, False),
                (0, 2, "a" * 24, 5003, "accepted", 200, True, True),
                (1, 1, "b" * 24, 5001, "failed", 502, True, False)]
    with AttemptWriter(tmp_path) as writer:
        for i, (number, attempt, rid, port, outcome, status, complete, success) in \
                enumerate(attempts):
            writer.put(AttemptRow(run, number, attempt, rid, f"127.0.0.1:{port}", port,
                                  outcome, status, 1.25 + i, 1_700_000_000.5 + i, complete,
                                  success))
    return tmp_path, run, session


def invoke(*args: str):
    return CliRunner().invoke(runs_app, [str(a) for a in args], catch_exceptions=False)


def test_list_all_and_by_session(recorded):
    data_dir, run, _ = recorded
    result = invoke("list", "--data-dir", data_dir)
    assert result.exit_code == 0
    assert "bench" in result.stdout and "other" in result.stdout
    result = invoke("list", "--data-dir", data_dir, "--session", "bench")
    assert result.exit_code == 0
    assert "T2" in result.stdout and "other" not in result.stdout


def test_list_unknown_session_and_empty_dir(recorded, tmp_path_factory):
    data_dir, _, _ = recorded
    result = invoke("list", "--data-dir", data_dir, "--session", "nope")
    assert result.exit_code == 2 and "no session named 'nope'" in result.stderr
    empty = tmp_path_factory.mktemp("empty")
    result = invoke("list", "--data-dir", empty)
    assert result.exit_code == 0 and "no runs recorded" in result.stdout
    assert not list(empty.iterdir()), "listing must not create a store"


def test_show(recorded):
    data_dir, run, _ = recorded
    result = invoke("show", run, "--data-dir", data_dir)
    assert result.exit_code == 0
    for text in ("v4", "T2", "bench", "score from stored attempts", "127.0.0.1:5003",
                 "per upstream"):
        assert text in result.stdout


def test_unknown_run_exits_2(recorded):
    data_dir, _, _ = recorded
    for args in (("show", 99), ("export", 99, "--csv", data_dir / "x.csv")):
        result = invoke(*args, "--data-dir", data_dir)
        assert result.exit_code == 2
        assert "no run 99" in result.stderr


def test_export_csv_columns_and_values(recorded):
    data_dir, run, session = recorded
    out = data_dir / "run.csv"
    result = invoke("export", run, "--csv", out, "--data-dir", data_dir)
    assert result.exit_code == 0, result.stderr
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    assert len(rows) == 4
    first = dict(zip(HEADER, rows[1], strict=True))
    assert first == {"session_id": str(session), "config_target": "T2", "request_number": "0",
                     "attempt_number": "1", "request_id": "a" * 24, "strategy": "v4",
                     "timestamp": "2023-11-14T22:13:20.500+00:00", "server_port": "5001",
                     "success": "False", "latency_ms": "1.25", "request_complete": "False",
                     "request_success": "False", "rate_limited": "True"}
    second = dict(zip(HEADER, rows[2], strict=True))
    assert (second["success"], second["request_complete"], second["request_success"],
            second["rate_limited"]) == ("True", "True", "True", "False")
