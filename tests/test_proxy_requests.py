"""The balancer in front of the live T1 fleet: answers, bad input, /stats, /metrics, /events."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from banditlb.balancer.runner import LbHandle, start_lb_thread

SNAPSHOT_KEYS = {"t", "strategy", "alias", "params", "scenario", "run_id", "session_id",
                 "requests", "accepted", "gave_up", "unavailable", "attempts", "penalized",
                 "rate_limited", "score", "penalty_weight", "free_attempts", "servers",
                 "latency_ms", "fleet_url", "beliefs", "waiting"}
SERVER_KEYS = {"index", "upstream", "weight", "attempts", "accepted", "failed", "rate_limited",
               "timeouts", "conn_errors", "estimate"}


def make_id(n: int) -> str:
    return f"req{n:021d}"


@pytest.fixture
def lb(fleet_t1, tmp_path) -> Iterator[LbHandle]:
    with start_lb_thread(fleet_t1.upstreams("T1"), strategy="v4", data_dir=tmp_path,
                         fleet_url=fleet_t1.control_url, scenario="T1") as handle:
        yield handle


@pytest.fixture
def client(lb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lb.url, timeout=10) as c:
        yield c


def test_every_answer_matches_the_fleets_record_of_the_id(fleet_t1, client):
    upstreams = set(fleet_t1.upstreams("T1"))
    statuses = []
    for n in range(40):
        answer = client.post("/", json={"id": make_id(n)})
        record = client.get(f"{fleet_t1.control_url}/ids/{make_id(n)}").json()
        body = answer.json()
        statuses.append(answer.status_code)
        assert record["known"] and record["attempts"] == body["attempts"]
        if answer.status_code == 200:
            assert body["status"] == "ok" and record["accepted"]
            assert body["server"] in upstreams
        else:
            assert answer.status_code == 502 and not record["accepted"]
            assert body["status"] == "error" and body["last"] == "failed"
    assert statuses.count(200) >= 30  # T1 has servers at 0.93 and 0.88


@pytest.mark.parametrize(("body", "headers", "status", "reason"), [
    (b'{"id": "abc"}', {}, 400, "24 characters, got 3"),
    (b'{"id": "abcdefghijklmnopqrstuvw!"}', {}, 400, "letters and digits"),
    (b'{"id": "abcdefghijklmnopqrstuvw\xc3\xa9"}', {}, 400, "letters and digits"),
    (b'{"id": 123456789012345678901234}', {}, 400, "must be a string"),
    (b'{"id": ', {}, 400, "bad JSON"),
    (b'{"key": "abcdefghijklmnopqrstuvwx"}', {}, 400, '"id" field'),
    (b'["abcdefghijklmnopqrstuvwx"]', {}, 400, "must be JSON"),
    (b"abcdefghijklmnopqrstuvwx", {}, 400, "must be JSON"),
    (b"\xff\xfe", {}, 400, "UTF-8"),
    (b'{"id": "' + b"a" * 2000 + b'"}', {}, 413, "larger than 1024 bytes"),
    (b'{"id": "abcdefghijklmnopqrstuvwx"}', {"content-type": "text/plain"}, 415,
     "application/json"),
    (b'{"id": "abcdefghijklmnopqrstuvwx"}', {"content-type": ""}, 415, "application/json"),
])
def test_bad_input_gets_a_4xx_with_the_reason_and_reaches_no_upstream(client, body, headers,
                                                                       status, reason):
    answer = client.post("/", content=body,
                         headers={"content-type": "application/json", **headers})
    assert answer.status_code == status
    assert answer.json()["status"] == "error"
    assert reason in answer.json()["error"]
    stats = client.get("/stats").json()
    assert stats["attempts"] == 0 and stats["requests"] == 0 and stats["rejected"] == 1


def test_a_body_streamed_past_the_limit_is_refused(client):
    def chunks():
        yield b'{"id": "'
        for _ in range(8):
            yield b"a" * 200
    answer = client.post("/", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_a_large_body_is_drained_so_the_client_reads_the_413(client):
    answer = client.post("/", content=b"a" * 10_000_000,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "larger than 1024 bytes" in answer.json()["error"]
    assert client.get("/health").status_code == 200  # and the connection is still good


def raw_exchange(url: str, wire: bytes, done) -> bytes:
    """Send raw bytes on one connection; read until done(received) or the balancer closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(wire)
        received = b""
        while not done(received) and (chunk := sock.recv(65536)):
            received += chunk
    return received


def test_an_oversized_request_head_is_refused_with_431(lb):
    head = b"POST / HTTP/1.1\r\nHost: lb\r\nX-Big: " + b"a" * 40_000  # never finished
    reply = raw_exchange(lb.url, head, lambda received: False)
    assert reply.startswith(b"HTTP/1.1 431 ") and b"request head larger than" in reply


