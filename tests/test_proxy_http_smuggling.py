"""HTTP desync: a request the balancer could frame two ways must never reach an upstream as two."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

import pytest

from banditlb.balancer.config import Forwarding
from banditlb.balancer.runner import LbHandle, start_lb_thread
from upstreams import Upstream, serve

TIMEOUT_S = 3.0
"""Every socket read: a balancer that hangs on a request fails the test, it does not stall."""
SETTLE_S = 0.3
"""How long a refused request is given to show up at the upstream anyway."""
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: lb\r\n\r\n"


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool
    """The body ended as its framing said (not cut by a closed connection)."""

    def fields(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Recorder(Upstream):
    """tests/upstreams.py's upstream, also keeping every request it received, recorded
    before it answers (so a test that has the answer also has the record)."""

    def __init__(self):
        super().__init__("a")
        self.seen: list[Seen] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body, complete = b"", False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                complete = True
                break
        self.seen.append(Seen(scope["method"], scope["path"],
                              [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in scope["headers"]], body, complete))
        if not complete:
            return  # nobody is left to answer
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def again():
            return replay.pop() if replay else {"type": "http.disconnect"}

        await super().__call__(scope, again, send)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def doc(self) -> dict:
        """What the upstream said it saw (its JSON answer)."""
        return json.loads(self.body)


class Client:
    """One raw connection to the balancer: bytes out as given, answers parsed one by one."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        self.buf += chunk
        return bool(chunk)

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            assert self._fill(), f"connection closed {n - len(self.buf)} bytes short"
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            assert self._fill(), f"connection closed mid-line: {self.buf!r}"
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def answer(self, head_request: bool = False) -> Answer:
        """The next answer on the connection (for a HEAD request: no body follows)."""
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed before a whole answer head: {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), status_line
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if head_request:
            body = b""
        elif headers.get("transfer-encoding") == ["chunked"]:
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            while self._line():  # trailer fields, then the empty line
                pass
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"][0]))
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return Answer(int(status_line.split()[1]), headers, body)

    def maybe_answer(self) -> Answer | None:
        """The next answer, or None when the connection closes or stays silent first."""
        try:
            if not self.buf and not self._fill():
                return None
        except TimeoutError:
            return None
        return self.answer()

    def rest_until_close(self) -> bytes:
        """Whatever else the balancer sends before it closes the connection (a timeout,
        that is a connection left open, fails the test)."""
        try:
            while self._fill():
                pass
        except TimeoutError:
            pytest.fail(f"connection still open {TIMEOUT_S} s after the answer; "
                        f"bytes after it: {self.buf!r}")
        rest, self.buf = self.buf, b""
        return rest


def port_of(proxy: LbHandle) -> int:
    return int(proxy.url.rsplit(":", 1)[1])


@pytest.fixture
def upstream():
    """The real upstream app on 127.0.0.1: (its recorder, its port)."""
    app = Recorder()
    with serve(app) as port:
        yield app, port


@pytest.fixture
def proxy(request, upstream, tmp_path):
    """A balancer in front of `upstream`; an indirect param sets max_retry_body."""
    _, port = upstream
    max_retry_body = getattr(request, "param", None)
    options = {} if max_retry_body is None else {
        "forwarding": Forwarding(max_retry_body=max_retry_body)}
    with start_lb_thread([f"http://127.0.0.1:{port}"], strategy="auto", data_dir=tmp_path,
                         **options) as handle:
        yield handle


@pytest.fixture
def client(proxy):
    conn = Client(port_of(proxy))
    yield conn
    conn.close()


def assert_refused_and_dropped(client: Client, recorder: Recorder, proxy: LbHandle) -> None:
    """The request got a 400, the connection closed after it, nothing reached the upstream,
    and the balancer still serves the next client."""
    answer = client.answer()
    assert answer.status == 400, (answer.status, answer.body)
    assert client.rest_until_close() == b""  # nothing after it is read as a request
    time.sleep(SETTLE_S)
    assert recorder.seen == [], recorder.seen
    assert_still_serving(proxy, recorder)


