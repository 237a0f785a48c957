"""The access log: one JSON line per answered request, for the tools that read logs.

Lines are buffered and written by the event loop (a write to a page-cache file
does not block for long); the buffer is flushed a second after its first line and
at shutdown, so a kill -9 loses at most the last second. A log that cannot be written is turned
off, loudly, once: the proxy keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import TextIO

from banditlb.attempts import RouteResult

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 1.0


class AccessLog:
    def __init__(self, path: Path):
        """Opens (appends to) `path`; OSError when it cannot."""
        self.path = path
        self._file: TextIO | None = open(path, "a", buffering=1 << 16)  # noqa: SIM115
        self._flush_timer: asyncio.TimerHandle | None = None

    def write(self, scope: dict, status: int, result: RouteResult | None, upstreams: list,
              started: float, wall_start: float) -> None:
        """One request: who asked what, the answer's status, where it went, how long."""
        if self._file is None:
            return
        target = scope.get("raw_path") or scope.get("path", "").encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        client = scope.get("client")
        doc = {"t": round(wall_start, 3), "client": client[0] if client else None,
               "method": scope.get("method"), "target": target.decode("latin-1"),
               "status": status, "ms": round((time.monotonic() - started) * 1000.0, 2)}
        if result is not None:
            last = result.last
            doc.update(upstream=None if last is None else upstreams[last.server].name,
                       attempts=len(result.attempts), result=result.status,
                       waited_ms=round(result.waited_s * 1000.0, 2))
        try:
            self._file.write(json.dumps(doc, separators=(",", ":")) + "\n")
        except OSError as exc:
            self._fail(exc)
            return
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_EVERY_S,
                                                                      self._flush)

    def close(self) -> None:
        self._flush()
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        log.error("access log %s cannot be written (%s): it is off from now on", self.path, exc)
        file, self._file = self._file, None
        with contextlib.suppress(OSError):
            file.close()
