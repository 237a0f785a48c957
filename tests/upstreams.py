"""Real upstream servers for the http contract's tests: uvicorn apps (plain or TLS) and a
raw socket server for what uvicorn never sends (an answer read until the close)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


class Upstream:
    """What one upstream saw and how it answers: `status` for /status/<n> is fixed by the
    path; `answers` counts every request it answered."""

    def __init__(self, name: str):
        self.name = name
        self.answers = 0
        self.sent_first_event = threading.Event()
        self.release_second_event = threading.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.answers += 1
        path = scope["path"]
        if path == "/events":  # two events; the second only once the test has the first
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": b"data: one\n\n",
                        "more_body": True})
            self.sent_first_event.set()
            while not self.release_second_event.is_set():
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"data: two\n\n"})
            return
        status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
        doc = {"upstream": self.name, "method": scope["method"], "path": path,
               "query": scope["query_string"].decode(), "body_bytes": len(body),
               "body_head": body[:32].decode("latin-1"), "client_port": scope["client"][1],
               "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]]}
        out = json.dumps(doc).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(out)),
                                (b"connection", b"x-upstream-hop"),
                                (b"x-upstream-hop", b"dropped"),
                                (b"x-upstream", self.name.encode())]})
        await send({"type": "http.response.body", "body": out})


class FixedStatus:
    """Answers every request with one status (a 429 with Retry-After: 30, or 200), counting
    them."""

    def __init__(self, status: int):
        self.status, self.answers = status, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.answers += 1
        headers = [(b"content-length", b"2")]
        if self.status == 429:
            headers.append((b"retry-after", b"30"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextmanager
def serve(app, **tls) -> Iterator[int]:
    """Serve `app` with uvicorn on 127.0.0.1 from a thread; yields its port; stops after."""
    sock = _listener()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **tls))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("upstream did not start")
        threading.Event().wait(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def until_close_server(body: bytes) -> Iterator[int]:
    """Answers every request with a head that has no length, then `body`, then closes:
    the answer is read until the close (RFC 9112 section 6.3, the last rule)."""
    sock = _listener()
    stop = threading.Event()

    def run() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                             b"connection: close\r\n\r\n" + body)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()
