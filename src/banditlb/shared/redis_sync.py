"""Replicas of one pool share their evidence through Redis, never on the request path.

The request path only appends to a local outbox (`sent`, `answered`). One task
flushes the outbox every `sync_ms` (at once for a refusal or a refused connection,
so a block reaches the others within a round trip) as one entry of a Redis stream,
in one pipelined round trip; another task reads the stream with a blocking XREAD,
so the others' entries arrive as they are written. Each entry is applied once: the
stream's ids only grow, and a replica skips its own.

Schema (namespaced by pool; docs/replicas.md):
- `banditlb:{pool}:evidence`, a stream, trimmed to about MAX_ENTRIES, expiring
  KEY_TTL_S after its last write, so a dead cluster leaves nothing behind. Each
  entry: `r` the replica's id, `w` its flush time (Unix), `e` a batch
  (banditlb.shared.evidence.encode). An idle replica writes an empty batch every
  HEARTBEAT_S, so the others count it as seen.

Redis down, slow or restarted is not an outage: every call is bounded by a short
timeout, a failure is logged once per outage, both tasks retry with a growing
pause, the outbox keeps the newest MAX_OUTBOX pieces of evidence meanwhile, and
each process keeps deciding on what it knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from banditlb.outcomes import CONN_ERROR, RATE_LIMITED
from banditlb.shared import evidence
from banditlb.shared.config import SharedConfig
from banditlb.shared.evidence import Evidence, MalformedEvidence

log = logging.getLogger("banditlb.shared")

MAX_ENTRIES = 10_000
KEY_TTL_S = 3600
HEARTBEAT_S = 1.0
SEEN_S = 5.0
"""A replica heard from within this long counts as seen."""
MAX_SEEN = 256
"""Replica ids remembered before the stale ones are dropped (each restart is a new id)."""
MAX_OUTBOX = 10_000
TIMEOUT_S = 0.5
READ_BLOCK_MS = 500
BACKOFF_S, BACKOFF_MAX_S = 0.1, 5.0


Apply = Callable[[list[Evidence]], None]


class SharedState:
    """One process's link to its pool's shared evidence."""

    def __init__(self, config: SharedConfig, apply: Apply, replica: str | None = None):
        self.config = config
        self._apply = apply
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._outbox: deque[Evidence] = deque(maxlen=MAX_OUTBOX)
        self._urgent = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._last_id = "$"
        self._seen: dict[str, float] = {}
        self.connected = False
        self.errors = 0
        self.dropped = 0
        self.malformed = 0
        self.applied = 0
        self.lag_s: float | None = None
        """How long the newest batch applied here took from its writer's flush."""
        self.synced_at: float | None = None
        """When the last round trip to Redis succeeded (Unix time)."""
        self._down_since: float | None = None

    def _client(self, timeout_s: float) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.config.url, password=self.config.password, socket_timeout=timeout_s,
            socket_connect_timeout=TIMEOUT_S, retry=Retry(NoBackoff(), 0),
            health_check_interval=0)

    # the request path: never awaits, never touches the network

    def publish(self, e: Evidence) -> None:
        """Queue one piece of evidence for the next flush; a refusal or a refused
        connection (a block: the others should stay off it now) flushes at once."""
        self._put(e)
        if e.outcome is RATE_LIMITED or e.outcome is CONN_ERROR:
            self._urgent.set()

    def _put(self, e: Evidence) -> None:
        if len(self._outbox) == MAX_OUTBOX:
            self.dropped += 1
        self._outbox.append(e)

    # the two tasks

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(self._write_loop), name="shared-write"),
                       asyncio.create_task(self._keep(self._read_loop), name="shared-read")]

    async def stop(self) -> None:
        """Flush what is left (briefly: Redis may be gone) and end both tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._outbox and self.connected:
            client = self._client(TIMEOUT_S)
            try:
                await asyncio.wait_for(self._flush(client), TIMEOUT_S * 2)
            except (RedisError, OSError, TimeoutError):
                pass
            finally:
                await client.aclose()

    async def _keep(self, loop: Callable) -> None:
        """Run `loop` with a fresh client until cancelled; on a failure, note it (a
        warning once per outage), pause (growing), and run it again."""
        pause = BACKOFF_S
        while True:
            client = self._client(TIMEOUT_S + READ_BLOCK_MS / 1000.0)
            try:
                await loop(client)
                return
            except (RedisError, OSError, TimeoutError) as exc:
                self.errors += 1
                self.connected = False
                if self._down_since is None:
                    self._down_since = time.time()
                    log.warning("shared state: Redis at %s unreachable (%s); serving on local "
                                "state, retrying", self.config.url, exc)
                await asyncio.sleep(pause)
                pause = min(BACKOFF_MAX_S, pause * 2.0)
            finally:
                await client.aclose()

    def _ok(self) -> None:
        self.connected = True
        self.synced_at = time.time()
        if self._down_since is not None:
            log.warning("shared state: Redis back after %.1f s", time.time() - self._down_since)
            self._down_since = None

    async def _write_loop(self, client: aioredis.Redis) -> None:
        interval = self.config.sync_ms / 1000.0
        await client.ping()
        self._ok()
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), interval)
            self._urgent.clear()
            if self._outbox or time.time() - last >= HEARTBEAT_S:
                await self._flush(client)
                last = time.time()
                self._ok()

    async def _flush(self, client: aioredis.Redis) -> None:
        batch, self._outbox = self._outbox, deque(maxlen=MAX_OUTBOX)
        key = self.config.key
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {"r": self.replica, "w": repr(time.time()),
                                "e": evidence.encode(batch)},
                          maxlen=MAX_ENTRIES, approximate=True)
                pipe.expire(key, KEY_TTL_S)
                await pipe.execute()
        except BaseException:
            # not sent (or not known to be): kept, oldest first, for the next flush; an
            # entry that did land is then sent twice, which only costs a little precision
            for e in reversed(batch):
                if len(self._outbox) == MAX_OUTBOX:
                    self.dropped += 1
                    break
                self._outbox.appendleft(e)
            raise

    async def _read_loop(self, client: aioredis.Redis) -> None:
        key = self.config.key
        if self._last_id == "$":  # the first connection: from now on, not the history
            info = await client.xinfo_stream(key) if await client.exists(key) else None
            self._last_id = info["last-generated-id"].decode() if info else "0-0"
        while True:
            reply = await client.xread({key: self._last_id}, count=1000, block=READ_BLOCK_MS)
            self._ok()
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode()
                    self._take(fields)

    def _take(self, fields: dict) -> None:
        replica = fields.get(b"r", b"").decode(errors="replace")
        now = time.time()
        if replica not in self._seen and len(self._seen) >= MAX_SEEN:  # restarts add ids
            self._seen = {r: t for r, t in self._seen.items() if now - t <= SEEN_S}
        self._seen[replica] = now
        if replica == self.replica:
            return
        try:
            batch = evidence.decode(fields.get(b"e", b"[]"))
            written = float(fields.get(b"w", b"nan"))
        except (MalformedEvidence, ValueError):
            self.malformed += 1
            return
        if batch:
            self._apply(batch)
            self.applied += len(batch)
        if written == written:  # not NaN
            self.lag_s = max(0.0, now - written)

    def view(self) -> dict:
        """For /stats and the dashboard: link, freshness and the replicas seen."""
        now = time.time()
        seen = sorted(r for r, t in self._seen.items() if now - t <= SEEN_S)
        if self.replica not in seen:
            seen.append(self.replica)
        return {"url": self.config.url, "pool": self.config.pool, "replica": self.replica,
                "connected": self.connected, "sync_ms": self.config.sync_ms,
                "replicas": len(seen), "replica_ids": seen,
                "lag_ms": None if self.lag_s is None else round(self.lag_s * 1000.0, 2),
                "synced_ago_s": None if self.synced_at is None else round(now - self.synced_at, 3),
                "errors": self.errors, "dropped": self.dropped, "malformed": self.malformed,
                "applied": self.applied, "outbox": len(self._outbox)}
