"""Bad input against the balancer and the fleet: hypothesis-built HTTP and a raw-socket fuzzer.

Black-box: real processes on loopback, bytes on sockets. Over every input the
servers must not crash, never answer 500 from their own code (a 5xx is only the
balancer's 502/503 verdict on a valid id, or the fleet's modelled failure), give
a reason with every 4xx, close connections cleanly (their descriptor count comes
back), keep memory bounded, and keep serving valid requests sent alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import string
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httptools
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from banditlb.balancer.runner import LbHandle, start_lb_process
from banditlb.fleet.runner import FleetHandle, start_fleet_process
from banditlb.procinfo import accepted_connections

ALNUM = string.ascii_letters + string.digits
VALID_ID = "Abcdefghijklmnopqrstuvw1"
RSS_GROWTH_LIMIT_KB = 40_000
"""Generous: the campaign sends 10 MB bodies and 1 MB headers; a leak per input would pass it."""
FD_GROWTH_LIMIT = 100
"""Descriptors that may stay open after a campaign: pooled keep-alive upstream connections."""


# ---------------------------------------------------------------- processes under test


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_connections(pid: int, port: int) -> int:
    """Accepted connections still open once closing had a few seconds to finish."""
    for _ in range(50):
        count = accepted_connections(pid, port)
        if count == 0:
            return 0
        time.sleep(0.1)
    return count


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetHandle]:
    """T1 behind the balancer; T2 and the control port fuzzed directly (no pooled peers)."""
    with start_fleet_process(["T1", "T2"], seed=3) as handle:
        yield handle


@pytest.fixture(scope="module")
def balancer(fleet: FleetHandle, tmp_path_factory) -> Iterator[LbHandle]:
    """A balancer bound to loopback (so admin needs no token) in front of T1."""
    with start_lb_process(fleet.upstreams("T1"), data_dir=tmp_path_factory.mktemp("fuzz"),
                          attempt_timeout_ms=500, deadline_ms=3000) as handle:
        yield handle


class ValidTraffic:
    """Valid ids POSTed every `interval_s` from a thread while a fuzz campaign runs."""

    def __init__(self, port: int, interval_s: float = 0.02):
        self.port, self.interval_s = port, interval_s
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = random.Random(7)

    def __enter__(self) -> ValidTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            request_id = "".join(self._rng.choices(ALNUM, k=24))
            body = json.dumps({"id": request_id}).encode()
            wire = (b"POST / HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            try:
                (reply,) = exchange(self.port, wire).responses
                doc = json.loads(reply.body)
            except (OSError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.statuses[reply.status] += 1
            if reply.status not in (200, 502, 503) or "status" not in doc:
                self.failures.append(f"{reply.status} {reply.body[:200]!r}")

    def check(self, minimum: int, accepted_share: float = 0.9) -> None:
        """Every valid request got the balancer's JSON verdict; most were accepted."""
        assert not self.failures, self.failures[:5]
        total = sum(self.statuses.values())
        assert total >= minimum, f"only {total} valid requests went through"
        assert self.statuses[200] >= accepted_share * total, self.statuses


# ---------------------------------------------------------------- the wire


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class Exchange:
    responses: list[Reply] = field(default_factory=list)
    ended: str = "eof"
    """eof (server closed), reset, idle (server waits for more input), or garbage."""