def test_pipelined_requests_are_not_mistaken_for_a_large_head(lb):
    one = b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n"
    count = 30_000 // len(one) + 1  # more bytes in one write than a head may have
    reply = raw_exchange(lb.url, one * count,
                         lambda received: received.count(b"HTTP/1.1 ") >= count)
    assert reply.count(b"HTTP/1.1 200 ") == count


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 405), ("PUT", "/", 405), ("POST", "/stats", 405), ("GET", "/nope", 404),
    ("GET", "/admin/strategy", 405),
])
def test_wrong_paths_and_methods_answer_json(client, method, path, status):
    answer = client.request(method, path)
    assert answer.status_code == status
    assert answer.json()["status"] == "error" and answer.json()["error"]
    if status == 405 and path == "/":
        assert answer.headers["allow"] == "POST"


def test_health(client):
    assert client.get("/health").json() == {"ok": True}


def test_stats_snapshot_adds_up(client, fleet_t1):
    for n in range(25):
        client.post("/", json={"id": make_id(n)})
    stats = client.get("/stats").json()
    assert set(stats) >= SNAPSHOT_KEYS
    assert (stats["strategy"], stats["alias"], stats["scenario"]) == ("v4", "thompson", "T1")
    assert stats["fleet_url"] == fleet_t1.control_url and stats["run_id"] is not None
    assert stats["requests"] == 25 == stats["accepted"] + stats["gave_up"] + stats["unavailable"]
    servers = stats["servers"]
    assert [s["upstream"] for s in servers] == fleet_t1.upstreams("T1")
    assert all(set(s) == SERVER_KEYS for s in servers)
    assert sum(s["attempts"] for s in servers) == stats["attempts"] >= 25
    assert sum(s["accepted"] for s in servers) == stats["accepted"]
    assert stats["score"] == stats["accepted"] - stats["penalized"]
    latency = stats["latency_ms"]
    assert len(latency["counts"]) == len(latency["bounds"]) + 1 and sum(latency["counts"]) == 25
    assert 0 < latency["p50"] <= latency["p99"]
    assert stats["beliefs"]["estimates"] == [s["estimate"] for s in servers]


def test_prometheus_metrics_parse_and_agree_with_stats(client):
    for n in range(10):
        client.post("/", json={"id": make_id(n)})
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    stats = client.get("/stats").json()
    attempts = families["banditlb_attempts"].samples
    assert sum(s.value for s in attempts) == stats["attempts"]
    assert {s.labels["outcome"] for s in attempts} == {"accepted", "failed", "rate_limited",
                                                       "timeout", "conn_error"}
    requests = {s.labels["result"]: s.value for s in families["banditlb_requests"].samples}
    assert requests["ok"] == stats["accepted"]
    estimates = families["banditlb_success_estimate"].samples
    assert len(estimates) == 10 and all(0 <= s.value <= 1 for s in estimates)
    count = [s for s in families["banditlb_request_latency_seconds"].samples
             if s.name.endswith("_count")]
    assert count[0].value == 10
    assert "banditlb_attempt_latency_seconds" in families


def read_events(url: str, until) -> list[tuple[str, dict]]:
    """SSE events from `url` until `until(events)` is true (the read times out otherwise)."""
    events: list[tuple[str, dict]] = []
    name = None
    with httpx.stream("GET", url, timeout=httpx.Timeout(5.0)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.removeprefix("data:"))))
                if until(events):
                    return events
    raise AssertionError(f"stream ended early after {events}")


def test_events_stream_heartbeats_metrics_and_attempts(lb, client):
    posted = False

    def enough(events):
        nonlocal posted
        if not posted:  # the stream is open: make some attempts
            client.post("/", json={"id": make_id(1)})
            posted = True
        names = [name for name, _ in events]
        return names.count("heartbeat") >= 2 and names.count("metrics") >= 3 \
            and "attempt" in names

    events = read_events(f"{lb.url}/events", enough)
    heartbeat = next(data for name, data in events if name == "heartbeat")
    assert set(heartbeat) == {"t"}
    metrics = [data for name, data in events if name == "metrics"]
    assert set(metrics[-1]) >= SNAPSHOT_KEYS and metrics[-1]["requests"] == 1
    attempt = next(data for name, data in events if name == "attempt")
    assert set(attempt) == {"run_id", "request_number", "attempt_number", "request_id",
                            "upstream", "outcome", "status", "latency_ms", "t"}
    assert (attempt["request_id"], attempt["request_number"], attempt["attempt_number"]) == \
        (make_id(1), 1, 1)


def test_the_dashboard_is_served_by_the_balancer(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
