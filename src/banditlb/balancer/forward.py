"""The http contract: any request goes to the upstream the router picks, and the answer
streams back as it arrives.

An attempt is retried only while nothing of its answer has reached the client: the
loop ends at the first answer worth passing on (2xx-3xx, or a 4xx that is the
client's own problem), and only then does its head and body go out. Bodies up to
`max_retry_body` are kept so a retry can send them again; larger ones stream to one
upstream, once. POST and PATCH are sent once unless the request carries an
Idempotency-Key (or `retry_unsafe` is set). Hop-by-hop headers are dropped both ways
(RFC 9110 section 7.6.1, and those the Connection header names), and the
X-Forwarded-* and Via fields are added.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from banditlb.balancer.config import Forwarding, Upstream
from banditlb.balancer.replies import send_answer, send_json
from banditlb.outcomes import Attempt, Outcome
from banditlb.ratelimit import NAMES_BYTES, parse_headers

HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"proxy-connection"))
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
"""Methods RFC 9110 section 9.2.2 makes safe to send twice."""
VIA = b"1.1 banditlb"
READ_IDLE_S = 60.0
"""An upstream answer that sends nothing for this long is cut (nginx's
proxy_read_timeout); a stream of events that sends a heartbeat stays open."""
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
"""Headers aiohttp would add by itself: a proxy sends the client's, or none."""
MAX_REQUEST_ID = 200


def classify(status: int, retry_after: bool) -> Outcome:
    """The default outcome classes: 2xx-3xx accepted; 429, and a 503 that says when to
    come back, rate limited; other 4xx (but 408) are the client's problem, passed on
    without a retry and not counted against the upstream (as accepted); 5xx and 408 failed."""
    if 200 <= status < 400:
        return Outcome.ACCEPTED
    if status == 429 or (status == 503 and retry_after):
        return Outcome.RATE_LIMITED
    if 400 <= status < 500 and status != 408:
        return Outcome.ACCEPTED
    return Outcome.FAILED


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers without hop-by-hop ones: the fixed list and those Connection names.
    Names come back lowercase."""
    pairs = [(k.lower(), v) for k, v in headers]
    drop = set(HOP_BY_HOP)
    for name, value in pairs:
        if name == b"connection":
            drop.update(t.strip().lower() for t in value.split(b","))
    return [(k, v) for k, v in pairs if k not in drop]


def may_retry(method: str, headers: list[tuple[bytes, bytes]], forwarding: Forwarding) -> bool:
    if method in IDEMPOTENT or forwarding.retry_unsafe:
        return True
    return any(k == b"idempotency-key" for k, _ in headers)


def upstream_headers(scope: Scope, headers: list[tuple[bytes, bytes]], upstream: Upstream,
                     forwarding: Forwarding) -> list[tuple[str, str]]:
    """What goes to the upstream: the client's end-to-end headers, its Host or the
    upstream's, and the forwarded fields asked for."""
    client_host = next((v for k, v in headers if k == b"host"), b"")
    out = [(k, v) for k, v in headers if k != b"host"]
    host = client_host if forwarding.host_header == "client" and client_host else \
        _host_of(upstream)
    out.insert(0, (b"host", host))
    fields = forwarding.forwarded
    if "for" in fields and scope.get("client"):
        out = _append(out, b"x-forwarded-for", scope["client"][0].encode())
    if "proto" in fields:
        out = [(k, v) for k, v in out if k != b"x-forwarded-proto"]
        out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if "host" in fields and client_host:
        out = [(k, v) for k, v in out if k != b"x-forwarded-host"]
        out.append((b"x-forwarded-host", client_host))
    if "via" in fields:
        out = _append(out, b"via", VIA)
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in out]


def _append(headers: list[tuple[bytes, bytes]], name: bytes,
            value: bytes) -> list[tuple[bytes, bytes]]:
    """One `name` field: the values already there, then `value` (a list, comma-joined)."""
    before = [v for k, v in headers if k == name]
    rest = [(k, v) for k, v in headers if k != name]
    return [*rest, (name, b", ".join([*before, value]))]


def _host_of(upstream: Upstream) -> bytes:
    default = 443 if upstream.scheme == "https" else 80
    host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
    return (host if upstream.port == default else f"{host}:{upstream.port}").encode()


