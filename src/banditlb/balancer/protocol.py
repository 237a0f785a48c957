"""uvicorn's httptools protocol with two changes the balancer needs.

One send per response: uvicorn writes a response's head and body separately; two
writes cost two system calls and, at the client, often two wake-ups for one small
answer. Writes made during one event-loop pass are joined and sent once at the
end of the pass, before the loop waits for I/O again.

Bounded request heads: uvicorn's httptools protocol buffers a request head of any
size, so a few clients sending endless headers could grow the balancer's memory
without bound. A head larger than MAX_HEAD_BYTES gets 431 and the connection closes.
It also waits for a head forever, so slow clients (slowloris) could hold every
connection: a head not complete HEAD_TIMEOUT_S after its first byte gets 408.

CONNECT (a tunnel, target host:port) gets 501 and a reason, not the parser's 400.
Trailer fields are dropped, never merged into the request's headers.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
_TOO_LARGE = json.dumps({"status": "error", "error": f"request head larger than "
                         f"{MAX_HEAD_BYTES} bytes"}).encode()
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                  b"content-type: application/json\r\ncontent-length: %d\r\n"
                  b"connection: close\r\n\r\n" % len(_TOO_LARGE)) + _TOO_LARGE
_TOO_SLOW = json.dumps({"status": "error", "error": "request head not complete in time"}
                       ).encode()
HEAD_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\n"
                 b"content-type: application/json\r\ncontent-length: %d\r\n"
                 b"connection: close\r\n\r\n" % len(_TOO_SLOW)) + _TOO_SLOW

_NO_TUNNEL = json.dumps({"status": "error", "error": "CONNECT is not proxied: banditlb "
                         "forwards HTTP requests"}).encode()
CONNECT_REFUSED = (b"HTTP/1.1 501 Not Implemented\r\n"
                   b"content-type: application/json\r\ncontent-length: %d\r\n"
                   b"connection: close\r\n\r\n" % len(_NO_TUNNEL)) + _NO_TUNNEL


class _CoalescingTransport:
    """A transport whose write() is deferred to the end of the current loop pass."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class BalancerHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a write-coalescing transport, heads bounded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0
        """Bytes received while a request head is incomplete; None while a body streams."""
        self._completed = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(_CoalescingTransport(transport, self.loop))

    def data_received(self, data: bytes) -> None:
        self._completed = False
        if self._head_bytes == 0 and data.startswith(b"CONNECT "):
            # a tunnel request (its target is host:port, which the parser refuses as a
            # 400): not proxied, and said so
            self._head_bytes = None
            self.transport.write(CONNECT_REFUSED)
            self.transport.close()
            return
        if self._head_bytes == 0 and self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)
        super().data_received(data)
        if self._head_bytes is None or self.transport.is_closing():
            return
        # A chunk that completed a request may end with the start of the next one
        # (pipelining): it is not counted, so the bound is MAX_HEAD_BYTES plus one read.
        self._head_bytes = 0 if self._completed else self._head_bytes + len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_bytes = None
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_bytes is None:
            # a trailer field after a chunked body: uvicorn would add it to the request's
            # headers, already handed over (and forwarded as if sent up front, RFC 9110
            # section 6.5.1 forbids that merge); dropped, which the RFC allows
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes, self._completed = 0, True
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._head_bytes = None
            self.transport.write(HEAD_TOO_SLOW)
            self.transport.close()
