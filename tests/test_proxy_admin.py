"""Admin endpoints: the token rule live, strategy switches and runs in the store, reset, flush."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from banditlb.balancer.runner import LbHandle, start_lb_thread
from banditlb.store import Store


def make_id(n: int) -> str:
    return f"adm{n:021d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lb(fleet_t1, tmp_path) -> Iterator[LbHandle]:
    with start_lb_thread(fleet_t1.upstreams("T1"), strategy="v4", data_dir=tmp_path,
                         scenario="T1") as handle:
        yield handle


@pytest.fixture
def client(lb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lb.url, timeout=10) as c:
        yield c


def send(client: httpx.Client, first: int, count: int) -> None:
    for n in range(first, first + count):
        assert client.post("/", json={"id": make_id(n)}).status_code in (200, 502)


def test_off_loopback_the_admin_token_is_required(fleet_t1, tmp_path):
    port = free_port()
    with start_lb_thread(fleet_t1.upstreams("T1"), data_dir=tmp_path, host="0.0.0.0",
                         port=port, admin_token="s3cret") as lb:
        url = f"http://127.0.0.1:{port}/admin/reset"
        assert lb.url == f"http://127.0.0.1:{port}"
        missing = httpx.post(url)
        wrong = httpx.post(url, headers={"Authorization": "Bearer nope"})
        right = httpx.post(url, headers={"Authorization": "Bearer s3cret"})
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    assert missing.status_code == wrong.status_code == 401
    assert "Authorization: Bearer" in missing.json()["error"]
    assert right.status_code == 200 and right.json()["ok"] is True


def test_off_loopback_without_a_token_admin_is_disabled(fleet_t1, tmp_path):
    port = free_port()
    with start_lb_thread(fleet_t1.upstreams("T1"), data_dir=tmp_path, host="0.0.0.0",
                         port=port) as lb:
        answer = httpx.post(f"{lb.url}/admin/flush", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401 and "--admin-token" in answer.json()["error"]


def test_switching_strategy_ends_the_run_and_starts_a_fresh_one(fleet_t1, client, tmp_path):
    send(client, 0, 10)
    first = client.get("/stats").json()
    t2 = [f"127.0.0.1:{p}" for p in fleet_t1.ports["T1"][:5]]
    answer = client.post("/admin/strategy", json={
        "strategy": "ucb", "params": {"c": 1.5}, "upstreams": t2, "scenario": "half-T1",
        "seed": 7})
    assert answer.status_code == 200
    switched = answer.json()
    assert switched["ok"] and switched["strategy"] == "v2" and switched["upstreams"] == t2
    assert switched["run_id"] != first["run_id"]
    fresh = client.get("/stats").json()
    assert (fresh["requests"], fresh["attempts"], fresh["run_id"]) == (0, 0, switched["run_id"])
    assert (fresh["strategy"], fresh["alias"], fresh["scenario"]) == ("v2", "ucb", "half-T1")
    assert fresh["params"]["c"] == 1.5 and len(fresh["servers"]) == 5
    send(client, 10, 5)
    assert client.post("/admin/flush").json() == {"ok": True, "recording": True, "dropped": 0}
    with Store(tmp_path) as store:
        old, new = store.runs()
        old_rows, new_rows = store.attempts(old["id"]), store.attempts(new["id"])
    assert (old["strategy"], old["scenario"], old["source"]) == ("v4", "T1", "lb")
    assert old["ended_at"] is not None and old["summary"]["requests"] == 10
    assert (new["strategy"], new["scenario"], new["seed"], new["ended_at"]) == \
        ("v2", "half-T1", 7, None)
    assert new["session_id"] == old["session_id"] and new["params"]["c"] == 1.5
    assert len(old_rows) == first["attempts"]
    assert {r["request_number"] for r in new_rows} == set(range(1, 6))
    assert {r["upstream"] for r in new_rows} <= set(t2)


def test_a_switch_can_record_into_a_run_the_caller_created(client, tmp_path):
    with Store(tmp_path) as store:
        session = store.create_session("bench")
        run_id = store.create_run(session, "v5", "T1", {}, 3, "harness")
    answer = client.post("/admin/strategy", json={"strategy": "v5", "run_id": run_id,
                                                  "seed": 3}).json()
    assert answer["run_id"] == run_id
    send(client, 0, 3)
    client.post("/admin/flush")
    with Store(tmp_path) as store:
        assert {r["run_id"] for r in store.attempts(run_id)} == {run_id}
        assert store.run(run_id)["source"] == "harness"
        assert len(store.runs()) == 2  # the balancer's first run and the caller's


def test_a_switch_can_name_the_session(client, tmp_path):
    run_id = client.post("/admin/strategy", json={"strategy": "v4", "session": "night"}
                         ).json()["run_id"]
    with Store(tmp_path) as store:
        assert store.run(run_id)["session_name"] == "night"


@pytest.mark.parametrize(("body", "reason"), [
    ({"strategy": "nope"}, "valid names"),
    ({"strategy": "oracle"}, "only in the simulator"),
    ({"strategy": "v4", "params": {"nope": 1}}, "has no parameter nope"),
    ({"strategy": "v4", "colour": "red"}, "unknown field(s) colour"),
    ({"strategy": "v4", "upstreams": ["127.0.0.1"]}, "expected host:port"),
    ({"strategy": "v4", "upstreams": [4000]}, "list of"),
    ({"strategy": "v4", "upstreams": ["no-such-host.invalid:80"]}, "does not resolve"),
    ({"strategy": "v4", "run_id": 999}, "run 999 does not exist"),
    ({"strategy": "v4", "seed": "7"}, "seed must be int"),
    ({"params": {}}, '"strategy"'),
    ({"strategy": "v4", "run_id": 2**63}, "run_id must fit in 64 bits"),
    ({"strategy": "v4", "seed": 2**64}, "seed must fit in 64 bits"),
    ({"strategy": "v7", "params": {"window": 10**30}}, "out of range"),
    ({"strategy": "v4", "scenario": "\ud800"}, "valid Unicode"),
    ({"strategy": "v4", "params": {"\ud800": 1}}, "valid Unicode"),
])
def test_bad_switches_are_400_and_change_nothing(client, body, reason):
    before = client.get("/stats").json()
    answer = client.post("/admin/strategy", content=json.dumps(body).encode(),
                         headers={"content-type": "application/json"})  # \ud800 escaped
    assert answer.status_code == 400 and reason in answer.json()["error"]
    after = client.get("/stats").json()
    assert (after["strategy"], after["run_id"]) == (before["strategy"], before["run_id"])


def test_reset_forgets_what_was_learned_but_keeps_the_run(client):
    send(client, 0, 10)
    before = client.get("/stats").json()
    assert sum(before["beliefs"]["successes"]) > 0
    answer = client.post("/admin/reset").json()
    after = client.get("/stats").json()
    assert answer["ok"] and answer["run_id"] == before["run_id"]
    assert sum(after["beliefs"]["successes"]) == 0 and after["requests"] == before["requests"]