class HttpUpstreamClient:
    """Keep-alive connections to one upstream, by name: TLS with SNI and verified
    certificates (or a CA bundle), DNS looked up again as cached entries expire."""

    def __init__(self, index: int, upstream: Upstream, tls: ssl.SSLContext | None):
        self.index = index
        self.upstream = upstream
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use: it needs the running loop
            connector = aiohttp.TCPConnector(limit=0, ssl=self._tls or True,
                                             ttl_dns_cache=DNS_TTL_S)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=SKIP_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=READ_IDLE_S))
        return self._session

    async def open(self, method: str, target: bytes, headers: list[tuple[str, str]],
                   body: bytes | AsyncIterator[bytes] | None, timeout_s: float,
                   clock: Callable[[], float]) -> tuple[Attempt, aiohttp.ClientResponse | None]:
        """One attempt, up to the answer's head: its Attempt, and the answer (its body not
        read yet) or None when none came. Never raises (but on cancel)."""
        started = clock()
        url = URL(self.upstream.origin + self.upstream.path + target.decode("latin-1"),
                  encoded=True)
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._client().request(
                    method, url, headers=headers, data=body, allow_redirects=False,
                    compress=None, auto_decompress=False)
        except TimeoutError:
            return self._lost(Outcome.TIMEOUT, started, clock), None
        except (aiohttp.ClientConnectorError, ssl.SSLError):
            return self._lost(Outcome.CONN_ERROR, started, clock), None
        except (aiohttp.ClientError, OSError, ValueError):
            return self._lost(Outcome.FAILED, started, clock), None
        fields = [(k.lower(), v) for k, v in response.raw_headers if k.lower() in NAMES_BYTES]
        limits = parse_headers(fields, time.time())
        outcome = classify(response.status, limits.retry_after_s is not None)
        attempt = Attempt(self.index, outcome, started, clock() - started, response.status,
                          limits.retry_after_s if outcome is Outcome.RATE_LIMITED else None,
                          limits)
        return attempt, response

    def _lost(self, outcome: Outcome, started: float, clock: Callable[[], float]) -> Attempt:
        return Attempt(self.index, outcome, started, clock() - started)

    def close(self):
        """Close the connections; an awaitable that finishes it (or None)."""
        session, self._session = self._session, None
        return None if session is None else session.close()


DNS_TTL_S = 10
"""Seconds a looked-up upstream address is reused before DNS is asked again."""


def tls_context(forwarding: Forwarding) -> ssl.SSLContext:
    """Certificates verified against the system's CAs, or the given bundle only."""
    cafile = None if forwarding.ca_bundle is None else str(forwarding.ca_bundle)
    return ssl.create_default_context(cafile=cafile)


class _Body:
    """A request body: read whole when it is small enough to send again, else streamed;
    never more than `max_bytes` of it (0: no bound)."""

    def __init__(self, receive: Receive, keep: int, max_bytes: int):
        self._receive = receive
        self._keep, self._max = keep, max_bytes
        self.head = b""
        self.complete = False
        self.size = 0
        self.too_large: str | None = None
        """Why the body was refused (past --max-body-bytes), None while it is not."""
        self.cut = False
        """The client's side broke the body off (gone, or past the bound) mid-stream."""

    async def _next(self) -> tuple[bytes, bool]:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.cut = True
            raise ClientGone
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self._max and self.size > self._max:
            self.too_large = f"request body larger than {self._max} bytes"
            self.cut = True
            raise BodyTooLarge(self.too_large)
        return chunk, message.get("more_body", False)

    async def read(self) -> None:
        """Read up to what is kept for retries (and a byte more, to know)."""
        while len(self.head) <= self._keep:
            chunk, more = await self._next()
            self.head += chunk
            if not more:
                self.complete = True
                return

    async def stream(self) -> AsyncIterator[bytes]:
        """What was read, then the rest as it comes."""
        yield self.head
        more = True
        while more:
            chunk, more = await self._next()
            yield chunk


class BodyTooLarge(ValueError):
    """More request body than --max-body-bytes: the upstream attempt is cut, 413."""


class ClientGone(Exception):
    """The client closed its connection before its request was read."""