def assert_still_serving(proxy: LbHandle, recorder: Recorder) -> None:
    before = len(recorder.seen)
    conn = Client(port_of(proxy))
    try:
        conn.send(b"GET /alive HTTP/1.1\r\nHost: lb\r\n\r\n")
        answer = conn.answer()
    finally:
        conn.close()
    assert answer.status == 200 and answer.doc()["path"] == "/alive"
    assert [s.path for s in recorder.seen[before:] if s.complete] == ["/alive"]


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailer + b"\r\n"


# ------------------------------------------------- 1. Content-Length and Transfer-Encoding

# CL.TE: by its length the body holds a second request; chunked, the body is empty and the
# second request follows it. TE.CL: chunked, the body is the second request's text; by its
# length (4 bytes) the body ends after "5c\r\n" and what follows is a request.
CL_TE_BODY = b"0\r\n\r\n" + SMUGGLED
TE_CL_CHUNK = b"GPOST /smuggled HTTP/1.1\r\nHost: lb\r\nContent-Length: 15\r\n\r\nx=1"
BOTH_LENGTHS = {
    "CL.TE": (b"POST /front HTTP/1.1\r\nHost: lb\r\nContent-Length: %d\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" % len(CL_TE_BODY) + CL_TE_BODY, b""),
    "TE.CL": (b"POST /front HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 4\r\n\r\n" + chunked(TE_CL_CHUNK), TE_CL_CHUNK),
    "CL 0, TE": (b"POST /front HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"hello") + SMUGGLED, b"hello"),
}


@pytest.mark.parametrize("case", BOTH_LENGTHS)
def test_content_length_with_chunked_is_refused_or_framed_by_the_chunks_alone(
        case, upstream, proxy, client):
    recorder, _ = upstream
    wire, decoded = BOTH_LENGTHS[case]
    client.send(wire)
    first = client.answer()
    if 400 <= first.status < 500:
        assert first.status == 400, first.body
        assert client.rest_until_close() == b""
        time.sleep(SETTLE_S)
        assert recorder.seen == []
        assert_still_serving(proxy, recorder)
        return
    # accepted: the chunks frame the body, and the connection closes after the answer
    # (RFC 9112 section 6.3), so the bytes after the chunks are no request of anyone's
    assert first.status == 200, first.body
    assert client.rest_until_close() == b""
    time.sleep(SETTLE_S)
    assert [(s.path, s.body, s.complete) for s in recorder.seen] == [("/front", decoded, True)]


# ------------------------------------------------------------- 2. two Content-Lengths


@pytest.mark.parametrize("lengths", [
    b"Content-Length: 5\r\nContent-Length: %d\r\n",
    b"Content-Length: %d\r\nContent-Length: 5\r\n",
    b"Content-Length: 5, %d\r\n",
], ids=["short then long", "long then short", "one field, two values"])
def test_two_different_content_lengths_are_refused_and_never_forwarded(
        lengths, upstream, proxy, client):
    recorder, _ = upstream
    body = b"hello" + SMUGGLED  # by 5 bytes a request follows; by the other, it is body
    client.send(b"POST /front HTTP/1.1\r\nHost: lb\r\n" + lengths % len(body) + b"\r\n"
                + body)
    assert_refused_and_dropped(client, recorder, proxy)


# -------------------------------------------------- 3. odd or obfuscated Transfer-Encoding

ODD_TE = {
    "chunked, identity": b"Transfer-Encoding: chunked, identity\r\n",
    "space before colon": b"Transfer-Encoding : chunked\r\n",
    "xchunked": b"Transfer-Encoding: xchunked\r\n",
    "chunked, then identity field": b"Transfer-Encoding: chunked\r\n"
                                    b"Transfer-Encoding: identity\r\n",
    "identity, chunked": b"Transfer-Encoding: identity, chunked\r\n",
    "tab before value": b"Transfer-Encoding:\tchunked\r\n",
    "vertical tab before value": b"Transfer-Encoding:\x0bchunked\r\n",
    "upper case": b"Transfer-Encoding: CHUNKED\r\n",
    "folded line": b"Transfer-Encoding:\r\n chunked\r\n",
    "field name after a space": b"X-A: 1\r\n Transfer-Encoding: chunked\r\n",
}


@pytest.mark.parametrize("with_length", [False, True], ids=["alone", "with Content-Length"])
@pytest.mark.parametrize("te", ODD_TE)
def test_an_odd_transfer_encoding_is_refused_or_read_as_one_chunked_request(
        te, with_length, upstream, proxy, client):
    recorder, _ = upstream
    body = chunked(b"hello") + SMUGGLED
    length = b"Content-Length: %d\r\n" % len(body) if with_length else b""
    client.send(b"POST /front HTTP/1.1\r\nHost: lb\r\n" + ODD_TE[te] + length + b"\r\n" + body)
    first = client.answer()
    if 400 <= first.status < 500:
        assert client.rest_until_close() == b""
        time.sleep(SETTLE_S)
        assert recorder.seen == []
        assert_still_serving(proxy, recorder)
        return
    # accepted as chunked: one request with the decoded body
    assert first.status == 200, (first.status, first.body)
    assert first.doc()["path"] == "/front" and first.doc()["body_head"] == "hello"
    if with_length:  # framed two ways: the connection closes after (RFC 9112 section 6.3)
        assert client.rest_until_close() == b""
        time.sleep(SETTLE_S)
        assert [(s.path, s.body) for s in recorder.seen] == [("/front", b"hello")]
        return
    # what follows the chunks is the client's own next request (it gets the answer to it),
    # or the connection closes
    answered = ["/front"]
    second = client.maybe_answer()
    if second is not None:
        answered.append(second.doc()["path"])
    time.sleep(SETTLE_S)
    assert [(s.path, s.body) for s in recorder.seen][:1] == [("/front", b"hello")]
    assert recorder.paths() == answered  # one upstream request per answer the client got


# ---------------------------------------------------- 4. CR, LF or NUL inside a header value


@pytest.mark.parametrize("line", [
    b"X-A: a\rX-Injected: 1\r\n",
    b"X-A: a\nX-Injected: 1\r\n",
    b"X-A: a\r\rX-Injected: 1\r\n",
    b"X-A: a\x00X-Injected: 1\r\n",
    b"X-A: \x00\r\n",
], ids=["bare CR", "bare LF", "two CRs", "NUL mid-value", "NUL alone"])
@pytest.mark.parametrize("method", [b"GET", b"POST"])
def test_a_header_value_with_a_bare_cr_lf_or_nul_is_400_and_never_forwarded(
        line, method, upstream, proxy, client):
    recorder, _ = upstream
    body = b"Content-Length: 5\r\n\r\nhello" if method == b"POST" else b"\r\n"
    client.send(method + b" /front HTTP/1.1\r\nHost: lb\r\n" + line + body)
    assert_refused_and_dropped(client, recorder, proxy)


# ------------------------------------------ 5. the framing sent upstream matches the body

FRAMED = {
    "two chunks": b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"hello", b" world"),
    "two chunks, extensions": b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n"
                              b"6;c\r\n world\r\n0\r\n\r\n",
    "Content-Length": b"Content-Length: 11\r\n\r\nhello world",
    "Content-Length named in Connection": b"Connection: content-length\r\n"
                                          b"Content-Length: 11\r\n\r\nhello world",
    "chunked named in Connection": b"Connection: transfer-encoding\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n"
                                   + chunked(b"hello", b" world"),
}


