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
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from banditlb.attempts import RouteResult

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 1.0


class AccessLog:
    def __init__(self, path: Path):
        """Opens (appends to) `path`, or standard output for "-"; OSError when it cannot."""
        self.path = path
        self._file: TextIO | None = sys.stdout if str(path) == "-" else \
            open(path, "a", buffering=1 << 16)  # noqa: SIM115
        self._flush_timer: asyncio.TimerHandle | None = None

    def write(self, scope: dict, status: int, sent_bytes: int, result: RouteResult | None,
              upstreams: list, started: float, wall_start: float) -> None:
        """One request: who asked what, the answer's status and size, where it went, how
        long; field names as nginx's (`upstream_addr` lists every upstream tried)."""
        if self._file is None:
            return
        target = scope.get("raw_path") or scope.get("path", "").encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        client = scope.get("client")
        when = datetime.fromtimestamp(wall_start, UTC).isoformat(timespec="milliseconds")
        doc = {"time": when, "remote_addr": client[0] if client else None,
               "request_method": scope.get("method"),
               "request_uri": target.decode("latin-1"), "status": status,
               "body_bytes_sent": sent_bytes,
               "request_time": round(time.monotonic() - started, 4)}
        if result is not None:
            tried = result.attempts
            doc.update(upstream_addr=", ".join(upstreams[a.server].name for a in tried),
                       upstream_status=", ".join("-" if a.status is None else str(a.status)
                                                 for a in tried),
                       attempts=len(tried), outcome=result.status,
                       waited=round(result.waited_s, 4))
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
        if file is not None and file is not sys.stdout:
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
