"""Security of the balancer: the admin token off loopback, no CORS, size limits, no SSRF,
no markup reflected as HTML, a cap on SSE streams.

The balancer under test listens on 0.0.0.0 (the admin rule only applies off loopback)
with its token from the environment, and is reached over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from unittest import mock

import pytest

from banditlb.balancer import admin
from banditlb.balancer.events import MAX_CLIENTS
from banditlb.balancer.runner import LbHandle, start_lb_process
from banditlb.fleet.runner import FleetHandle, start_fleet_process
from banditlb.store import db_path

TOKEN = "tok-Reliability-7f3a9c"
ADMIN_PATHS = ["/admin/strategy", "/admin/reset", "/admin/flush"]
ID = "Securityxxxxxxxxxxxxxxx1"


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetHandle]:
    with start_fleet_process(["T1"], seed=4) as handle:
        yield handle


def start_with_token_from_env(upstreams: list[str], data_dir) -> LbHandle:
    """A balancer on 0.0.0.0 whose admin token comes from the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(admin.TOKEN_ENV, TOKEN)
        return start_lb_process(upstreams, data_dir=data_dir, host="0.0.0.0")


@pytest.fixture(scope="module")
def lb(fleet: FleetHandle, tmp_path_factory) -> Iterator[LbHandle]:
    with start_with_token_from_env(fleet.upstreams("T1"),
                                   tmp_path_factory.mktemp("security")) as handle:
        yield handle


def port_of(lb: LbHandle) -> int:
    return int(lb.url.rsplit(":", 1)[1])


def http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
         host: str = "lb") -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection, read to the end (Connection: close)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, payload


def post_id(port: int, request_id: str = ID, **extra) -> tuple[int, dict[str, str], bytes]:
    return http(port, "POST", "/", json.dumps({"id": request_id}).encode(),
                {"Content-Type": "application/json", **extra})


# ---------------------------------------------------------------- the admin token


