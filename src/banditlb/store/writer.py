"""AttemptWriter: attempts leave the request path through a queue and reach SQLite in batches.

put() only appends to a deque, so the balancer's hot path never waits on the disk.
A background thread commits whatever is queued every flush interval, one transaction
per batch: a kill -9 loses at most the last interval and never leaves half a batch.
When the disk fails at run time the writer stops recording, warns once, and counts
what it drops instead of raising into the caller.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from dataclasses import astuple
from pathlib import Path

from banditlb.store.database import connect, db_path, explain
from banditlb.store.rows import AttemptRow

log = logging.getLogger(__name__)

INSERT_ATTEMPT = """INSERT INTO attempts (run_id, request_number, attempt_number, request_id,
    upstream, port, outcome, status, latency_ms, ts, request_complete, request_success)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


class _FlushMark:
    """Queued behind the rows a flush() call waits for; set once they are committed."""

    __slots__ = ("done", "ok")

    def __init__(self):
        self.done = threading.Event()
        self.ok = False


class AttemptWriter:
    """Batching, never-blocking writer of AttemptRow into `<data_dir>/banditlb.sqlite3`.

    Raises StoreError at construction if the store cannot be opened; never afterwards.
    """

    def __init__(self, data_dir: str | Path, flush_interval_s: float = 0.25,
                 max_queue: int = 200_000):
        self.path = db_path(data_dir)
        self._conn = connect(data_dir)
        self._interval = flush_interval_s
        self._max_queue = max_queue
        self._queue: deque[AttemptRow | _FlushMark] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._recording = True
        self._dropped = 0
        self._counter_lock = threading.Lock()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="banditlb-attempt-writer",
                                        daemon=True)
        self._thread.start()

    @property
    def recording(self) -> bool:
        """False once a write failed: from then on rows are dropped and counted."""
        return self._recording

    @property
    def dropped(self) -> int:
        """Rows that never reached the file (queue full, closed writer, or disk failure)."""
        return self._dropped

    def put(self, row: AttemptRow) -> None:
        """Queue one row; never blocks, never raises."""
        if not self._recording or self._stopping:
            self._drop(1, "closed" if self._recording else "failed")
        elif len(self._queue) >= self._max_queue:
            self._drop(1, "full")
        else:
            self._queue.append(row)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row put so far is committed; False on timeout or if not recording."""
        if self._stopping:
            return not self._queue and self._recording
        mark = _FlushMark()
        self._queue.append(mark)
        self._wake.set()
        return mark.done.wait(timeout) and mark.ok

    def close(self) -> None:
        """Commit what is queued, stop the thread and close the file; safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def __enter__(self) -> AttemptWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Commit everything queued now, releasing flush marks right after their rows."""
        batch: list[AttemptRow] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushMark):
                self._commit(batch)
                batch = []
                item.ok = self._recording
                item.done.set()
            else:
                batch.append(item)
        self._commit(batch)

    def _commit(self, batch: list[AttemptRow]) -> None:
        if not batch:
            return
        if not self._recording:
            self._drop(len(batch), "failed")
            return
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany(INSERT_ATTEMPT, [astuple(row) for row in batch])
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._recording = False
            self._rollback()
            self._drop(len(batch), "failed", explain(exc, self.path))

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is lost either way; nothing else to undo

    def _drop(self, count: int, reason: str, cause: Exception | None = None) -> None:
        with self._counter_lock:
            self._dropped += count
            first = reason not in self._warned
            self._warned.add(reason)
        if first:
            log.warning(_WARNINGS[reason].format(path=self.path, cause=cause,
                                                 max_queue=self._max_queue))


_WARNINGS = {
    "failed": "NOT RECORDING attempts any more: {cause}. "
              "The balancer keeps serving; attempts from now on are dropped and counted.",
    "full": "attempt queue full ({max_queue} rows waiting for {path}): dropping attempts "
            "and counting them until the writer catches up",
    "closed": "attempt writer for {path} is closed: dropping attempts put after close()",
}
