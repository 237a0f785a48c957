"""The live fleet over sockets: same answers as the models, rate limits, Retry-After, faults."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from banditlb.fleet import http as fleet_http
from banditlb.fleet.runner import start_fleet_thread
from banditlb.fleet.scenario import load_scenario

VALID_ID = "abcDEF123456789012345xyz"


def post_many(port: int, count: int) -> list[tuple[int, dict[str, str]]]:
    """`count` POSTs of one id on one keep-alive connection: (status, headers) each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answers = []
    try:
        for _ in range(count):
            conn.request("POST", "/", body=VALID_ID.encode())
            response = conn.getresponse()
            response.read()
            answers.append((response.status, dict(response.getheaders())))
    finally:
        conn.close()
    return answers


@pytest.mark.parametrize("index", [1, 9])  # success 0.35 and 0.88
def test_live_t1_answers_are_the_models_answers(fleet_t1, index):
    live = [status for status, _ in post_many(fleet_t1.ports["T1"][index], 300)]
    model = load_scenario("T1").build(seed=0)[index]
    assert live == [model.handle(0.0).status for _ in range(300)]
    configured = load_scenario("T1").servers[index].success
    assert abs(live.count(200) / len(live) - configured) < 0.08


def test_live_t2_server_over_its_rate_answers_429_then_recovers():
    with start_fleet_thread(["T2"], seed=0) as fleet:
        port = fleet.ports["T2"][5]  # 2 requests/s, burst 2
        statuses = [status for status, _ in post_many(port, 12)]
        assert statuses[:2].count(429) == 0
        assert statuses.count(429) >= 8
        time.sleep(1.2)  # more than 2 tokens come back at 2/s
        assert [status for status, _ in post_many(port, 2)].count(429) == 0


def test_a_fleet_with_four_times_the_capacity_admits_four_times_the_burst():
    with start_fleet_thread(["T2"], seed=0, capacity_scale=4) as fleet:
        port = fleet.ports["T2"][5]  # 8 requests/s, burst 8
        statuses = [status for status, _ in post_many(port, 20)]
    assert statuses[:8].count(429) == 0 and statuses[10:].count(429) == 10


def test_retry_after_appears_only_in_the_retry_after_scenario():
    with start_fleet_thread(["T2", "retry-after"], seed=0) as fleet:
        plain = post_many(fleet.ports["T2"][5], 8)
        polite = post_many(fleet.ports["retry-after"][5], 8)
    assert any(status == 429 for status, _ in plain)
    assert all("Retry-After" not in headers for _, headers in plain)
    limited = [headers for status, headers in polite if status == 429]
    assert limited
    assert all(int(headers["Retry-After"]) >= 1 for headers in limited)
    assert all("Retry-After" not in headers for status, headers in polite if status != 429)


def test_refusing_server_does_not_listen():
    with start_fleet_thread(["faults"], seed=0) as fleet:
        refusing = fleet.ports["faults"][0]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", refusing), timeout=1).close()


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n" + VALID_ID.encode(),
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_hanging_server_reads_and_never_answers(http_call, request_bytes):
    with start_fleet_thread(["faults"], seed=0) as fleet:
        with socket.create_connection(("127.0.0.1", fleet.ports["faults"][1]),
                                      timeout=0.3) as sock:
            sock.sendall(request_bytes)
            with pytest.raises(TimeoutError):
                sock.recv(1024)
        control_port = int(fleet.control_url.rsplit(":", 1)[1])
        _, _, body = http_call(control_port, "GET", f"/ids/{VALID_ID}")
    assert b'"known":false' in body  # a hang never answers, so nothing is scored


def test_hung_connections_are_closed_by_the_cap_and_by_stop(monkeypatch):
    monkeypatch.setattr(fleet_http, "HANG_CAP_S", 0.2)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with start_fleet_thread(["faults"], seed=0) as fleet:
        with socket.create_connection(("127.0.0.1", fleet.ports["faults"][1]),
                                      timeout=5) as capped:
            capped.sendall(request)
            assert capped.recv(1024) == b""  # closed after the cap, no answer
        monkeypatch.setattr(fleet_http, "HANG_CAP_S", 300.0)
        held = socket.create_connection(("127.0.0.1", fleet.ports["faults"][1]), timeout=5)
        held.sendall(request)
        time.sleep(0.1)
    with held:
        assert held.recv(1024) == b""  # the fleet stopped: connection closed


def test_other_faults_scenario_servers_answer(http_call):
    with start_fleet_thread(["faults"], seed=0) as fleet:
        assert http_call(fleet.ports["faults"][3], "GET", "/health")[0] == 200
