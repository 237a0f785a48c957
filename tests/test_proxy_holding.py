"""Holding ids for capacity in the live balancer: waits are bounded, answered, and shown."""

from __future__ import annotations

import threading

import httpx
import pytest

from banditlb.fleet.runner import start_fleet_thread
from banditlb.proxy.runner import start_lb_process, start_lb_thread

BURST = 60
"""Ids sent at once: about twice what T2's buckets hold, so some must wait."""


@pytest.fixture
def fleet_t2():
    with start_fleet_thread(["T2"], seed=0) as fleet:
        yield fleet


NEVER_CONNECTED = "never connected"
"""What `burst` records for an id whose connection the balancer never accepted."""


def burst(url: str, tag: str, count: int = BURST) -> list[httpx.Response | str | None]:
    """`count` ids posted at once from their own threads; None for no HTTP answer on an
    accepted connection, NEVER_CONNECTED when the connection was refused."""
    answers: list[httpx.Response | str | None] = [None] * count
    start = threading.Barrier(count)

    def one(k: int) -> None:
        with httpx.Client(timeout=15) as client:
            start.wait()
            try:
                answers[k] = client.post(url, json={"id": f"{tag}{k:020d}"})
            except httpx.ConnectError:
                answers[k] = NEVER_CONNECTED
            except httpx.TransportError:
                pass
    threads = [threading.Thread(target=one, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_burst_waits_for_capacity_and_stats_and_metrics_say_so(fleet_t2, tmp_path):
    with start_lb_thread(fleet_t2.upstreams("T2"), strategy="auto", data_dir=tmp_path) as lb:
        burst(lb.url + "/", "warm")  # auto learns T2's buckets from the first 429s
        answers = burst(lb.url + "/", "hold")
        stats = httpx.get(lb.url + "/stats").json()
        metrics = httpx.get(lb.url + "/metrics").text
    assert all(isinstance(a, httpx.Response) for a in answers)
    waiting = stats["waiting"]
    assert waiting["waited"] > 0 and waiting["now"] == 0 and waiting["turned_away"] == 0
    # the wait histogram's buckets are 20 % wide: a bound just above the 5 s deadline
    assert 0 < waiting["p50_ms"] <= waiting["p99_ms"] <= 5000 * 1.2
    # no id outlives its deadline (5 s) by more than a scheduling hair
    assert max(a.elapsed.total_seconds() for a in answers) < 5.5
    assert f"banditlb_waited_requests_total {float(waiting['waited'])}" in metrics
    assert "banditlb_waiting 0.0" in metrics


def test_beyond_max_waiting_the_answer_is_503_with_a_retry_after(fleet_t2, tmp_path):
    with start_lb_thread(fleet_t2.upstreams("T2"), strategy="auto", data_dir=tmp_path,
                         max_waiting=0) as lb:
        burst(lb.url + "/", "warm")
        answers = burst(lb.url + "/", "full")
        stats = httpx.get(lb.url + "/stats").json()
    turned = [a for a in answers if isinstance(a, httpx.Response) and a.status_code == 503
              and "wait for capacity" in a.json()["reason"]]
    assert turned and stats["waiting"]["turned_away"] >= len(turned)
    assert all(int(a.headers["retry-after"]) >= 1 for a in turned)
    # with no room to wait nobody waited, and an id turned away never got to send
    assert stats["waiting"]["waited"] == 0
    assert all(a.json()["attempts"] == 0 for a in turned)


def test_sigterm_answers_the_waiting_ids_before_the_balancer_exits(fleet_t2, tmp_path):
    lb = start_lb_process(fleet_t2.upstreams("T2"), strategy="auto", data_dir=tmp_path)
    try:
        burst(lb.url + "/", "warm")
        answers: list = []
        sender = threading.Thread(target=lambda: answers.extend(burst(lb.url + "/", "term")))
        sender.start()
        with httpx.Client(timeout=5) as client:
            for _ in range(500):  # until some ids wait (bounded: 500 polls)
                waiting = client.get(lb.url + "/stats").json()["waiting"]["now"]
                if waiting > 0:
                    break
            else:
                pytest.fail("no id ever waited")
        lb.stop()  # SIGTERM while ids wait
        sender.join()
    finally:
        lb.stop()
    assert lb.process.returncode == 0
    # on a loaded machine a few threads may connect only after the listener closed: they
    # never reached the balancer; every id that did got an answer, the waiting ones too
    reached = [a for a in answers if a is not NEVER_CONNECTED]
    assert len(answers) == BURST and len(reached) >= waiting
    assert all(a is not None for a in reached)
    assert {a.status_code for a in reached} <= {200, 502, 503}
