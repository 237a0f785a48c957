"""The run store: sessions, runs, attempts and client-side requests in SQLite (WAL)."""

from banditlb.store.database import DEFAULT_DATA_DIR, StoreError, db_path
from banditlb.store.export import CSV_COLUMNS, write_attempts_csv
from banditlb.store.rows import AttemptRow, RequestRow
from banditlb.store.score import score_attempts
from banditlb.store.store import Store
from banditlb.store.writer import AttemptWriter

__all__ = ["CSV_COLUMNS", "DEFAULT_DATA_DIR", "AttemptRow", "AttemptWriter", "RequestRow",
           "Store", "StoreError", "db_path", "score_attempts", "write_attempts_csv"]
