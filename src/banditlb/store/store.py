"""Sessions, runs and their rows: the read/write API over the SQLite file.

One connection guarded by a lock, so the balancer's event loop, its worker threads
and the harness can share a Store. Attempts stream in through AttemptWriter; the
Store writes the rest (sessions, runs, client-side requests) and reads everything.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import astuple
from pathlib import Path

from banditlb.store.database import StoreError, connect, db_path, explain
from banditlb.store.rows import RequestRow

RUN_COLUMNS = """runs.id, runs.session_id, sessions.name AS session_name, runs.strategy,
    runs.scenario, runs.params, runs.seed, runs.source, runs.started_at, runs.ended_at,
    runs.summary,
    (SELECT COUNT(*) FROM attempts WHERE attempts.run_id = runs.id) AS attempt_rows,
    (SELECT COUNT(*) FROM requests WHERE requests.run_id = runs.id) AS request_rows"""
ATTEMPT_COLUMNS = """run_id, request_number, attempt_number, request_id, upstream, port,
    outcome, status, latency_ms, ts, request_complete, request_success"""
REQUEST_COLUMNS = "request_number, request_id, status, latency_ms, ts, attempts"


class Store:
    """The run store in `<data_dir>/banditlb.sqlite3` (created on first use)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.path = db_path(self.data_dir)
        self._conn = connect(self.data_dir)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create_session(self, name: str | None = None) -> int:
        """A new session; without a name it gets a unique timestamped one."""
        if name is not None:
            session_id = self._insert_session(name)
            if session_id is None:
                raise StoreError(f"session {name!r} already exists; pick another name")
            return session_id
        stamp = time.strftime("session-%Y%m%d-%H%M%S")
        for suffix in itertools.count(1):
            session_id = self._insert_session(stamp if suffix == 1 else f"{stamp}-{suffix}")
            if session_id is not None:
                return session_id
        raise AssertionError("unreachable")

    def _insert_session(self, name: str) -> int | None:
        """The new session's id, or None if the name is taken."""
        cursor = self._write("INSERT OR IGNORE INTO sessions (name, created_at) VALUES (?, ?)",
                             (name, time.time()))
        return cursor.lastrowid if cursor.rowcount else None

    def session_by_name(self, name: str) -> int | None:
        row = self._read_one("SELECT id FROM sessions WHERE name = ?", (name,))
        return None if row is None else row["id"]

    def sessions(self) -> list[dict]:
        return self._read("""SELECT sessions.id, sessions.name, sessions.created_at,
                                    COUNT(runs.id) AS runs
                             FROM sessions LEFT JOIN runs ON runs.session_id = sessions.id
                             GROUP BY sessions.id ORDER BY sessions.id""")

    def create_run(self, session_id: int, strategy: str, scenario: str | None, params: dict,
                   seed: int | None, source: str) -> int:
        """A new run (source "lb" or "harness"), started now."""
        cursor = self._write("""INSERT INTO runs (session_id, strategy, scenario, params,
                                                  seed, source, started_at)
                                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                             (session_id, strategy, scenario, json.dumps(params), seed, source,
                              time.time()))
        return cursor.lastrowid

    def end_run(self, run_id: int, summary: dict) -> None:
        """Mark the run ended and merge `summary` into its stored summary; first writer wins.

        A harness run is ended twice: first by the harness with the fleet's ground truth,
        later by the balancer with its own counts when it moves on. Keys and the end time
        already stored are kept, so the balancer adds its view without overwriting the truth.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute("SELECT summary FROM runs WHERE id = ?",
                                         (run_id,)).fetchone()
                if row is not None:
                    stored = json.loads(row["summary"])
                    merged = {**stored, **{k: v for k, v in summary.items() if k not in stored}}
                    self._conn.execute("UPDATE runs SET ended_at = COALESCE(ended_at, ?), "
                                       "summary = ? WHERE id = ?",
                                       (time.time(), json.dumps(merged), run_id))
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise explain(exc, self.path) from exc

    def runs(self, session_id: int | None = None) -> list[dict]:
        where, args = ("WHERE runs.session_id = ?", (session_id,)) if session_id is not None \
            else ("", ())
        rows = self._read(f"""SELECT {RUN_COLUMNS} FROM runs
                              JOIN sessions ON sessions.id = runs.session_id
                              {where} ORDER BY runs.id""", args)
        return [_decode_run(r) for r in rows]

    def run(self, run_id: int) -> dict | None:
        row = self._read_one(f"""SELECT {RUN_COLUMNS} FROM runs
                                 JOIN sessions ON sessions.id = runs.session_id
                                 WHERE runs.id = ?""", (run_id,))
        return None if row is None else _decode_run(dict(row))

    def attempts(self, run_id: int) -> list[dict]:
        rows = self._read(f"""SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ?
                              ORDER BY ts, request_number, attempt_number""", (run_id,))
        for row in rows:
            row["request_complete"] = bool(row["request_complete"])
            row["request_success"] = bool(row["request_success"])
        return rows

    def record_requests(self, run_id: int, rows: Iterable[RequestRow]) -> None:
        """Store the client-side view of a run's requests, all in one transaction."""
        values = [(run_id, *astuple(r)) for r in rows]
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(f"INSERT INTO requests (run_id, {REQUEST_COLUMNS}) "
                                       f"VALUES (?, ?, ?, ?, ?, ?, ?)", values)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise explain(exc, self.path) from exc

    def requests(self, run_id: int) -> list[dict]:
        return self._read(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE run_id = ? "
                          f"ORDER BY request_number", (run_id,))

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, args)
            except sqlite3.Error as exc:
                raise explain(exc, self.path) from exc

    def _read(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            try:
                return [dict(r) for r in self._conn.execute(sql, args).fetchall()]
            except sqlite3.Error as exc:
                raise explain(exc, self.path) from exc

    def _read_one(self, sql: str, args: tuple) -> dict | None:
        rows = self._read(sql, args)
        return rows[0] if rows else None

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _decode_run(row: dict) -> dict:
    row["params"] = json.loads(row["params"])
    row["summary"] = json.loads(row["summary"])
    return row
