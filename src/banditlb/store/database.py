"""Opening the SQLite file: data-dir checks, WAL mode, schema, and errors a user can act on."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

DEFAULT_DATA_DIR = Path(".banditlb")
DB_NAME = "banditlb.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    strategy TEXT NOT NULL,
    scenario TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    seed INTEGER,
    source TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_session ON runs(session_id);
CREATE TABLE IF NOT EXISTS attempts (
    run_id INTEGER NOT NULL,
    request_number INTEGER NOT NULL,
    attempt_number INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    upstream TEXT NOT NULL,
    port INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    latency_ms REAL NOT NULL,
    ts REAL NOT NULL,
    request_complete INTEGER NOT NULL,
    request_success INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts(run_id, ts);
CREATE TABLE IF NOT EXISTS requests (
    run_id INTEGER NOT NULL,
    request_number INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    ts REAL NOT NULL,
    attempts INTEGER
);
CREATE INDEX IF NOT EXISTS requests_by_run ON requests(run_id, request_number);
"""


class StoreError(RuntimeError):
    """The store cannot be used; the message says what to fix (path, permissions, space)."""


def db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_NAME


def connect(data_dir: str | Path) -> sqlite3.Connection:
    """An autocommit connection to an up-to-date schema, or StoreError saying why not.

    Safe when several processes open the same file at once: schema creation runs in
    an IMMEDIATE transaction and every connection waits on locks (busy_timeout).
    """
    folder = Path(data_dir)
    _check_dir(folder)
    path = db_path(folder)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise explain(exc, path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise explain(exc, path) from exc
    except StoreError:
        conn.close()
        raise
    return conn


def explain(exc: sqlite3.Error, path: Path) -> StoreError:
    """Turn a SQLite error into a message that names the file and the fix."""
    text = str(exc)
    lower = text.lower()
    if "full" in lower:
        return StoreError(f"disk full: cannot write {path} ({text}); free some space")
    if "readonly" in lower or "read-only" in lower:
        return StoreError(f"data dir {path.parent} is read-only: cannot write {path.name}")
    if "unable to open" in lower:
        return StoreError(f"cannot open {path}: {text}; check the data dir exists and is writable")
    if "not a database" in lower or "malformed" in lower:
        return StoreError(f"{path} is not a usable banditlb database ({text}); move it away")
    if "i/o error" in lower:
        return StoreError(f"disk I/O error writing {path} ({text}); check free space, "
                          f"file size limits and the file system")
    if "locked" in lower or "busy" in lower:
        return StoreError(f"{path} is locked by another process for too long ({text})")
    return StoreError(f"{path}: {text}")


def _check_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"data dir {folder} is not a directory; pick another --data-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise StoreError(f"cannot create data dir {folder}: permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreError(f"disk full: cannot create data dir {folder}") from exc
        raise StoreError(f"cannot create data dir {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"data dir {folder} is read-only; make it writable or pick another "
                         f"--data-dir")
    path = db_path(folder)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"{path} is read-only; make it writable or pick another --data-dir")


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching the journal mode needs a moment alone with the file; when another
    # process is doing the same, SQLite may answer "locked" at once instead of waiting.
    for _ in range(100):
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower():
                raise
            time.sleep(0.05)
            continue
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is unavailable here")
        return
    raise sqlite3.OperationalError("database is locked (switching to WAL)")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version}, newer than this banditlb "
                         f"({SCHEMA_VERSION}); upgrade banditlb or use another --data-dir")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