def assert_framing_agrees(seen: Seen) -> None:
    lengths, codings = seen.fields("content-length"), seen.fields("transfer-encoding")
    assert not (lengths and codings), seen.headers  # never both
    if lengths:
        assert lengths == [str(len(seen.body))], seen.headers
    else:
        assert codings == ["chunked"], seen.headers


@pytest.mark.parametrize("proxy", [None, 4], indirect=True,
                         ids=["body kept for retries", "body streamed"])
@pytest.mark.parametrize("framing", FRAMED)
def test_the_upstream_gets_the_whole_body_once_framed_as_it_is_sent(
        framing, upstream, proxy, client):
    recorder, _ = upstream
    client.send(b"POST /front HTTP/1.1\r\nHost: lb\r\n" + FRAMED[framing]
                + b"GET /next HTTP/1.1\r\nHost: lb\r\n\r\n")
    first, second = client.answer(), client.answer()
    assert first.status == 200 and first.doc()["body_bytes"] == 11
    assert second.status == 200 and second.doc()["path"] == "/next"
    assert [(s.path, s.body, s.complete) for s in recorder.seen] == [
        ("/front", b"hello world", True), ("/next", b"", True)]
    assert_framing_agrees(recorder.seen[0])
    assert not recorder.seen[1].fields("content-length") or \
        recorder.seen[1].fields("content-length") == ["0"]
    assert not recorder.seen[1].fields("transfer-encoding")