class _ResponseReader:
    """httptools callbacks collecting every response on one connection."""

    def __init__(self, head: bool = False):
        self.parser = httptools.HttpResponseParser(self)
        self.head = head
        """The request was HEAD: its answer ends with its head (a Content-Length there
        describes the body a GET would get); a body after it is a second, bad message."""
        self.done: list[Reply] = []
        self._headers: dict[bytes, bytes] = {}
        self._body = bytearray()

    def feed(self, data: bytes) -> bool:
        """False when the bytes are not HTTP responses."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            return False
        return True

    def on_message_begin(self) -> None:
        self._headers, self._body = {}, bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.head and self.parser.get_status_code() >= 200:
            self.done.append(Reply(self.parser.get_status_code(), self._headers, b""))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200:  # 100 Continue is not an answer
            self.done.append(Reply(status, self._headers, bytes(self._body)))


def exchange(port: int, wire: bytes, timeout_s: float = 10.0) -> Exchange:
    """Send `wire` on a fresh connection and read until the server closes it."""
    reader, result = _ResponseReader(head=wire.startswith(b"HEAD ")), Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        with contextlib.suppress(OSError):  # closed early on us: its answer is still readable
            sock.sendall(wire)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                result.ended = "idle"
                break
            except ConnectionResetError:
                result.ended = "reset"
                break
            if not data:
                break
            if not reader.feed(data):
                result.ended = "garbage"
                break
    result.responses = reader.done
    return result


async def exchange_async(port: int, chunks: list[bytes], *, pause_s: float = 0.0,
                         idle_s: float = 0.4) -> Exchange:
    """Send `chunks` (pausing between them), read answers until close or `idle_s` of silence."""
    reader_, result = _ResponseReader(), Exchange()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause_s:
                    await asyncio.sleep(pause_s)
        except ConnectionError:
            pass  # closed on us mid-send (e.g. a 10 MB body after the 413): read what came
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), idle_s)
            except TimeoutError:
                result.ended = "idle"
                break
            except ConnectionError:
                result.ended = "reset"
                break
            if not data:
                break
            if not reader_.feed(data):
                result.ended = "garbage"
                break
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    result.responses = reader_.done
    return result


def head_verdict_ok(reply: Reply) -> str | None:
    """The answer to a HEAD has no body (its reason is what a GET would read)."""
    return None if reply.body == b"" else "a body in the answer to a HEAD"


def balancer_verdict_ok(reply: Reply) -> str | None:
    """None if `reply` is an answer the balancer may give, else what is wrong with it."""
    if reply.status >= 500:
        try:
            doc = json.loads(reply.body)
        except ValueError:
            return f"{reply.status} without the balancer's JSON: {reply.body[:200]!r}"
        if reply.status not in (502, 503) or doc.get("status") not in ("error", "unavailable") \
                or "attempts" not in doc:
            return f"{reply.status} from the balancer's own code: {reply.body[:200]!r}"
    elif reply.status >= 400 and not reply.body.strip():
        return f"{reply.status} without a reason"
    return None


def fleet_verdict_ok(reply: Reply) -> str | None:
    """The fleet may answer 500 only as a modelled failure ({"status": "failed"})."""
    if reply.status >= 500 and reply.body != b'{"status":"failed"}':
        return f"{reply.status} from the fleet's own code: {reply.body[:200]!r}"
    if 400 <= reply.status < 500 and not reply.body.strip():
        return f"{reply.status} without a reason"
    return None


# ---------------------------------------------------------------- hypothesis-built requests

KNOWN_PATHS = ["/", "/health", "/stats", "/metrics", "/admin/reset", "/admin/flush",
               "/admin/strategy", "/dashboard", "/dashboard/runs", "/dashboard/api/runs",
               "/events", "/ids/" + VALID_ID, "/score", "/truth", "/reset"]
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
HEADER_VALUE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                   blacklist_characters="\x7f")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)


def _json_bytes(value) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.text(ALNUM, min_size=24, max_size=24).map(lambda i: _json_bytes({"id": i})),
    json_values.map(lambda v: _json_bytes({"id": v})),
    json_values.map(_json_bytes),
    st.text(ALNUM, min_size=0, max_size=30).map(str.encode),
    st.binary(max_size=1500),
    st.integers(1000, 3000).map(lambda n: b'{"id": "' + b"a" * n + b'"}'),
)
content_types = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8",
                     "application/problem+json", "APPLICATION/JSON", "text/plain", "",
                     "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]),
    st.text(HEADER_VALUE_CHARS, max_size=40))
paths = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.text(string.ascii_letters + string.digits + "-._~/%!$&'()*+,;=:@", max_size=60)
    .map(lambda p: "/" + p),
    st.tuples(st.sampled_from(KNOWN_PATHS), st.binary(max_size=20))
    .map(lambda t: t[0] + "?" + "".join(f"%{b:02x}" for b in t[1])),
)
extra_headers = st.lists(
    st.tuples(st.text(TOKEN_CHARS, min_size=1, max_size=20), st.text(HEADER_VALUE_CHARS,
                                                                      max_size=80)),
    max_size=6)


@st.composite
def http_requests(draw) -> tuple[str, str, bytes]:
    """(method, path, wire bytes) of one well-framed HTTP/1.1 request with random content."""
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH",
                                   "OPTIONS"]) | st.text(string.ascii_uppercase, min_size=1,
                                                         max_size=10))
    path = draw(paths)
    assume(not (method == "GET" and path.startswith("/events")))  # a stream: tested apart
    body = draw(bodies)
    headers = [("Host", draw(st.sampled_from(["lb", "169.254.169.254", "127.0.0.1:1"]))),
               ("Content-Type", draw(content_types)), *draw(extra_headers),
               ("Connection", "close"), ("Content-Length", str(len(body)))]
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return method, path, head.encode("latin-1") + b"\r\n" + body


FUZZ_SETTINGS = settings(derandomize=True, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large])


def _campaign_start(pid: int) -> tuple[int, int]:
    return rss_kb(pid), open_fds(pid)


def _campaign_end(pid: int, ports: list[int], start: tuple[int, int]) -> None:
    """Memory bounded, every accepted connection closed, descriptors back near the start."""
    rss0, fds0 = start
    assert rss_kb(pid) - rss0 < RSS_GROWTH_LIMIT_KB, (rss0, rss_kb(pid))
    for port in ports:
        assert settled_connections(pid, port) == 0, f"connections to {port} left open"
    assert open_fds(pid) - fds0 < FD_GROWTH_LIMIT, (fds0, open_fds(pid))


HYPOTHESIS_BALANCER_EXAMPLES = 3000


def test_hypothesis_http_against_balancer(balancer: LbHandle):
    port, pid = _port(balancer.url), balancer.process.pid
    exchange(port, b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
    start = _campaign_start(pid)
    seen = Counter()

    @settings(FUZZ_SETTINGS, max_examples=HYPOTHESIS_BALANCER_EXAMPLES)
    @given(request=http_requests())
    def check(request):
        method, path, wire = request
        result = exchange(port, wire)
        assert result.ended == "eof", f"{method} {path}: connection ended {result.ended}"
        assert len(result.responses) == 1, f"{method} {path}: {result.responses}"
        reply = result.responses[0]
        problem = (head_verdict_ok if method == "HEAD" else balancer_verdict_ok)(reply)
        assert problem is None, f"{method} {path}: {problem}"
        seen[reply.status] += 1

    with ValidTraffic(port) as valid:
        check()
    valid.check(minimum=20)
    assert sum(seen.values()) >= HYPOTHESIS_BALANCER_EXAMPLES
    _campaign_end(pid, [port], start)


HYPOTHESIS_ADMIN_EXAMPLES = 1000
PARAM_NAMES = ["prior_alpha", "prior_beta", "window", "epsilon", "gamma", "budget",
               "discovery_requests", "target_rate", "cooldown_s", "confidence"]


def admin_bodies(upstreams: list[str]):
    """/admin/strategy bodies: every field with right and wrong types; upstreams only ever
    name the configured servers (anything else would make the balancer resolve names)."""
    values = {
        "strategy": st.sampled_from(["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
                                     "v10", "thompson", "random", "round-robin", "exp3",
                                     "epsilon-greedy", "auto", "oracle"]) | json_values,
        "params": st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=10),
                                  json_values, max_size=3) | json_values,
        "upstreams": st.lists(st.sampled_from(upstreams), max_size=12)
        | st.lists(st.integers() | st.none() | st.booleans(), max_size=3),
        "scenario": json_values,
        "run_id": st.integers() | json_values,
        "session": json_values,
        "seed": st.integers() | json_values,
        "bogus": json_values,
    }
    return st.fixed_dictionaries({"strategy": values["strategy"]},
                                 optional={k: v for k, v in values.items() if k != "strategy"})


def test_hypothesis_admin_bodies_against_balancer(balancer: LbHandle, fleet: FleetHandle):
    port, pid = _port(balancer.url), balancer.process.pid
    start = _campaign_start(pid)
    answers = Counter()

    @settings(FUZZ_SETTINGS, max_examples=HYPOTHESIS_ADMIN_EXAMPLES)
    @given(path=st.sampled_from(["/admin/strategy"] * 8 + ["/admin/reset", "/admin/flush"]),
           doc=admin_bodies(fleet.upstreams("T1")))
    def check(path, doc):
        body = json.dumps(doc).encode()
        wire = (f"POST {path} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
                f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        (reply,) = exchange(port, wire).responses
        answer = json.loads(reply.body)
        assert (reply.status, answer["ok"]) in ((200, True), (400, False)), (doc, reply)
        assert reply.status == 200 or answer["error"], doc
        answers[reply.status] += 1

    try:
        with ValidTraffic(port) as valid:
            check()
        valid.check(minimum=20, accepted_share=0.3)  # some switches pick poor servers
        assert sum(answers.values()) >= HYPOTHESIS_ADMIN_EXAMPLES
        assert answers[200] > 100 and answers[400] > 100, answers
    finally:  # the other tests share this balancer: back to v4 over all of T1
        _admin_switch(port, {"strategy": "v4", "upstreams": fleet.upstreams("T1")})
    _campaign_end(pid, [port], start)


def _admin_switch(port: int, doc: dict) -> Reply:
    body = json.dumps(doc).encode()
    wire = (b"POST /admin/strategy HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    (reply,) = exchange(port, wire).responses
    return reply


@pytest.mark.parametrize("doc", [
    {"strategy": "v4", "run_id": 2**63},
    {"strategy": "v4", "seed": 2**64},
    {"strategy": "v7", "params": {"window": 10**30}},
    {"strategy": "v4", "scenario": "\ud800"},
    {"strategy": "v4", "params": {"\ud800": 1}},
], ids=["run_id past 64 bits", "seed past 64 bits", "overflowing parameter",
        "lone surrogate", "lone surrogate in a parameter name"])
def test_admin_out_of_range_values_are_400(balancer: LbHandle, doc: dict):
    """Found by the admin fuzz above (they were 500s); fixed in the balancer."""
    reply = _admin_switch(_port(balancer.url), doc)
    assert reply.status == 400 and json.loads(reply.body)["error"], reply


# ---------------------------------------------------------------- raw malformed HTTP

TEMPLATE_BODY = b'{"id":"' + VALID_ID.encode() + b'"}'


def post(body: bytes = TEMPLATE_BODY, extra: bytes = b"", length: int | None = None,
         close: bool = True) -> bytes:
    length = len(body) if length is None else length
    return (b"POST / HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n" + extra
            + (b"Connection: close\r\n" if close else b"")
            + b"Content-Length: %d\r\n\r\n" % length + body)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1-8 random byte flips, insertions, deletions or duplications of a slice."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            out[pos:pos] = bytes(rng.choice([[0], [0xFF], [13, 10], [ord(":")], [ord(" ")],
                                             [rng.randrange(256)]]))
        elif op == 2 and out:
            del out[pos:pos + rng.randint(1, 10)]
        else:
            out[pos:pos] = out[pos:pos + rng.randint(1, 40)] * rng.randint(1, 5)
    return bytes(out)


@dataclass(frozen=True)
class RawCase:
    family: str
    chunks: list[bytes]
    pause_s: float = 0.0


def raw_cases(seed: int, mutations: int) -> list[RawCase]:
    """Every malformed-HTTP family from issue #7, then `mutations` random mutants."""
    rng = random.Random(seed)
    ten_mb = b"a" * 10_000_000
    cases = [
        *(RawCase("huge header", [post(extra=b"X-Big: " + b"a" * n + b"\r\n")])
          for n in (8_192, 65_536, 1_000_000)),
        *(RawCase("duplicated headers", [post(extra=line * n)])
          for line, n in [(b"X-Dup: 1\r\n", 10_000), (b"Content-Type: text/plain\r\n", 3),
                          (b"Host: other\r\n", 50), (b"Content-Length: 33\r\n", 2),
                          (b"Content-Length: 5\r\n", 1), (b"Transfer-Encoding: chunked\r\n", 1)]),
        *(RawCase("truncated body", [post(length=len(TEMPLATE_BODY) + k)]) for k in (1, 10, 900)),
        *(RawCase("truncated body", [post(length=len(TEMPLATE_BODY))[:-k]]) for k in (1, 5, 20)),
        *(RawCase("wrong content-length", [post(length=k)]) for k in (0, 1, 10, 32)),
        RawCase("wrong content-length", [post(length=-1)]),
        RawCase("wrong content-length", [post(extra=b"", length=10**30)]),
        RawCase("invalid utf-8", [post(body=b'{"id":"\xff\xfe' + b"a" * 22 + b'"}')]),
        RawCase("invalid utf-8", [b"GET /\xff\xfe HTTP/1.1\r\nHost: lb\r\n\r\n"]),
        RawCase("invalid utf-8", [post(extra=b"X-Name: \xc3\x28\xa0\xa1\r\n")]),
        RawCase("nul bytes", [post(body=b'{"id":"\x00' + b"a" * 23 + b'"}')]),
        RawCase("nul bytes", [post(extra=b"X-A: a\x00b\r\n")]),
        RawCase("nul bytes", [b"\x00" * 64]),
        RawCase("nul bytes", [b"POST /\x00 HTTP/1.1\r\nHost: lb\r\n\r\n"]),
        RawCase("10 MB body", [post(body=ten_mb)]),
        RawCase("10 MB body", [post(body=ten_mb, extra=b"", length=len(TEMPLATE_BODY))]),
        RawCase("10 MB body", [b"POST / HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json"
                               b"\r\nTransfer-Encoding: chunked\r\n\r\n989680\r\n" + ten_mb
                               + b"\r\n0\r\n\r\n"]),
        RawCase("10 MB body", [b"POST / HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json"
                               b"\r\nContent-Length: 10000000\r\n\r\n" + ten_mb[:1_000_000]]),
        RawCase("pipelined garbage", [post(close=False) + b"GARBAGE\r\n\r\n" + post()]),
        RawCase("pipelined garbage", [post(close=False) * 5 + post()]),
        RawCase("pipelined garbage", [post(close=False) + bytes(range(256)) * 4]),
        RawCase("pipelined garbage", [b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n" * 20
                                      + b"\r\n\r\n\r\n" + post()]),
        RawCase("protocol confusion", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]),
        RawCase("protocol confusion", [b"GET / HTTP/1.0\r\n\r\n"]),
        RawCase("protocol confusion", [b"POST / HTTP/9.9\r\nHost: lb\r\n\r\n"]),
        RawCase("protocol confusion", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 8]),
        RawCase("protocol confusion", [b"GET /events HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket"
                                       b"\r\nConnection: Upgrade\r\n\r\n"]),
    ]
    slow = post()
    cases += [RawCase("slowloris", [slow[i:i + 4] for i in range(0, len(slow), 4)], 0.03)
              for _ in range(10)]
    templates = [post(), post(close=False), b"GET /stats HTTP/1.1\r\nHost: lb\r\n\r\n",
                 b"POST /admin/flush HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\n\r\n{}",
                 b"GET /dashboard/runs HTTP/1.1\r\nHost: lb\r\n\r\n"]
    cases += [RawCase("random mutation", [mutate(rng, rng.choice(templates))])
              for _ in range(mutations)]
    return cases


