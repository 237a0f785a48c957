"""Pooled keep-alive HTTP/1.1 client for one upstream; every failure becomes an Attempt.

The balancer sends one tiny request shape (POST / with {"id": ...}) to a known set
of addresses, so a small asyncio protocol with httptools' response parser does the
job with a fraction of a general client's per-request cost (bench/README.md,
"Balancer"). Nothing here raises into the router: refused, reset, closed
mid-response, timed out or unparsable all come back as an outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import httptools

from banditlb.balancer.config import Upstream
from banditlb.outcomes import Attempt, Outcome
from banditlb.ratelimit import EMPTY, NAMES_BYTES, Limits, parse_headers, read_retry_after

MAX_IDLE = 256
"""Idle connections kept per upstream; more are closed when released."""


class _BadResponse(Exception):
    """The upstream answered something that is not an HTTP/1.1 response."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries at most one request at a time."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._limits: list[tuple[bytes, bytes]] | None = None
        """The answer's rate-limit fields (names lowercase); None while it has none."""

    def send(self, payload: bytes) -> asyncio.Future:
        """Write one request; the future resolves to (status, rate-limit fields or None,
        keep_alive)."""
        self._limits = None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_BadResponse(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in NAMES_BYTES:  # Retry-After, X-RateLimit-*, RateLimit, ...: rare, kept raw
            if self._limits is None:
                self._limits = [(name, value)]
            else:
                self._limits.append((name, value))

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), self._limits,
                               self._parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()


class UpstreamClient:
    """Sends ids to one upstream over pooled connections."""

    def __init__(self, index: int, upstream: Upstream):
        self.index = index
        self.upstream = upstream
        self._idle: deque[_Connection] = deque()
        self._retired = False
        self._head = (f"POST / HTTP/1.1\r\nHost: {upstream.name}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: ").encode()

    async def send(self, request_id: str, timeout_s: float, clock: Callable[[], float]) -> Attempt:
        """One attempt: the outcome, its latency and status, timed by the lane's `clock`
        (the router's); never raises (but on cancel)."""
        started = clock()
        body = b'{"id":"' + request_id.encode() + b'"}'
        payload = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        conn = None
        try:
            async with asyncio.timeout(timeout_s):
                conn = self._idle.pop() if self._idle else await self._connect()
                while conn.closed:  # a pooled connection the upstream has since closed
                    conn = self._idle.pop() if self._idle else await self._connect()
                status, fields, keep_alive = await conn.send(payload)
        except TimeoutError:
            return self._lost(conn, Outcome.TIMEOUT, started, clock)
        except _BadResponse:
            return self._lost(conn, Outcome.FAILED, started, clock)
        except OSError:
            return self._lost(conn, Outcome.CONN_ERROR, started, clock)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        latency = clock() - started
        self._release(conn, keep_alive)
        # times in the fields are read against the wall clock, relative to the answer
        limits: Limits = EMPTY if fields is None else parse_headers(fields, time.time())
        retry_after = limits.retry_after_s
        outcome = Outcome.from_status(status, retry_after is not None)
        return Attempt(self.index, outcome, started, latency, status,
                       retry_after if outcome is Outcome.RATE_LIMITED else None, limits)

    def close(self) -> None:
        """Close idle connections; ones still in use are closed when they come back."""
        self._retired = True
        while self._idle:
            self._idle.pop().close()

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, self.upstream.ip, self.upstream.port)
        return conn

    def _release(self, conn: _Connection, keep_alive: bool) -> None:
        if keep_alive and not conn.closed and not self._retired and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def _lost(self, conn: _Connection | None, outcome: Outcome, started: float,
              clock: Callable[[], float]) -> Attempt:
        if conn is not None:
            conn.close()
        return Attempt(self.index, outcome, started, clock() - started)


def parse_retry_after(value: bytes | None, now: float | None = None) -> float | None:
    """Seconds to wait from one Retry-After value (delta-seconds or HTTP-date), leniently
    (see banditlb.ratelimit.read_retry_after); `now` defaults to the wall clock."""
    return read_retry_after(value, time.time() if now is None else now)