@pytest.mark.parametrize("proxy", [None, 4], indirect=True,
                         ids=["body kept for retries", "body streamed"])
@pytest.mark.parametrize("broken", [
    b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the chunk's data
    b"5\r\nhello\r\nzz\r\n\r\n",  # a chunk size that is no number
    b"5\r\nhello\r\n6 \r\n world\r\n0\r\n\r\n",  # a space after a size
], ids=["no CRLF after data", "size not hex", "space after size"])
def test_a_chunked_body_broken_after_a_chunk_is_never_completed_upstream(
        broken, upstream, proxy, client):
    """Part of the body may already be on its way when the framing breaks (streamed): the
    upstream connection must then be cut, not the body ended as if it were whole."""
    recorder, _ = upstream
    client.send(b"POST /front HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
                + broken)
    answer = client.answer()
    assert answer.status == 400, answer.body
    assert client.rest_until_close() == b""
    time.sleep(SETTLE_S)
    assert [s for s in recorder.seen if s.complete] == []
    assert_still_serving(proxy, recorder)


def test_trailer_fields_never_reach_the_upstream_as_header_fields(upstream, proxy, client):
    recorder, _ = upstream
    client.send(b"POST /front HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunked(b"hello", trailer=b"Authorization: Bearer smuggled\r\n"
                                            b"X-Smuggled: 1\r\n"))
    answer = client.answer()
    assert answer.status == 200, answer.body
    assert [(s.path, s.body) for s in recorder.seen] == [("/front", b"hello")]
    names = {k for k, _ in recorder.seen[0].headers}
    assert not {"authorization", "x-smuggled"} & names, recorder.seen[0].headers


# ------------------------------------------------------------------------ 6. pipelining

PIPELINED = {
    "two GETs": ([b"GET /one HTTP/1.1\r\nHost: lb\r\n\r\n",
                  b"GET /two HTTP/1.1\r\nHost: lb\r\n\r\n"], [False, False]),
    "POST with a body, then GET": (
        [b"POST /one HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\n\r\nhello",
         b"GET /two HTTP/1.1\r\nHost: lb\r\n\r\n"], [False, False]),
    "chunked POST, then GET": (
        [b"POST /one HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
         + chunked(b"hel", b"lo"), b"GET /two HTTP/1.1\r\nHost: lb\r\n\r\n"], [False, False]),
    "HEAD, then GET": ([b"HEAD /one HTTP/1.1\r\nHost: lb\r\n\r\n",
                        b"GET /two HTTP/1.1\r\nHost: lb\r\n\r\n"], [True, False]),
}


@pytest.mark.parametrize("case", PIPELINED)
def test_pipelined_requests_each_get_their_own_answer_in_order(case, upstream, proxy, client):
    recorder, _ = upstream
    requests, heads = PIPELINED[case]
    client.send(b"".join(requests))  # one write
    first = client.answer(head_request=heads[0])
    second = client.answer(head_request=heads[1])
    assert (first.status, second.status) == (200, 200)
    if not heads[0]:
        assert first.doc()["path"] == "/one"
    else:  # no body after a HEAD answer: the next answer starts right after its head
        assert int(first.headers["content-length"][0]) > 0
    assert second.doc()["path"] == "/two"
    assert recorder.paths() == ["/one", "/two"]
    assert all(s.complete for s in recorder.seen)
    if case != "two GETs" and not heads[0]:
        assert recorder.seen[0].body == b"hello" and recorder.seen[1].body == b""
    # and the connection stays open for a third, answered in turn
    client.send(b"GET /three HTTP/1.1\r\nHost: lb\r\n\r\n")
    assert client.answer().doc()["path"] == "/three"
    assert recorder.paths() == ["/one", "/two", "/three"]
