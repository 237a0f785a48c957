"""Server-sent events: one bounded queue per client, slow clients dropped, never waited on.

publish() encodes an event once and offers the bytes to every client without
blocking; a client whose queue is full is disconnected rather than slowing the
balancer down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

from sse_starlette.event import ServerSentEvent

MAX_CLIENTS = 64
QUEUE_SIZE = 1024
HEARTBEAT_S = 1.0
METRICS_S = 0.5


def encode(event: str, data: dict) -> bytes:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=event).encode()


class _Client:
    __slots__ = ("queue", "gone")

    def __init__(self):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.gone = False


class EventHub:
    """Fan-out of events to at most `max_clients` SSE streams."""

    def __init__(self, max_clients: int = MAX_CLIENTS):
        self.max_clients = max_clients
        self._clients: set[_Client] = set()
        self.dropped = 0

    @property
    def listening(self) -> bool:
        return bool(self._clients)

    def publish(self, event: str, data: dict) -> None:
        if not self._clients:
            return
        chunk = encode(event, data)
        for client in list(self._clients):
            try:
                client.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self._drop(client)
                self.dropped += 1

    def subscribe(self, *first: bytes) -> _Client | None:
        """A new client with `first` already queued, or None when the hub is full."""
        if len(self._clients) >= self.max_clients:
            return None
        client = _Client()
        for chunk in first:
            client.queue.put_nowait(chunk)
        self._clients.add(client)
        return client

    async def stream(self, client: _Client) -> AsyncIterator[bytes]:
        """The client's events until it is dropped, disconnects or the hub closes."""
        try:
            while not client.gone:
                chunk = await client.queue.get()
                if chunk is None:
                    break
                yield chunk
        finally:
            self._drop(client)

    def close(self) -> None:
        """End every stream after what it has queued (server shutdown: open streams must
        not hold up the drain)."""
        for client in list(self._clients):
            self._clients.discard(client)
            try:
                client.queue.put_nowait(None)
            except asyncio.QueueFull:
                client.gone = True

    async def run_ticker(self, snapshot: Callable[[], dict]) -> None:
        """Metrics every METRICS_S and a heartbeat every HEARTBEAT_S, while anyone listens."""
        ticks_per_beat = round(HEARTBEAT_S / METRICS_S)
        tick = 0
        while True:
            await asyncio.sleep(METRICS_S)
            tick += 1
            if self._clients:
                self.publish("metrics", snapshot())
                if tick % ticks_per_beat == 0:
                    self.publish("heartbeat", {"t": time.time()})

    def _drop(self, client: _Client) -> None:
        client.gone = True
        self._clients.discard(client)