async def forward(balancer, scope: Scope, receive: Receive, send: Send) -> None:
    """The http contract's handler for every request on the proxy listener."""
    started, wall = time.monotonic(), time.time()
    forwarding: Forwarding = balancer.config.forwarding
    method = scope["method"]
    headers = end_to_end(scope["headers"])
    if any(k == b"upgrade" for k, _ in scope["headers"]):
        await _refuse(send, 501, UPGRADE_REFUSED)
        return
    body = _Body(receive, forwarding.max_retry_body, forwarding.max_body_bytes)
    try:
        await body.read()
    except ClientGone:
        return
    except BodyTooLarge:
        await _refuse(send, 413, body.too_large)
        return
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    retry = body.complete and may_retry(method, headers, forwarding)
    held: list[aiohttp.ClientResponse] = []

    bodiless = body.complete and not body.head and not any(
        k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])

    async def attempt(client: HttpUpstreamClient, timeout_s: float,
                      clock: Callable[[], float]) -> Attempt:
        while held:  # an earlier answer that will not be passed on
            held.pop().release()
        data = None if bodiless else body.head if body.complete else body.stream()
        done, response = await client.open(
            method, target, upstream_headers(scope, headers, client.upstream, forwarding),
            data, timeout_s, clock)
        if response is not None:
            held.append(response)
        if body.cut:  # the client's fault, as a 4xx is: not counted against the upstream
            return done._replace(outcome=Outcome.ACCEPTED)
        return done

    request_id = f"{method} {target.decode('latin-1')}"[:MAX_REQUEST_ID]
    try:
        lane, result, unreachable = await balancer.route(request_id, attempt, retry)
        if body.too_large:  # cut while it streamed to the upstream
            status = 413
            sent = await _refuse(send, 413, body.too_large)
        elif held:  # the answer that ended the loop, or the last one when all failed
            status = held[0].status
            sent = await _pass_on(held[0], method, forwarding, receive, send)
        else:
            answer = balancer.answer(lane, result, unreachable)
            status = answer.status_code
            sent = await send_answer(send, answer)
        if balancer.access_log is not None:
            balancer.access_log.write(scope, status, sent, result, lane.upstreams, started,
                                      wall)
    finally:
        while held:
            held.pop().release()


async def _pass_on(response: aiohttp.ClientResponse, method: str, forwarding: Forwarding,
                   receive: Receive, send: Send) -> int:
    """Stream an upstream answer to the client as it arrives; stop if the client goes.
    Returns the body bytes sent."""
    headers = end_to_end(response.raw_headers)
    if "via" in forwarding.forwarded:
        headers = _append(headers, b"via", VIA)
    await send({"type": "http.response.start", "status": response.status,
                "headers": headers})
    if method == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return 0
    reader = response.content
    if reader.at_eof() or (response.content_length is not None
                           and response.content_length <= reader.total_bytes):
        # the whole body came with the head (most small answers): one write, no watcher
        body = b"" if reader.at_eof() else await reader.readexactly(response.content_length)
        await send({"type": "http.response.body", "body": body})
        return len(body)
    gone = asyncio.ensure_future(_disconnected(receive))
    sent = 0
    try:
        while True:
            chunk = asyncio.ensure_future(reader.readany())
            await asyncio.wait((chunk, gone), return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                chunk.cancel()
                return sent
            data = chunk.result()
            if not data:
                break
            await send({"type": "http.response.body", "body": data, "more_body": True})
            sent += len(data)
        await send({"type": "http.response.body", "body": b""})
    except (aiohttp.ClientError, OSError, TimeoutError):
        # the upstream broke off mid-answer: the head is out, so all that is left is to
        # end the client's answer short (uvicorn closes a response it cannot complete)
        pass
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    return sent


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


UPGRADE_REFUSED = "protocol upgrades (WebSocket, h2c) are not proxied"


async def refuse_websocket(scope: Scope, send: Send) -> None:
    """A WebSocket handshake uvicorn took on: 501 and the reason where the server can
    answer a handshake with HTTP (the ASGI denial-response extension), else a close
    (which uvicorn answers 403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1003, "reason": UPGRADE_REFUSED})
        return
    body = json.dumps({"status": "error", "error": UPGRADE_REFUSED}).encode()
    await send({"type": "websocket.http.response.start", "status": 501,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "websocket.http.response.body", "body": body})


async def _refuse(send: Send, status: int, reason: str) -> int:
    """The balancer's own JSON error answer; the body bytes sent."""
    return await send_json(send, status, {"status": "error", "error": reason})
