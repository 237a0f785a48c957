"""AttemptWriter: batches on a timer, one transaction per batch, never raises into the caller."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from banditlb.store import AttemptRow, AttemptWriter, Store, db_path


def make_row(run_id: int, n: int, ts: float | None = None) -> AttemptRow:
    """Attempt n of a run; ts defaults to 1000 + n so rows sort by number."""
    return AttemptRow(run_id=run_id, request_number=n, attempt_number=1,
                      request_id=f"{n:024d}", upstream="127.0.0.1:4000", port=4000,
                      outcome="accepted", status=200, latency_ms=2.5,
                      ts=1_000.0 + n if ts is None else ts,
                      request_complete=True, request_success=True)


def committed(data_dir) -> int:
    conn = sqlite3.connect(db_path(data_dir))
    try:
        return conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()


def test_timer_commits_without_flush(tmp_path):
    with AttemptWriter(tmp_path, flush_interval_s=0.05) as writer:
        for n in range(500):
            writer.put(make_row(1, n))
        for _ in range(400):  # a liveness bound, not a timing assertion
            if committed(tmp_path) == 500:
                break
            time.sleep(0.025)
        assert committed(tmp_path) == 500


def test_a_batch_is_one_transaction(tmp_path):
    rows = 20_000
    seen: set[int] = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.add(committed(tmp_path))

    with AttemptWriter(tmp_path, flush_interval_s=3600) as writer:
        for n in range(rows):
            writer.put(make_row(1, n))
        watcher = threading.Thread(target=watch)
        watcher.start()
        assert writer.flush()
        stop.set()
        watcher.join()
    assert seen <= {0, rows}
    assert committed(tmp_path) == rows


def test_close_flushes_everything_and_rows_read_back(tmp_path):
    writer = AttemptWriter(tmp_path, flush_interval_s=3600)
    for n in reversed(range(1_000)):
        writer.put(make_row(3, n))
    writer.close()
    writer.close()
    assert writer.recording and writer.dropped == 0
    with Store(tmp_path) as store:
        got = store.attempts(3)
    assert [a["request_number"] for a in got] == list(range(1_000))
    assert got[0] == {"run_id": 3, "request_number": 0, "attempt_number": 1,
                      "request_id": "0" * 24, "upstream": "127.0.0.1:4000", "port": 4000,
                      "outcome": "accepted", "status": 200, "latency_ms": 2.5, "ts": 1000.0,
                      "request_complete": True, "request_success": True}


def test_full_queue_and_closed_writer_drop_and_count(tmp_path, caplog):
    writer = AttemptWriter(tmp_path, flush_interval_s=3600, max_queue=10)
    for n in range(15):
        writer.put(make_row(1, n))
    assert writer.dropped == 5
    writer.close()
    writer.put(make_row(1, 99))
    assert writer.dropped == 6 and writer.recording
    assert committed(tmp_path) == 10
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "queue full" in warnings[0] and "closed" in warnings[1]


FILE_SIZE_LIMIT_CHILD = """
import json, resource, signal, sys
sys.path.insert(0, sys.argv[2])
from test_store_writer import make_row
from banditlb.store import AttemptWriter
writer = AttemptWriter(sys.argv[1], flush_interval_s=3600)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256_000, 256_000))
for n in range(20_000):
    writer.put(make_row(1, n))
flushed = writer.flush()
for n in range(100):
    writer.put(make_row(1, n))
print(json.dumps({"flushed": flushed, "recording": writer.recording,
                  "dropped": writer.dropped}))
writer.close()
"""


def test_disk_failure_at_run_time_stops_recording_with_one_warning(tmp_path):
    """A real write failure: the child's files may not grow past 256 kB (RLIMIT_FSIZE)."""
    tests_dir = str(Path(__file__).parent)
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT_CHILD, str(tmp_path),
                             tests_dir], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"flushed": False, "recording": False, "dropped": 20_100}
    assert result.stderr.count("NOT RECORDING") == 1
    assert "banditlb.sqlite3" in result.stderr
    conn = sqlite3.connect(db_path(tmp_path))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
