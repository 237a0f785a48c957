"""The per-port HTTP contract of the live fleet, over real sockets."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

VALID_ID = "abcDEF123456789012345xyz"


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize("body", [
    VALID_ID.encode(),
    f"  {VALID_ID}\n".encode(),
    json.dumps({"id": VALID_ID}).encode(),
    json.dumps({"id": VALID_ID, "extra": 1}).encode(),
])
def test_a_valid_id_is_scored(fleet_t1, http_call, body):
    port = fleet_t1.ports["T1"][3]
    status, headers, answer = http_call(port, "POST", "/", body)
    assert status in (200, 500)
    assert json.loads(answer) == {"status": "accepted" if status == 200 else "failed"}
    assert headers["Content-Type"] == "application/json"
    assert "Retry-After" not in headers


@pytest.mark.parametrize(("body", "reason"), [
    (b"tooShort", "id must be 24 characters, got 8"),
    (VALID_ID.encode() + b"X", "id must be 24 characters, got 25"),
    (b"abcDEF1234567890123-5xyz", "id must be ASCII letters and digits only"),
    ("abcDEF12345678901234567é".encode(), "id must be ASCII letters and digits only"),
    (b"", "id must be 24 characters, got 0"),
    (b'{"id": "abc', "bad JSON"),
    (b'{"key": "abcDEF123456789012345xyz"}', 'JSON body must be an object with an "id" field'),
    (b'{"id": 123456789012345678901234}', "id must be a string"),
    (b"\xff\xfe" * 12, "body is not valid UTF-8"),
])
def test_bad_ids_get_400_with_the_reason(fleet_t1, http_call, body, reason):
    status, _, answer = http_call(fleet_t1.ports["T1"][0], "POST", "/", body)
    assert status == 400
    assert reason in json.loads(answer)["error"]


def test_bad_ids_are_not_scored(fleet_t1, http_call):
    http_call(fleet_t1.ports["T1"][0], "POST", "/", b"nope")
    _, _, answer = http_call(int(fleet_t1.control_url.rsplit(":", 1)[1]), "GET", "/score")
    assert json.loads(answer)["scenarios"]["T1"]["attempts"] == 0


def test_body_over_1_kib_gets_413_and_close(fleet_t1):
    port = fleet_t1.ports["T1"][0]
    body = b"x" * 1025
    raw = raw_exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body))
    assert status_of(raw) == 413
    assert b"Connection: close" in raw


def test_chunked_body_over_1_kib_gets_413(fleet_t1):
    chunk = b"x" * 600
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
    assert status_of(raw_exchange(fleet_t1.ports["T1"][0], request)) == 413


def test_a_body_of_exactly_1_kib_is_read(fleet_t1, http_call):
    body = json.dumps({"id": VALID_ID}).encode().ljust(1024)
    status, _, _ = http_call(fleet_t1.ports["T1"][3], "POST", "/", body)
    assert status in (200, 500)


def test_unknown_path_is_404(fleet_t1, http_call):
    status, _, answer = http_call(fleet_t1.ports["T1"][0], "POST", "/submit", VALID_ID.encode())
    assert status == 404
    assert json.loads(answer) == {"error": "not found"}


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/", "POST"), ("PUT", "/", "POST"), ("DELETE", "/", "POST"),
    ("POST", "/health", "GET"),
])
def test_wrong_method_is_405_with_allow(fleet_t1, http_call, method, path, allow):
    status, headers, answer = http_call(fleet_t1.ports["T1"][0], method, path, b"")
    assert status == 405
    assert headers["Allow"] == allow
    assert "method not allowed" in json.loads(answer)["error"]


def test_health_answers_and_is_not_scored(fleet_t1, http_call):
    status, _, answer = http_call(fleet_t1.ports["T1"][0], "GET", "/health")
    assert (status, json.loads(answer)) == (200, {"ok": True})
    control_port = int(fleet_t1.control_url.rsplit(":", 1)[1])
    _, _, score = http_call(control_port, "GET", "/score")
    assert json.loads(score)["scenarios"]["T1"]["attempts"] == 0


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"POST / HTTP/9.9.9\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET http://h:99999/health HTTP/1.1\r\n\r\n",
    b"GET %zz HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_http_gets_400_and_close_and_the_server_lives_on(fleet_t1, http_call,
                                                                    garbage):
    port = fleet_t1.ports["T1"][0]
    raw = raw_exchange(port, garbage)
    assert status_of(raw) == 400
    assert b"malformed HTTP" in raw
    assert http_call(port, "GET", "/health")[0] == 200


def test_keep_alive_serves_several_requests_on_one_connection(fleet_t1):
    conn = http.client.HTTPConnection("127.0.0.1", fleet_t1.ports["T1"][3], timeout=5)
    try:
        statuses, sockets = [], set()
        for body in [VALID_ID, "bad", VALID_ID, json.dumps({"id": VALID_ID})] * 3:
            conn.request("POST", "/", body=body.encode())
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            sockets.add(id(conn.sock))
        assert len(sockets) == 1
        assert statuses[1::4] == [400, 400, 400]
        assert all(s in (200, 500) for i, s in enumerate(statuses) if i % 4 != 1)
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(fleet_t1):
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
    data = (post % (24, VALID_ID.encode()) + post % (3, b"bad")
            + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = raw_exchange(fleet_t1.ports["T1"][3], data)
    statuses = [int(part.split(b" ", 1)[0]) for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert statuses[1:] == [400, 404, 200]
    assert statuses[0] in (200, 500)


@pytest.mark.parametrize("request_line_and_headers", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /health HTTP/1.0\r\n\r\n",
])
def test_connection_close_is_honoured(fleet_t1, request_line_and_headers):
    raw = raw_exchange(fleet_t1.ports["T1"][0], request_line_and_headers)  # returns on close
    assert status_of(raw) == 200
    assert b"Connection: close" in raw
    assert raw.count(b"HTTP/1.1") == 1


def test_requests_pipelined_after_connection_close_are_not_handled(fleet_t1, http_call):
    data = (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n" + VALID_ID.encode())
    raw = raw_exchange(fleet_t1.ports["T1"][0], data)
    assert raw.count(b"HTTP/1.1 ") == 1
    control_port = int(fleet_t1.control_url.rsplit(":", 1)[1])
    _, _, score = http_call(control_port, "GET", "/score")
    assert json.loads(score)["scenarios"]["T1"]["attempts"] == 0
