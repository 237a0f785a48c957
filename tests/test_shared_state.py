"""Replicas that learn together through a real redis-server (each test starts its own)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import httpx
import pytest

from banditlb.admission.pacing import Pacing
from banditlb.balancer import config_file
from banditlb.balancer.runner import start_lb_thread
from banditlb.outcomes import ACCEPTED, RATE_LIMITED, Outcome
from banditlb.quota import Quota
from banditlb.shared import evidence
from banditlb.shared.config import SharedConfig
from banditlb.shared.evidence import Evidence, MalformedEvidence
from banditlb.strategies import make_strategy
from redis_server import RedisServer, redis_server
from upstreams import FixedStatus, serve

SYNC_MS = 20.0
SLACK_S = 0.5
"""Scheduling slack on a loaded 2-core machine, beyond sync_ms."""


def replica(upstreams: list[str], tmp_path, name: str, url: str, **options):
    return start_lb_thread(upstreams, data_dir=tmp_path / name,
                           shared=SharedConfig(url, "test", SYNC_MS), **options)


def shared_view(handle) -> dict:
    return httpx.get(handle.admin_url + "/stats").json()["shared"]


def wait_for(predicate, timeout_s: float) -> float | None:
    """Seconds until predicate() held, or None if it never did within timeout_s."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.002)
    return None


def test_a_429_seen_by_one_replica_keeps_the_other_off_that_upstream(tmp_path):
    limited, good = FixedStatus(429), FixedStatus(200)
    with redis_server() as redis, serve(limited) as p_limited, serve(good) as p_good:
        upstreams = [f"http://127.0.0.1:{p_limited}", f"http://127.0.0.1:{p_good}"]
        with replica(upstreams, tmp_path, "a", redis.url) as a, \
                replica(upstreams, tmp_path, "b", redis.url) as b, httpx.Client() as client:
            assert wait_for(lambda: shared_view(a)["replicas"] == 2, 5) is not None
            for _ in range(50):  # until a's strategy tries the limited upstream once
                assert client.get(a.url + "/x").status_code == 200
                if limited.answers:
                    break
            assert limited.answers == 1

            def b_blocked() -> bool:
                beliefs = client.get(b.admin_url + "/stats").json()["beliefs"]
                return beliefs["blocked_until"][0] is not None

            took = wait_for(b_blocked, SYNC_MS / 1000 + SLACK_S)
            assert took is not None, "b never learned a's Retry-After"
            codes = [client.get(b.url + "/y").status_code for _ in range(40)]
            view = shared_view(b)
    assert codes == [200] * 40
    assert limited.answers == 1  # b never sent it one: a's Retry-After (30 s) holds there
    assert view["connected"] and view["errors"] == 0 and view["applied"] >= 2


