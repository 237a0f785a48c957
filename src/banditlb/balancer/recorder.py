"""The balancer's side of the run store: its session, its runs and the attempt writer.

Recording is best effort by design: a data dir that cannot be used turns recording
off with a loud warning and the balancer keeps serving. Calls that touch SQLite are
blocking; the app runs them in a worker thread, never on the request path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from banditlb.store import AttemptRow, AttemptWriter, Store, StoreError

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.store: Store | None = None
        self.writer: AttemptWriter | None = None
        self.session_id: int | None = None
        try:
            self.store = Store(self.data_dir)
            self.writer = AttemptWriter(self.data_dir)
            self.session_id = self.store.create_session()
        except StoreError as exc:
            self._give_up(exc)

    @property
    def recording(self) -> bool:
        return self.writer is not None and self.writer.recording

    @property
    def dropped(self) -> int:
        return self.writer.dropped if self.writer is not None else 0

    def start_run(self, strategy: str, scenario: str | None, params: dict, seed: int | None,
                  run_id: int | None = None,
                  session: str | None = None) -> tuple[int | None, int | None]:
        """(run_id, session_id) of the run to record into; a given run_id is the caller's."""
        if self.store is None:
            return run_id, self.session_id
        try:
            if run_id is not None:
                run = self.store.run(run_id)
                if run is None:
                    raise LookupError(f"run {run_id} does not exist in {self.store.path}")
                return run_id, run["session_id"]
            session_id = self.session_id
            if session is not None:
                session_id = self.store.session_by_name(session) or \
                    self.store.create_session(session)
            new_id = self.store.create_run(session_id, strategy, scenario, params, seed, "lb")
            return new_id, session_id
        except StoreError as exc:
            self._give_up(exc)
            return run_id, self.session_id

    def end_run(self, run_id: int | None, summary: dict) -> None:
        if self.store is None or run_id is None:
            return
        try:
            self.store.end_run(run_id, summary)
        except StoreError as exc:
            self._give_up(exc)

    def put(self, row: AttemptRow) -> None:
        if self.writer is not None:
            self.writer.put(row)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.writer is not None and self.writer.flush(timeout)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.store is not None:
            self.store.close()

    def _give_up(self, exc: StoreError) -> None:
        log.warning("NOT RECORDING: %s. The balancer keeps serving, but no session, run or "
                    "attempt is written to %s.", exc, self.data_dir)
        self.close()
        self.store = self.writer = None
