"""A fast open-loop HTTP/1.1 load generator: requests leave on schedule, whatever happens.

Request i is due at start + i/rate. Its latency is measured from that due time, not
from when it actually left, so a stalled proxy (or a generator that falls behind)
shows up in the percentiles instead of quietly lowering the rate (no coordinated
omission). Connections are kept alive and reused; a due request with no idle
connection opens a new one, up to `max_connections`, then waits in line (and its
wait counts). Raw asyncio protocols and httptools keep the generator itself cheap.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections import deque
from dataclasses import dataclass

import httptools

from banditlb.ids import ID_LENGTH
from banditlb.stats import percentile

COUNTER_DIGITS = 12


@dataclass(frozen=True)
class StepResult:
    """One fixed-rate step: what was asked, what came back, how late."""

    target_rps: float
    duration_s: float
    sent: int
    answered: int
    ok: int
    """Answers with status 200."""
    errors: int
    """Requests with no HTTP answer (refused, reset, timed out)."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    send_lag_p99_ms: float
    """How late requests left compared with their schedule (the generator's own stall)."""

    @property
    def achieved_rps(self) -> float:
        return self.answered / self.duration_s

    @property
    def error_pct(self) -> float:
        return 100.0 * self.errors / self.sent if self.sent else 0.0


def id_maker(seed: int | str):
    """ids(n) -> the n-th 24-character alphanumeric id of this run (unique per n)."""
    prefix = "".join(random.Random(seed).choices(string.ascii_letters,
                                                 k=ID_LENGTH - COUNTER_DIGITS))

    def ids(n: int) -> str:
        return f"{prefix}{n:0{COUNTER_DIGITS}d}"

    return ids


def request_bytes(host: str, port: int, request_id: str) -> bytes:
    body = b'{"id":"%s"}' % request_id.encode()
    return (b"POST / HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (host.encode(), port, len(body))) + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, pool: _Pool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due: float = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, data: bytes, due: float) -> None:
        self.due = due
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.pool.answered(self, self.parser.get_status_code())

    def connection_lost(self, exc) -> None:
        self.pool.lost(self)


class _Pool:
    """Due requests, idle connections, and the latency of every answer."""

    def __init__(self, host: str, port: int, max_connections: int):
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.loop = asyncio.get_running_loop()
        self.idle: deque[_Connection] = deque()
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0

    @property
    def connections(self) -> int:
        return len(self.idle) + len(self.busy) + self.opening

    def submit(self, data: bytes, due: float) -> None:
        self.waiting.append((data, due))
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and self.idle:
            conn = self.idle.popleft()
            data, due = self.waiting.popleft()
            self.lags.append(self.loop.time() - due)
            self.busy.add(conn)
            conn.send(data, due)
        missing = min(len(self.waiting), self.max_connections) - self.opening
        for _ in range(max(0, min(missing, self.max_connections - self.connections))):
            self.opening += 1
            self.loop.create_task(self._open())

    async def _open(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Connection(self), self.host,
                                                        self.port)
        except OSError:
            self.opening -= 1
            if self.waiting:
                self.waiting.popleft()
                self.errors += 1
            return
        self.opening -= 1
        self.idle.append(conn)
        self._dispatch()

    def answered(self, conn: _Connection, status: int) -> None:
        self.latencies.append(self.loop.time() - conn.due)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.busy.discard(conn)
        self.idle.append(conn)
        self._dispatch()

    def lost(self, conn: _Connection) -> None:
        if conn in self.busy:
            self.busy.discard(conn)
            self.errors += 1
        elif conn in self.idle:
            self.idle.remove(conn)
        self._dispatch()

    def close(self) -> None:
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.close()


async def fire_step(host: str, port: int, rate: float, duration_s: float, *,
                    seed: int | str = 0, timeout_s: float = 5.0,
                    max_connections: int = 2000) -> StepResult:
    """`rate` requests/s for `duration_s` seconds, then wait up to `timeout_s` for answers."""
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port, max_connections)
    ids = id_maker(seed)
    total = int(rate * duration_s)
    start = loop.time() + 0.05
    sent = 0
    while sent < total:
        now = loop.time()
        due_now = min(total, int((now - start) * rate) + 1)
        while sent < due_now:
            pool.submit(request_bytes(host, port, ids(sent)), start + sent / rate)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    give_up = loop.time() + timeout_s
    while (pool.busy or pool.waiting or pool.opening) and loop.time() < give_up:
        await asyncio.sleep(0.01)
    unanswered = len(pool.busy) + len(pool.waiting)
    pool.close()
    latencies = sorted(1000.0 * x for x in pool.latencies)
    lags = sorted(1000.0 * x for x in pool.lags)
    answered = len(latencies)
    return StepResult(rate, duration_s, total, answered, pool.statuses.get(200, 0),
                      pool.errors + unanswered, percentile(latencies, 50),
                      percentile(latencies, 99), latencies[-1] if latencies else float("nan"),
                      percentile(lags, 99) if lags else 0.0)