def test_redis_killed_mid_run_fails_no_request_and_sharing_resumes(tmp_path):
    good_a, good_b = FixedStatus(200), FixedStatus(200)
    with redis_server() as redis, serve(good_a) as pa, serve(good_b) as pb:
        upstreams = [f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{pb}"]
        with replica(upstreams, tmp_path, "a", redis.url) as a, \
                replica(upstreams, tmp_path, "b", redis.url) as b:
            statuses: list[int] = []
            stop = threading.Event()

            def load() -> None:  # both replicas, all along, ~100 requests/s
                with httpx.Client(timeout=10) as client:
                    k = 0
                    while not stop.is_set():
                        target = (a, b)[k % 2]
                        k += 1
                        try:
                            statuses.append(client.get(target.url + f"/{k}").status_code)
                        except httpx.HTTPError:
                            statuses.append(-1)
                        time.sleep(0.01)

            assert wait_for(lambda: shared_view(b)["replicas"] == 2, 5) is not None
            loader = threading.Thread(target=load)
            loader.start()
            try:
                time.sleep(0.5)
                applied_before = shared_view(b)["applied"]
                assert applied_before > 0
                redis.stop()
                assert wait_for(lambda: not shared_view(a)["connected"], 5) is not None
                time.sleep(1.0)  # serving on local state meanwhile
                during = len(statuses)
                down = shared_view(b)
                restarted = RedisServer(redis.port).start()
                try:
                    resumed = wait_for(lambda: shared_view(b)["connected"]
                                       and shared_view(b)["applied"] > down["applied"], 15)
                    time.sleep(0.3)
                    after = shared_view(b)
                finally:
                    stop.set()
                    loader.join(10)
                    restarted.stop()
            finally:
                stop.set()
                loader.join(10)
    assert during > 50 and len(statuses) > during
    assert set(statuses) == {200}, "a request failed because of Redis"
    assert down["errors"] >= 1
    assert resumed is not None, "sharing did not resume after Redis came back"
    assert after["replicas"] == 2 and after["applied"] > down["applied"]


def test_redis_absent_from_the_start_still_serves(tmp_path):
    good = FixedStatus(200)
    with serve(good) as port:
        nobody = RedisServer()  # a free port nobody listens on
        with replica([f"http://127.0.0.1:{port}"], tmp_path, "a", nobody.url) as a:
            codes = [httpx.get(a.url + "/z").status_code for _ in range(20)]
            view = shared_view(a)
            metrics = httpx.get(a.admin_url + "/metrics").text
    assert codes == [200] * 20
    assert not view["connected"] and view["errors"] >= 1 and view["outbox"] > 0
    assert 'banditlb_shared_connected{pool="test"} 0.0' in metrics
    assert 'banditlb_shared_replicas{pool="test"} 1.0' in metrics


def test_evidence_round_trips_and_anything_else_is_refused():
    batch = [evidence.sent("http://a", 1.5),
             Evidence(evidence.ANSWERED, "http://b", 2.25, RATE_LIMITED, 0.01, 3.0,
                      Quota(10, 0, 4.5), True, True),
             Evidence(evidence.ANSWERED, "http://b", 2.5, ACCEPTED, 0.002)]
    assert evidence.decode(evidence.encode(batch)) == batch
    for bad in (b"{", b'[["x", "a", 1]]', b'[["a", "b", "nan", "accepted", 0, null, null, 1, 0]]',
                b'[["a", "b", 1, "exploded", 0, null, null, 1, 0]]', b'[["s", "a"]]'):
        with pytest.raises(MalformedEvidence):
            evidence.decode(bad)


def test_evidence_from_elsewhere_paces_and_blocks_as_if_it_were_ours():
    strategy = make_strategy("auto", 2, seed=0)
    pacing: Pacing = strategy.admission
    now = 100.0
    # another replica's refusal 0.4 s ago with Retry-After 2: blocked until 101.6 here
    refusal = Evidence(evidence.ANSWERED, "x", 0.0, RATE_LIMITED, 0.01, 2.0)
    evidence.apply(strategy, 0, refusal, now, age_s=0.4)
    assert math.isclose(pacing.blocked_until[0], 101.6)
    assert 0 not in pacing.ready(now, True) and pacing.next_admit(0, now, True) >= 101.6
    # its sends take tokens from our copy of the bucket, not from what is in flight here
    tokens = pacing._tokens(0, 110.0)
    evidence.apply(strategy, 0, evidence.sent("x", 0.0), 110.0, age_s=0.0)
    assert pacing._tokens(0, 110.0) == pytest.approx(max(0.0, tokens - 1.0))
    assert pacing.flight.count[0] == 0
    # quality: the chooser counts its accepted and failed answers
    before = strategy.chooser.quality(1, now)
    for _ in range(20):
        evidence.apply(strategy, 1, Evidence(evidence.ANSWERED, "y", 0.0, Outcome.FAILED,
                                             0.01), now, age_s=0.0)
    assert strategy.chooser.quality(1, now) < before - 0.3
    # a refusal crowded by that replica's own attempts says nothing of the rate
    rate = pacing.rate[1]
    evidence.apply(strategy, 1, refusal._replace(crowded=True), now, age_s=0.0)
    assert pacing.rate[1] == rate
    # evidence that comes too late still counts for quality, no longer for capacity
    blocked = pacing.blocked_until[1]
    evidence.apply(strategy, 1, refusal, now, age_s=evidence.STALE_S + 1)
    assert pacing.blocked_until[1] == blocked


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "expected redis://"),
    ("redis://:secret@127.0.0.1:6379", "BANDITLB_REDIS_PASSWORD"),
])
def test_shared_state_urls_are_checked(url, message):
    with pytest.raises(ValueError, match=message):
        SharedConfig(url)


def test_the_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BANDITLB_REDIS_PASSWORD", "s3cret")
    assert SharedConfig("redis://127.0.0.1:1").with_password_from_env().password == "s3cret"
    assert SharedConfig("redis://127.0.0.1:1", password="file").with_password_from_env(
    ).password == "file"


def test_lb_refuses_a_password_on_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "banditlb", "lb", "--upstreams",
                           "http://127.0.0.1:9", "--shared-state", "redis://:pw@127.0.0.1:9",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "BANDITLB_REDIS_PASSWORD" in done.stderr


def test_config_file_shared_state_is_checked_with_key_and_line(tmp_path):
    path = tmp_path / "banditlb.toml"
    path.write_text('[[pools]]\nname = "api"\nupstreams = ["http://127.0.0.1:9"]\n\n'
                    '[shared_state]\nurl = "redis://127.0.0.1:6379"\nsync_ms = 0.1\n'
                    'colour = "blue"\n')
    problems = config_file.check(path).problems
    assert {(p.key, p.line) for p in problems} >= {("shared_state.sync_ms", 7),
                                                   ("shared_state.colour", 8)}
    path.write_text(path.read_text().replace("sync_ms = 0.1\ncolour = \"blue\"\n",
                                             'password = "from-file"\n'))
    lb = config_file.load(path)
    assert (lb.shared.url, lb.shared.pool, lb.shared.password) == (
        "redis://127.0.0.1:6379", "api", "from-file")