@pytest.mark.parametrize("path", ADMIN_PATHS)
@pytest.mark.parametrize("authorization", [
    None, "Bearer", "Bearer ", "Bearer wrong", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
    f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN.upper()}"])
def test_off_loopback_admin_without_the_token_is_401(lb, path, authorization):
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    status, fields, body = http(port_of(lb), "POST", path, b'{"strategy": "v1"}', headers)
    assert status == 401, body
    assert fields["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in json.loads(body)["error"]
    assert TOKEN not in body.decode()


def test_off_loopback_admin_with_the_token_works(lb):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/admin/reset", "/admin/flush"):
        status, _, body = http(port_of(lb), "POST", path, b"", auth)
        assert status == 200 and json.loads(body)["ok"] is True


def test_unauthenticated_admin_body_is_not_read(lb):
    """A 10 MB admin body announced without the token is refused before it is sent."""
    with socket.create_connection(("127.0.0.1", port_of(lb)), timeout=10) as sock:
        sock.sendall(b"POST /admin/strategy HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n"
                     b"Content-Length: 10000000\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401")


def test_token_is_compared_in_constant_time():
    with mock.patch.object(admin.hmac, "compare_digest", wraps=admin.hmac.compare_digest) as spy:
        assert admin.admin_denial("0.0.0.0", TOKEN, f"Bearer {TOKEN}") is None
        assert admin.admin_denial("0.0.0.0", TOKEN, "Bearer nope") is not None
    assert spy.call_count == 2


def test_start_lb_process_keeps_the_token_off_the_command_line(fleet, tmp_path):
    """argv is public (ps, /proc/PID/cmdline): the token goes through the environment."""
    with start_lb_process(fleet.upstreams("T1"), data_dir=tmp_path, admin_token=TOKEN) as lb, \
            open(f"/proc/{lb.process.pid}/cmdline", "rb") as cmdline:
        assert TOKEN.encode() not in cmdline.read()


def test_token_appears_in_no_output_answer_or_file(fleet, tmp_path, capfd):
    lb = start_with_token_from_env(fleet.upstreams("T1"), tmp_path)
    try:
        port = port_of(lb)
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        switch = json.dumps({"strategy": "v4", "upstreams": fleet.upstreams("T1")}).encode()
        assert http(port, "POST", "/admin/strategy", switch, auth)[0] == 200
        http(port, "POST", "/admin/strategy", b"{bad json", auth)
        http(port, "POST", "/admin/reset", b"", {"Authorization": f"Bearer {TOKEN}!"})
        seen = [post_id(port)[2]]
        seen += [http(port, "GET", path)[2] for path in
                 ("/stats", "/metrics", "/health", "/dashboard", "/dashboard/api/runs",
                  "/dashboard/api/sessions")]
        assert http(port, "POST", "/admin/flush", b"", auth)[0] == 200
        with open(f"/proc/{lb.process.pid}/cmdline", "rb") as cmdline:
            assert TOKEN.encode() not in cmdline.read()
        lb.process.terminate()
        assert lb.process.wait(30) == 0
        stdout = lb.process.stdout.read()
    finally:
        lb.stop()
    for answer in seen:
        assert TOKEN.encode() not in answer
    assert TOKEN.encode() not in db_path(tmp_path).read_bytes()
    stderr = capfd.readouterr().err
    assert "banditlb lb" in stderr  # the child's log was captured
    assert TOKEN not in stderr and TOKEN not in stdout


# ---------------------------------------------------------------- CORS, size limits, markup

CORS_PATHS = ["/", "/stats", "/events", "/metrics", "/health", "/admin/reset",
              "/dashboard/api/runs", "/dashboard"]


@pytest.fixture(scope="module")
def loopback_lb(fleet: FleetHandle, tmp_path_factory) -> Iterator[LbHandle]:
    with start_lb_process(fleet.upstreams("T1"),
                          data_dir=tmp_path_factory.mktemp("loopback")) as handle:
        yield handle


@pytest.mark.parametrize("path", CORS_PATHS)
def test_cors_is_off_by_default(loopback_lb, path):
    port = port_of(loopback_lb)
    origin = {"Origin": "http://evil.example"}
    preflight = http(port, "OPTIONS", path, headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    if path == "/events":
        sock, head = open_stream(port, origin)
        sock.close()
        plain = head.decode("latin-1").lower()
    else:
        plain = "".join(http(port, "GET", path, headers=origin)[1])
    assert not [k for k in preflight[1] if k.startswith("access-control-")], preflight
    assert "access-control-" not in plain


def raw_answer(port: int, wire: bytes) -> bytes:
    """The first bytes the server answers to `wire` (it need not be read to the end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire)
        return sock.recv(65536)


POST_HEAD = b"POST / HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("wire", [
    POST_HEAD + b"Content-Length: 1110\r\n\r\n" + b'{"id":"' + b"a" * 1100 + b'"}',
    POST_HEAD + b"Content-Length: 10000000\r\n\r\n",  # refused before the body comes
    POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n801\r\n" + b"a" * 0x801,
], ids=["1.1 kB body", "10 MB announced", "2 kB chunked"])
def test_bodies_over_1024_bytes_are_413_with_the_limit(loopback_lb, wire):
    answer = raw_answer(port_of(loopback_lb), wire)
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than 1024 bytes" in answer


def test_a_body_just_under_the_limit_is_served(loopback_lb):
    body = json.dumps({"id": ID, "pad": "x" * 900}).encode()
    assert len(body) < 1024
    status, _, reply = http(port_of(loopback_lb), "POST", "/", body,
                            {"Content-Type": "application/json"})
    assert status in (200, 502), reply


MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


@pytest.mark.parametrize("path", [
    "/dashboard/runs?run={m}", "/dashboard/compare?session={m}", "/dashboard/{m}",
    "/dashboard/api/runs/{m}", "/dashboard/api/truth?ports={m}", "/{m}", "/stats?{m}"])
def test_markup_in_urls_is_never_reflected_as_html(loopback_lb, path):
    """Server side; the browser test test_dashboard_browser.py::
    test_markup_in_names_and_params_renders_as_text covers stored names and params."""
    from urllib.parse import quote

    status, fields, body = http(port_of(loopback_lb), "GET",
                                path.format(m=quote(MARKUP, safe="")))
    if "html" in fields.get("content-type", ""):
        assert b"<script>window.__pwned" not in body and b"<img src=x" not in body
    else:
        assert fields.get("content-type", "").startswith(("application/json", "text/plain")), \
            (status, fields)


# ---------------------------------------------------------------- SSRF


async def test_only_configured_upstreams_are_ever_contacted(lb, fleet):
    """Addresses smuggled in the body, headers, Host, the request target or the dashboard's
    query reach no one: a canary listening on loopback sees no connection."""
    knocks: list[str] = []

    async def canary(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        knocks.append(repr(await reader.read(200)))
        writer.close()

    server = await asyncio.start_server(canary, "127.0.0.1", 0)
    target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    port = port_of(lb)
    body = json.dumps({"id": ID, "upstream": target, "url": f"http://{target}/",
                       "server": target, "upstreams": [target]}).encode()
    smuggled = {"X-Forwarded-Host": target, "X-Forwarded-For": "127.0.0.1",
                "Forwarded": f"for=127.0.0.1;host={target}", "X-Real-IP": "127.0.0.1",
                "X-Upstream": target, "Referer": f"http://{target}/",
                "Content-Type": "application/json"}
    attempts = [
        ("POST", "/", body, smuggled, target),
        ("POST", f"http://{target}/", body, smuggled, "lb"),
        ("POST", f"//{target}/", body, smuggled, target),
        ("CONNECT", target, b"", {}, target),
        ("GET", f"/dashboard/api/truth?ports={target.split(':')[1]}&fleet_url=http://{target}",
         b"", {}, target),
        ("POST", "/admin/strategy", json.dumps({"strategy": "v4", "upstreams": [target]})
         .encode(), {"Content-Type": "application/json"}, target),
    ]
    answers = []
    try:
        for method, path, payload, headers, host in attempts * 5:
            answers.append(await asyncio.to_thread(http, port, method, path, payload, headers,
                                                   host))
        await asyncio.sleep(0.5)
    finally:
        server.close()
    assert knocks == []
    configured = set(fleet.upstreams("T1"))
    for (method, *_), (status, _, reply) in zip(attempts * 5, answers, strict=True):
        if method == "CONNECT":  # a tunnel is refused, and says so
            assert status == 501 and b"not proxied" in reply, reply
            continue
        assert status < 500 or status in (502, 503), reply
        if status == 200 and reply.startswith(b'{"status"'):
            assert json.loads(reply)["server"] in configured
    assert sum(status == 401 for status, _, _ in answers) == 5  # the admin switch


# ---------------------------------------------------------------- SSE cap


def open_stream(port: int, headers: dict | None = None) -> tuple[socket.socket, bytes]:
    """An SSE connection and its response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: lb\r\n{extra}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    return sock, head


def test_sse_streams_are_capped_and_the_process_stays_healthy(loopback_lb):
    port = port_of(loopback_lb)
    streams: list[socket.socket] = []
    try:
        for _ in range(MAX_CLIENTS):
            sock, head = open_stream(port)
            streams.append(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
        refused = []
        for _ in range(10):
            sock, head = open_stream(port)
            with sock:
                refused.append(head.split(b"\r\n")[0])
        assert refused == [b"HTTP/1.1 503 Service Unavailable"] * 10
        assert http(port, "GET", "/health")[0] == 200
        assert post_id(port)[0] in (200, 502)
        for sock in streams[:5]:
            sock.close()
        del streams[:5]
        for _ in range(50):  # a freed slot is taken again once the server noticed the close
            sock, head = open_stream(port)
            if head.startswith(b"HTTP/1.1 200"):
                streams.append(sock)
                break
            sock.close()
            time.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        for sock in streams:
            sock.close()
