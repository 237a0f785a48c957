"""Upstream trouble becomes outcomes: refused, hanging, rate limited, Retry-After, no store."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from banditlb.balancer.config import resolve_upstreams
from banditlb.balancer.runner import start_lb_thread
from banditlb.balancer.upstream import UpstreamClient
from banditlb.fleet.runner import start_fleet_thread
from banditlb.outcomes import Outcome
from banditlb.store import Store


@pytest.fixture
def refused_address() -> str:
    """host:port where nothing listens (a free port, closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def hanging_address() -> Iterator[str]:
    """host:port that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def post(url: str, request_id: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(url, json={"id": request_id}, timeout=timeout)


def test_refused_and_hanging_upstreams_are_outcomes_and_the_request_moves_on(
        fleet_t1, refused_address, hanging_address, tmp_path):
    best = fleet_t1.upstreams("T1")[3]  # success 0.93
    upstreams = [refused_address, hanging_address, best]
    with start_lb_thread(upstreams, strategy="round-robin", data_dir=tmp_path,
                         attempt_timeout_ms=200) as lb:
        answer = post(lb.url + "/", "a" * 24)
        assert answer.status_code in (200, 502) and answer.json()["attempts"] == 3
        servers = httpx.get(lb.url + "/stats").json()["servers"]
        flushed = httpx.post(lb.url + "/admin/flush").json()
    assert [(s["conn_errors"], s["timeouts"], s["attempts"]) for s in servers] == \
        [(1, 0, 1), (0, 1, 1), (0, 0, 1)]
    assert flushed == {"ok": True, "recording": True, "dropped": 0}
    with Store(tmp_path) as store:
        (run,) = store.runs()
        rows = store.attempts(run["id"])
    assert [(r["upstream"], r["outcome"]) for r in rows] == [
        (refused_address, "conn_error"), (hanging_address, "timeout"),
        (best, "accepted" if answer.status_code == 200 else "failed")]
    assert [r["request_complete"] for r in rows] == [False, False, True]


def test_every_upstream_refusing_is_503_not_500(tmp_path):
    addresses = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            addresses.append(f"127.0.0.1:{sock.getsockname()[1]}")
    with start_lb_thread(addresses, strategy="v4", data_dir=tmp_path, deadline_ms=2000) as lb:
        answers = [post(lb.url + "/", f"{n:024d}", timeout=2.0 + 3.0) for n in range(3)]
        stats = httpx.get(lb.url + "/stats").json()
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["status"] == "unavailable" and answer.json()["reason"]
        assert answer.headers["retry-after"] == "1"
    assert stats["unavailable"] == 3 and stats["attempts"] == \
        sum(s["conn_errors"] for s in stats["servers"])


def test_the_deadline_cuts_a_hanging_attempt_short(hanging_address, tmp_path):
    with start_lb_thread([hanging_address], strategy="v4", data_dir=tmp_path,
                         attempt_timeout_ms=30_000, deadline_ms=300) as lb:
        answer = post(lb.url + "/", "b" * 24, timeout=5.0)
        stats = httpx.get(lb.url + "/stats").json()
    assert answer.status_code == 502
    assert answer.json() == {"status": "error", "attempts": 1, "last": "timeout"}
    assert stats["servers"][0]["timeouts"] == 1 and stats["gave_up"] == 1


@pytest.mark.parametrize("strategy", ["v6", "v7", "v8"])
def test_429s_reach_the_strategy_as_rate_limited_not_as_failures(strategy, tmp_path):
    with start_fleet_thread(["T2"], seed=0) as fleet, \
            start_lb_thread(fleet.upstreams("T2"), strategy=strategy, data_dir=tmp_path) as lb, \
            httpx.Client(base_url=lb.url, timeout=10) as client:
        for n in range(60):  # far above T2's total rate limit of ~30/s
            client.post("/", json={"id": f"{strategy:x>4}{n:020d}"})
        stats = client.get("/stats").json()
    beliefs = stats["beliefs"]
    limited = [s["rate_limited"] for s in stats["servers"]]
    failed = [s["failed"] + s["timeouts"] + s["conn_errors"] for s in stats["servers"]]
    assert sum(limited) > 0 and stats["rate_limited"] == sum(limited)
    assert beliefs["rate_limited"] == limited
    assert beliefs["failures"] == failed
    assert beliefs["successes"] == [s["accepted"] for s in stats["servers"]]


def test_retry_after_of_a_429_reaches_the_attempt():
    async def until_limited(client: UpstreamClient):
        for n in range(20):
            attempt = await client.send(f"{n:024d}", 2.0, time.monotonic)
            if attempt.outcome is Outcome.RATE_LIMITED:
                return attempt
        raise AssertionError("the server never rate limited")

    with start_fleet_thread(["retry-after"], seed=0) as fleet:
        (upstream,) = resolve_upstreams(fleet.upstreams("retry-after")[5:6])  # 2/s, burst 2
        attempt = asyncio.run(until_limited(UpstreamClient(5, upstream)))
    assert attempt.status == 429 and attempt.server == 5
    assert attempt.retry_after_s is not None and attempt.retry_after_s >= 1


def test_an_unusable_data_dir_serves_without_recording(fleet_t1, tmp_path, caplog):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with start_lb_thread(fleet_t1.upstreams("T1"), strategy="v4", data_dir=not_a_dir) as lb:
        answer = post(lb.url + "/", "c" * 24)
        stats = httpx.get(lb.url + "/stats").json()
        flushed = httpx.post(lb.url + "/admin/flush").json()
    assert answer.status_code in (200, 502)
    assert stats["recording"] is False and stats["run_id"] is None
    assert flushed["recording"] is False
    assert any("NOT RECORDING" in r.getMessage() for r in caplog.records)
