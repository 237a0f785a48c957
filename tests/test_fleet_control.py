"""The fleet's control port: /score with the grader's parameters, /reset, /truth, /ids/{id}."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict

import pytest

from banditlb.fleet.runner import FleetHandle, start_fleet_thread


def control(fleet: FleetHandle, method: str, path: str) -> tuple[int, dict]:
    request = urllib.request.Request(fleet.control_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def make_id(n: int) -> str:
    return f"id{n:022d}"


def send(http_call, port: int, request_id: str) -> int:
    return http_call(port, "POST", "/", request_id.encode())[0]


def test_score_matches_what_the_client_saw(fleet_t1, http_call):
    ports = fleet_t1.ports["T1"]
    seen: dict[str, list[int]] = defaultdict(list)
    for n, attempts in enumerate([5, 2, 1, 4, 3, 6]):
        for k in range(attempts):
            seen[make_id(n)].append(send(http_call, ports[(n + k) % 10], make_id(n)))
    accepted = sum(200 in statuses for statuses in seen.values())
    for weight, free in [(1.0, 3), (0.5, 1), (2.0, 0)]:
        penalized = sum(max(0, len(s) - free) for s in seen.values())
        status, doc = control(fleet_t1, "GET",
                              f"/score?penalty_weight={weight}&free_attempts={free}")
        assert status == 200
        t1 = doc["scenarios"]["T1"]
        assert t1["ids_seen"] == 6
        assert t1["attempts"] == 21
        assert t1["ids_accepted"] == accepted
        assert t1["penalized_attempts"] == penalized
        assert t1["score"] == pytest.approx(accepted - weight * penalized)
        assert t1["ports"] == ports
        per_server_attempts = sum(sum(c.values()) for c in t1["per_server"].values())
        assert per_server_attempts == 21


@pytest.mark.parametrize(("query", "reason"), [
    ("penalty_weight=abc", "penalty_weight must be a number >= 0"),
    ("penalty_weight=-1", "penalty_weight must be a number >= 0"),
    ("penalty_weight=nan", "penalty_weight must be a number >= 0"),
    ("free_attempts=1.5", "free_attempts must be an integer >= 0"),
    ("free_attempts=-2", "free_attempts must be an integer >= 0"),
    ("free=3", "unknown query parameter 'free'"),
])
def test_bad_score_queries_get_400_with_the_reason(fleet_t1, query, reason):
    status, doc = control(fleet_t1, "GET", f"/score?{query}")
    assert status == 400
    assert reason in doc["error"]


def test_reset_starts_over_with_the_same_draws_for_the_same_seed(fleet_t1, http_call):
    port = fleet_t1.ports["T1"][0]
    first = [send(http_call, port, make_id(n)) for n in range(40)]
    assert control(fleet_t1, "POST", "/reset?seed=0") == (200, {"ok": True, "seed": 0})
    assert control(fleet_t1, "GET", "/score")[1]["scenarios"]["T1"]["attempts"] == 0
    assert [send(http_call, port, make_id(n)) for n in range(40)] == first
    assert control(fleet_t1, "POST", "/reset?seed=1")[1] == {"ok": True, "seed": 1}
    assert [send(http_call, port, make_id(n)) for n in range(40)] != first


def test_reset_without_seed_keeps_the_seed_and_moves_the_time_origin(fleet_t1):
    control(fleet_t1, "POST", "/reset?seed=9")
    time.sleep(0.2)
    before = control(fleet_t1, "GET", "/truth")[1]["scenarios"]["T1"]["now"]
    assert control(fleet_t1, "POST", "/reset") == (200, {"ok": True, "seed": 9})
    after = control(fleet_t1, "GET", "/truth")[1]["scenarios"]["T1"]
    assert after["seed"] == 9
    assert 0 <= after["now"] < before


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/reset", 405), ("POST", "/score", 405), ("POST", "/truth", 405),
    ("GET", "/nope", 404), ("POST", "/reset?seed=x", 400), ("DELETE", "/ids/" + "a" * 24, 405),
])
def test_control_rejects_wrong_methods_paths_and_values(fleet_t1, method, path, status):
    assert control(fleet_t1, method, path)[0] == status


def test_truth_reports_every_server(fleet_t1):
    status, doc = control(fleet_t1, "GET", "/truth")
    assert status == 200
    t1 = doc["scenarios"]["T1"]
    assert t1["seed"] == 0 and t1["now"] >= 0
    assert [s["port"] for s in t1["servers"]] == fleet_t1.ports["T1"]
    assert t1["servers"][3] == {"port": fleet_t1.ports["T1"][3], "success": 0.93,
                                "fault": None, "retry_after": False,
                                "limiter": {"kind": "none"}}


def test_truth_shows_the_moving_limits_of_t3():
    with start_fleet_thread(["T3"], seed=0) as fleet:
        servers = control(fleet, "GET", "/truth")[1]["scenarios"]["T3"]["servers"]
    assert {s["limiter"]["kind"] for s in servers} == {"moving"}
    assert all({"rate", "tokens", "collapsed", "boxed"} <= s["limiter"].keys() for s in servers)


def test_ids_reports_the_live_record_of_an_id(fleet_t1, http_call):
    request_id = make_id(1)
    statuses = [send(http_call, fleet_t1.ports["T1"][k], request_id) for k in range(3)]
    status, doc = control(fleet_t1, "GET", f"/ids/{request_id}")
    assert status == 200
    assert doc == {"id": request_id, "scenario": "T1", "attempts": 3,
                   "accepted": 200 in statuses, "known": True}
    unseen = make_id(2)
    assert control(fleet_t1, "GET", f"/ids/{unseen}")[1] == {
        "id": unseen, "scenario": None, "attempts": 0, "accepted": False, "known": False}
    assert control(fleet_t1, "GET", "/ids/short")[0] == 400


def test_ids_are_unknown_after_their_ttl(http_call):
    with start_fleet_thread(["T1"], seed=0, id_ttl_s=0.2) as fleet:
        send(http_call, fleet.ports["T1"][0], make_id(3))
        assert control(fleet, "GET", f"/ids/{make_id(3)}")[1]["known"] is True
        time.sleep(0.3)
        assert control(fleet, "GET", f"/ids/{make_id(3)}")[1]["known"] is False
        assert control(fleet, "GET", "/score")[1]["scenarios"]["T1"]["ids_seen"] == 1


def test_health(fleet_t1):
    assert control(fleet_t1, "GET", "/health") == (200, {"ok": True})
