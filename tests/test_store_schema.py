"""The store's file: schema, WAL mode, the read/write API, and start-up errors."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from banditlb.store import RequestRow, Store, StoreError, db_path
from banditlb.store.database import SCHEMA_VERSION


def test_schema_tables_indexes_version_and_wal(tmp_path):
    Store(tmp_path).close()
    conn = sqlite3.connect(db_path(tmp_path))
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sessions", "runs", "attempts", "requests"} <= names
    assert {"attempts_by_run", "requests_by_run", "runs_by_session"} <= names
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = [row[1] for row in conn.execute("PRAGMA table_info(attempts)")]
    assert columns == ["run_id", "request_number", "attempt_number", "request_id", "upstream",
                       "port", "outcome", "status", "latency_ms", "ts", "request_complete",
                       "request_success"]


def test_reopen_keeps_data(tmp_path):
    with Store(tmp_path) as store:
        session = store.create_session("kept")
    with Store(tmp_path) as store:
        assert store.session_by_name("kept") == session


def test_sessions_and_runs_round_trip(tmp_path):
    with Store(tmp_path) as store:
        named = store.create_session("bench")
        auto_a, auto_b = store.create_session(), store.create_session()
        assert len({named, auto_a, auto_b}) == 3
        with pytest.raises(StoreError, match="already exists"):
            store.create_session("bench")
        assert store.session_by_name("nope") is None

        run = store.create_run(named, "v4", "T1", {"prior": 2}, 7, "harness")
        other = store.create_run(auto_a, "v6", None, {}, None, "lb")
        store.end_run(run, {"score": 10})
        store.end_run(run, {"p50_ms": 3.5})
        ended_at = store.run(run)["ended_at"]
        store.end_run(run, {"score": -1, "accepted": 4})  # a later writer only adds keys

        got = store.run(run)
        assert got["session_name"] == "bench" and got["strategy"] == "v4"
        assert got["params"] == {"prior": 2} and got["seed"] == 7
        assert got["summary"] == {"score": 10, "p50_ms": 3.5, "accepted": 4}
        assert got["ended_at"] == ended_at >= got["started_at"]
        assert store.run(other)["ended_at"] is None
        assert store.run(999) is None
        assert [r["id"] for r in store.runs(named)] == [run]
        assert [r["id"] for r in store.runs()] == [run, other]
        assert {s["name"]: s["runs"] for s in store.sessions()}["bench"] == 1


def test_requests_round_trip_in_order(tmp_path):
    with Store(tmp_path) as store:
        run = store.create_run(store.create_session(), "v1", "T2", {}, 0, "harness")
        rows = [RequestRow(n, f"{n:024d}", 200 if n % 2 else 502, 1.5 * n, 100.0 + n, 2)
                for n in (2, 0, 1)]
        store.record_requests(run, rows)
        got = store.requests(run)
        assert [r["request_number"] for r in got] == [0, 1, 2]
        assert got[1] == {"request_number": 1, "request_id": f"{1:024d}", "status": 200,
                          "latency_ms": 1.5, "ts": 101.0, "attempts": 2}
        assert store.run(run)["request_rows"] == 3


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    code = ("import sys; from banditlb.store import Store; "
            "s = Store(sys.argv[1]); s.create_session(); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with Store(tmp_path) as store:
        assert len(store.sessions()) == 4


def test_data_dir_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(target)


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    conn = sqlite3.connect(db_path(tmp_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this banditlb"):
        Store(tmp_path)


def test_not_a_database(tmp_path):
    db_path(tmp_path).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable banditlb database"):
        Store(tmp_path)


@pytest.fixture
def world_readable_dir():
    """A folder an unprivileged user can enter (pytest's tmp_path parents are private)."""
    folder = Path(tempfile.mkdtemp(prefix="banditlb-store-"))
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755)
    shutil.rmtree(folder)


def test_read_only_data_dir(world_readable_dir):
    existing = world_readable_dir / "data"
    existing.mkdir()
    existing.chmod(0o555)
    world_readable_dir.chmod(0o555)
    assert "is read-only" in _open_in_child_as_unprivileged(existing)
    assert "cannot create data dir" in _open_in_child_as_unprivileged(world_readable_dir / "new")


def _open_in_child_as_unprivileged(data_dir: Path) -> str:
    """The StoreError message (or 'opened') from Store(data_dir) in a forked child.

    The child drops root first (root ignores file permissions) and does not exec, so it
    needs no access to the interpreter's files.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no exec, the modules are already loaded
        try:
            os.close(read_end)
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                Store(data_dir).close()
                message = "opened"
            except StoreError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def test_no_room_to_create_the_file(tmp_path):
    """A real write failure at start-up: the child may not write files past 1 kB."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "from banditlb.store import Store, StoreError\n"
            "try:\n    Store(sys.argv[1])\nexcept StoreError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"disk I/O error writing {db_path(tmp_path)}")
    assert "check free space" in result.stdout
