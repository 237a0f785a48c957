"""Holding ids for capacity in the live balancer: waits are bounded, answered, and shown."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest

from banditlb.balancer.runner import start_lb_process, start_lb_thread
from banditlb.fleet.runner import start_fleet_thread

BURST = 60
"""Ids sent at once: about twice what T2's buckets hold, so some must wait."""


@pytest.fixture
def fleet_t2():
    with start_fleet_thread(["T2"], seed=0) as fleet:
        yield fleet


def burst(url: str, tag: str, count: int = BURST) -> list[httpx.Response | None]:
    """`count` ids posted at once from their own threads; None for an id with no answer."""
    answers: list[httpx.Response | None] = [None] * count
    start = threading.Barrier(count)

    def one(k: int) -> None:
        with httpx.Client(timeout=15) as client:
            start.wait()
            with contextlib.suppress(httpx.TransportError):
                answers[k] = client.post(url, json={"id": f"{tag}{k:020d}"})
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
    assert f'banditlb_waited_requests_total{{pool="default"}} {float(waiting["waited"])}' in metrics
    assert 'banditlb_waiting{pool="default"} 0.0' in metrics


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
        with httpx.Client(timeout=5) as client:
            before = client.get(lb.url + "/stats").json()["requests"]
            sender.start()
            for _ in range(2000):  # bounded: 2000 polls
                stats = client.get(lb.url + "/stats").json()
                answered, waiting = stats["requests"] - before, stats["waiting"]["now"]
                # answered + waiting = BURST: every id has reached the balancer, some wait
                if waiting > 0 and answered + waiting == BURST:
                    break
            else:
                pytest.fail("never saw the whole burst received with some ids waiting")
        lb.stop()  # SIGTERM while ids wait
        sender.join()
    finally:
        lb.stop()
    assert lb.process.returncode == 0
    # every id had reached the balancer before SIGTERM, so every one gets an answer
    assert len(answers) == BURST and all(isinstance(a, httpx.Response) for a in answers)
    assert {a.status_code for a in answers} <= {200, 502, 503}
