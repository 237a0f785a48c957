"""uvicorn's httptools protocol with two changes the balancer needs.

One send per response: uvicorn writes a response's head and body separately; two
writes cost two system calls and, at the client, often two wake-ups for one small
answer. Writes made during one event-loop pass are joined and sent once at the
end of the pass, before the loop waits for I/O again.

Bounded request heads: uvicorn's httptools protocol buffers a request head of any
size, so a few clients sending endless headers could grow the balancer's memory
without bound. A head larger than --max-head-bytes (16 KiB) gets 431 and the connection closes.
It also waits for a head forever, so slow clients (slowloris) could hold every
connection: a head not complete HEAD_TIMEOUT_S after its first byte gets 408.

CONNECT (a tunnel, target host:port) gets 501 and a reason, not the parser's 400.
Trailer fields are dropped, never merged into the request's headers.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from banditlb.balancer.config import DEFAULT_MAX_HEAD_BYTES

MAX_HEAD_BYTES = DEFAULT_MAX_HEAD_BYTES
HEAD_TIMEOUT_S = 10.0


def closing_answer(status: bytes, reason: str) -> bytes:
    """A whole JSON error answer that closes the connection, written by the protocol
    before any request reached the app."""
    body = json.dumps({"status": "error", "error": reason}).encode()
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, len(body))) + body


HEAD_TOO_SLOW = closing_answer(b"408 Request Timeout", "request head not complete in time")
CONNECT_REFUSED = closing_answer(b"501 Not Implemented",
                                 "CONNECT is not proxied: banditlb forwards HTTP requests")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past its limit."""


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

    max_head_bytes = MAX_HEAD_BYTES
    head_too_large = closing_answer(b"431 Request Header Fields Too Large",
                                    f"request head larger than {MAX_HEAD_BYTES} bytes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0
        """Bytes received while a request head is incomplete; None while a body streams."""
        self._completed = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_size = 0
        """Bytes of the current request's line and fields, as parsed."""
        self._refused = False

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
        # (pipelining): it is not counted, so the bound is max_head_bytes plus one read.
        self._head_bytes = 0 if self._completed else self._head_bytes + len(data)
        if self._head_bytes > self.max_head_bytes:
            self._head_bytes = None
            self.transport.write(self.head_too_large)
            self.transport.close()

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_bytes is None:
            # a trailer field after a chunked body: uvicorn would add it to the request's
            # headers, already handed over (and forwarded as if sent up front, RFC 9110
            # section 6.5.1 forbids that merge); dropped, which the RFC allows
            return
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        """Bound the head as parsed, not only as read: a head that came in one read must
        not slip past the limit. Beyond it: 431, closed, before the app sees anything."""
        self._head_size += size
        if self._head_size > self.max_head_bytes and not self._refused:
            self._refused = True
            self._head_bytes = None
            self.transport.write(self.head_too_large)
            self.transport.close()
            raise _HeadTooLarge  # stops the parser; uvicorn's 400 is skipped below

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a head refused with 431 has had its answer
            super().send_400_response(msg)

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


def with_head_limit(max_head_bytes: int) -> type[BalancerHttpProtocol]:
    """The protocol with another bound on request heads (--max-head-bytes)."""
    if max_head_bytes == MAX_HEAD_BYTES:
        return BalancerHttpProtocol
    return type("BalancerHttpProtocol", (BalancerHttpProtocol,), {
        "max_head_bytes": max_head_bytes,
        "head_too_large": closing_answer(b"431 Request Header Fields Too Large",
                                         f"request head larger than {max_head_bytes} bytes")})