async def run_raw_campaign(port: int, cases: list[RawCase], verdict, concurrency: int = 48
                           ) -> tuple[Counter, list[str]]:
    """Every case on its own connection, `concurrency` at a time; (counts, problems)."""
    gate = asyncio.Semaphore(concurrency)
    counts, problems = Counter(), []

    async def one(case: RawCase) -> None:
        async with gate:
            result = await exchange_async(port, case.chunks, pause_s=case.pause_s)
        counts[case.family] += 1
        if result.ended == "garbage":
            problems.append(f"{case.family}: answer is not HTTP")
        for reply in result.responses:
            problem = verdict(reply)
            if problem:
                problems.append(f"{case.family}: {problem}")
        if case.family == "slowloris" and len(result.responses) != 1:
            problems.append(f"slowloris: a trickled request got {result.responses}")

    await asyncio.gather(*(one(case) for case in cases))
    return counts, problems


RAW_BALANCER_MUTATIONS = 4000


def test_raw_malformed_http_against_balancer(balancer: LbHandle):
    port, pid = _port(balancer.url), balancer.process.pid
    exchange(port, b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
    start = _campaign_start(pid)
    cases = raw_cases(seed=11, mutations=RAW_BALANCER_MUTATIONS)
    with ValidTraffic(port) as valid:
        counts, problems = asyncio.run(run_raw_campaign(port, cases, balancer_verdict_ok))
    assert not problems, problems[:10]
    assert sum(counts.values()) == len(cases) >= RAW_BALANCER_MUTATIONS
    valid.check(minimum=20)
    _campaign_end(pid, [port], start)


def test_oversized_request_head_is_refused(balancer: LbHandle):
    """uvicorn's httptools protocol buffers a head of any size; the balancer bounds it."""
    result = exchange(_port(balancer.url), post(extra=b"X-Big: " + b"a" * 1_000_000 + b"\r\n"))
    assert [r.status for r in result.responses] == [431]
    assert b"request head larger than" in result.responses[0].body


def test_client_sending_10_mb_reads_the_413(balancer: LbHandle):
    """Closing with the body unread would make the kernel reset the connection and the
    client lose the 413; the balancer drains the refused body first."""
    for _ in range(3):
        result = asyncio.run(exchange_async(_port(balancer.url), [post(body=b"a" * 10_000_000)]))
        assert [r.status for r in result.responses] == [413], result.ended


def test_admin_body_cut_short_is_not_an_exception(fleet: FleetHandle, tmp_path, capfd):
    with start_lb_process(fleet.upstreams("T1"), data_dir=tmp_path) as lb:
        with socket.create_connection(("127.0.0.1", _port(lb.url))) as sock:
            sock.sendall(b"POST /admin/strategy HTTP/1.1\r\nHost: lb\r\n"
                         b"Content-Length: 100\r\n\r\n{")
        exchange(_port(lb.url), b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------- the fleet


HYPOTHESIS_FLEET_EXAMPLES = 1000
RAW_FLEET_MUTATIONS = 1500


def test_hypothesis_http_against_fleet(fleet: FleetHandle, balancer: LbHandle):
    """Valid ids go through the balancer to the same fleet process meanwhile."""
    ports = [fleet.ports["T2"][0], _port(fleet.control_url)]
    pid = fleet.process.pid
    start = _campaign_start(pid)
    checked = []

    @settings(FUZZ_SETTINGS, max_examples=HYPOTHESIS_FLEET_EXAMPLES)
    @given(request=http_requests(), target=st.sampled_from(ports))
    def check(request, target):
        method, path, wire = request
        result = exchange(target, wire)
        assert result.ended == "eof", f"{method} {path}: connection ended {result.ended}"
        assert len(result.responses) == 1, f"{method} {path}: {result.responses}"
        problem = (head_verdict_ok if method == "HEAD" else fleet_verdict_ok)(result.responses[0])
        assert problem is None, f"{method} {path}: {problem}"
        checked.append(target)

    with ValidTraffic(_port(balancer.url)) as valid:
        check()
    valid.check(minimum=20)
    assert len(checked) >= HYPOTHESIS_FLEET_EXAMPLES
    _campaign_end(pid, ports, start)


def test_raw_malformed_http_against_fleet(fleet: FleetHandle, balancer: LbHandle):
    server, control = fleet.ports["T2"][1], _port(fleet.control_url)
    pid = fleet.process.pid
    start = _campaign_start(pid)
    cases = raw_cases(seed=12, mutations=RAW_FLEET_MUTATIONS)

    async def both() -> tuple[Counter, list[str]]:
        half = len(cases) // 2
        (c1, p1), (c2, p2) = await asyncio.gather(
            run_raw_campaign(server, cases[:half], fleet_verdict_ok, 24),
            run_raw_campaign(control, cases[half:], fleet_verdict_ok, 24))
        return c1 + c2, p1 + p2

    with ValidTraffic(_port(balancer.url)) as valid:
        counts, problems = asyncio.run(both())
    valid.check(minimum=10)
    assert not problems, problems[:10]
    assert sum(counts.values()) == len(cases)
    _campaign_end(pid, [server, control], start)
