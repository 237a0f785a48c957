"""A small HTTP/1.1 server protocol: httptools parsing, keep-alive, answers in order.

The fleet needs thousands of requests per second from one core and replies that
wait (a server's latency) without a task per request, so a handler is a plain
function returning a Response whose `delay_s` the protocol waits with a timer.
Requests pipelined on one connection are answered one after the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from banditlb.ids import MAX_BODY_BYTES

log = logging.getLogger(__name__)

HANG_CAP_S = 300.0
"""A hanging reply holds its connection this long at most, then closes it."""

MAX_PIPELINED = 64
"""Requests queued on one connection before we stop reading from it."""

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Response:
    """A JSON answer sent `delay_s` after the request was handled (math.inf: never)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    bodiless: bool = False
    """The answer to a HEAD: the head a GET would get, Content-Length included, no body."""

    def encode(self, keep_alive: bool) -> bytes:
        head = _head(self.status, len(self.body), self.headers, keep_alive)
        return head if self.bodiless else head + self.body


@functools.lru_cache(maxsize=1024)
def _head(status: int, length: int, headers: tuple[tuple[str, str], ...],
          keep_alive: bool) -> bytes:
    """Status line and headers; the fleet sends a handful of distinct ones over and over."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
             "Content-Type: application/json", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(status: int, doc: object, headers: tuple[tuple[str, str], ...] = (),
                  delay_s: float = 0.0) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode(), headers, delay_s)


def error_response(status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"error": reason}, headers)


def method_not_allowed(*allowed: str) -> Response:
    return error_response(405, f"method not allowed; use {', '.join(allowed)}",
                          (("Allow", ", ".join(allowed)),))


NOT_FOUND = error_response(404, "not found")
HANG = Response(0, b"", delay_s=math.inf)
"""Read the request, never answer."""

Handler = Callable[[Request], Response]


class _Reject(Exception):
    """Raised from a parser callback: answer `status` with `reason`, then close."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _too_large() -> _Reject:
    return _Reject(413, f"body larger than {MAX_BODY_BYTES} bytes")


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests, hand each to `handler`, write the answers in order."""

    def __init__(self, handler: Handler, connections: set[HttpProtocol]):
        self._handler = handler
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._url = b""
        self._body = bytearray()
        # Requests to answer, or ready answers that end the connection (bad input).
        self._pending: deque[Request | Response] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._reading = True
        self._stopped_parsing = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        if self._stopped_parsing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_parsing(None)  # answer what was parsed, then close
        except httptools.HttpParserCallbackError as exc:
            reject = exc.__context__
            if not isinstance(reject, _Reject):
                log.error("HTTP parser callback failed", exc_info=reject)
                reject = _Reject(400, "malformed HTTP request")
            self._stop_parsing(error_response(reject.status, reject.reason))
        except httptools.HttpParserError as exc:
            self._stop_parsing(error_response(400, f"malformed HTTP request: {exc}"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-length" and value.strip().isdigit() \
                and int(value) > MAX_BODY_BYTES:
            raise _too_large()

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY_BYTES:
            raise _too_large()

    def on_message_complete(self) -> None:
        if self._stopped_parsing:  # closing: requests after it in the same packet are dropped
            return
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            raise _Reject(400, f"malformed HTTP request: invalid URL {self._url[:100]!r}") \
                from None
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=url.path.decode("latin-1") if url.path else "/",
            query=url.query.decode("latin-1") if url.query else "",
            body=bytes(self._body),
            keep_alive=self._parser.should_keep_alive(),
        )
        self._pending.append(request)
        if len(self._pending) > MAX_PIPELINED and self._reading:
            self._reading = False
            self._transport.pause_reading()
        if self._timer is None:
            self._answer_pending()

    # answering

    def _stop_parsing(self, final: Response | None) -> None:
        """Bad input: answer what came before, then `final` (if any), then close."""
        self._stopped_parsing = True
        self._pending.append(final or Response(0, b""))
        if self._timer is None:
            self._answer_pending()

    def _answer_pending(self) -> None:
        while self._pending and self._transport is not None:
            item = self._pending.popleft()
            if isinstance(item, Response):
                if item.status:
                    self._transport.write(item.encode(keep_alive=False))
                self.close()
                return
            response = self._handle(item)
            if response.delay_s == math.inf:
                self._timer = self._loop.call_later(HANG_CAP_S, self.close)
                return
            if response.delay_s > 0:
                self._timer = self._loop.call_later(response.delay_s, self._send_delayed,
                                                    response, item.keep_alive)
                return
            if not self._send(response, item.keep_alive):
                return
        if not self._reading and self._transport is not None:
            self._reading = True
            self._transport.resume_reading()

    def _handle(self, request: Request) -> Response:
        try:
            response = self._handler(request)
        except Exception:
            log.exception("fleet handler failed on %s %s", request.method, request.path)
            response = error_response(500, "internal error in the fleet (see its log)")
        return dataclasses.replace(response, bodiless=True) if request.method == "HEAD" \
            else response

    def _send(self, response: Response, keep_alive: bool) -> bool:
        """Write one answer; False when the connection is now closing."""
        self._transport.write(response.encode(keep_alive))
        if not keep_alive:
            self.close()
        return keep_alive

    def _send_delayed(self, response: Response, keep_alive: bool) -> None:
        self._timer = None
        if self._transport is not None and self._send(response, keep_alive):
            self._answer_pending()

    def close(self) -> None:
        """Close the connection now; whatever was still queued is dropped."""
        self._pending.clear()
        self._stopped_parsing = True
        if self._transport is not None:
            self._transport.close()
