"""Several pools on one listener, chosen per request by path prefix and Host (config
file routes), in front of real upstream servers."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from banditlb.balancer import config_file
from banditlb.fleet.scenario import load_scenario
from lb_from_file import lb_from_file
from upstreams import Upstream, serve


def two_pools(a: str, b: str, c: str) -> str:
    return f"""
[listen]
port = 0
admin_port = 0

[[pools]]
name = "api"
upstreams = ["{a}", "{b}"]

[[pools]]
name = "files"
upstreams = ["{c}"]
strategy = "round-robin"

[[routes]]
pool = "files"
host = "files.local"

[[routes]]
pool = "api"
path_prefix = "/api/"
"""


@pytest.fixture
def running(tmp_path):
    ups = [Upstream(n) for n in "abc"]
    with serve(ups[0]) as pa, serve(ups[1]) as pb, serve(ups[2]) as pc:
        path = tmp_path / "banditlb.toml"
        path.write_text(two_pools(*(f"http://127.0.0.1:{p}" for p in (pa, pb, pc))))
        with lb_from_file(path, tmp_path / "data") as lb:
            yield {"url": lb.url, "admin": lb.admin, "path": path}
    assert lb.child.returncode == 0


def test_routes_send_each_request_to_its_pool(running):
    url, admin = running["url"], running["admin"]
    with httpx.Client() as client:
        api = [client.get(f"{url}/api/item/{k}").json()["upstream"] for k in range(20)]
        files = [client.get(f"{url}/api/also", headers={"Host": "files.local"}).json()
                 ["upstream"] for _ in range(5)]  # the Host route comes first
        nowhere = client.get(f"{url}/elsewhere")
        stats = client.get(f"{admin}/stats").json()
        files_stats = client.get(f"{admin}/stats", params={"pool": "files"}).json()
        unknown = client.get(f"{admin}/stats", params={"pool": "nope"})
        metrics = client.get(f"{admin}/metrics").text
    assert set(api) <= {"a", "b"} and files == ["c"] * 5
    assert nowhere.status_code == 404 and "no route" in nowhere.json()["error"]
    assert stats["pool"] == "api" and stats["requests"] == 20
    assert [p["name"] for p in stats["pools"]] == ["api", "files"]
    assert stats["pools"][1]["routes"] == [{"path_prefix": "/", "host": "files.local"}]
    assert files_stats["pool"] == "files" and files_stats["requests"] == 5
    assert files_stats["strategy"] == "round-robin"
    assert unknown.status_code == 404 and "api, files" in unknown.json()["error"]
    requests = {(s.labels["pool"], s.labels["result"]): s.value
                for f in text_string_to_metric_families(metrics) if f.name == "banditlb_requests"
                for s in f.samples}
    assert requests[("api", "ok")] == 20 and requests[("files", "ok")] == 5


def test_the_admin_api_acts_on_the_pool_it_names(running):
    admin = running["admin"]
    switched = httpx.post(f"{admin}/admin/strategy", params={"pool": "files"},
                          json={"strategy": "random"})
    assert switched.status_code == 200, switched.text
    assert httpx.get(f"{admin}/stats", params={"pool": "files"}).json()["strategy"] == "random"
    assert httpx.get(f"{admin}/stats").json()["strategy"] == "auto"
    assert httpx.post(f"{admin}/admin/reset", params={"pool": "x"}).status_code == 404


def test_a_reload_that_adds_a_pool_needs_a_restart(running):
    path = running["path"]
    path.write_text(path.read_text().replace('name = "files"', 'name = "other"')
                    .replace('pool = "files"', 'pool = "other"'))
    refused = httpx.post(f"{running['admin']}/admin/reload")
    assert refused.status_code == 400 and "the pools changed" in refused.json()["error"]
    assert httpx.get(f"{running['url']}/x", headers={"Host": "files.local"}).status_code == 200


@pytest.mark.parametrize("edit, key, message", [
    (lambda t: t.split("[[routes]]")[0], "routes", "several pools need [[routes]]"),
    (lambda t: t.replace('name = "files"', 'name = "api"'), "pools[1].name", "used twice"),
    (lambda t: t.replace('pool = "files"', 'pool = "fils"'), "routes[0].pool",
     "one of: api, files"),
    (lambda t: t.replace('path_prefix = "/api/"', 'path_prefix = "api"'), "routes[1].path_prefix",
     "must start with /"),
    (lambda t: t.replace('strategy = "round-robin"', 'contract = "challenge"'),
     "pools[1].contract", "only http-contract pools"),
])
def test_pool_and_route_mistakes_are_reported_with_key_and_line(tmp_path, edit, key, message):
    path = tmp_path / "banditlb.toml"
    path.write_text(edit(two_pools("http://127.0.0.1:9", "http://127.0.0.1:10",
                                   "http://127.0.0.1:11")))
    problems = config_file.check(path).problems
    # a missing table has no line; a key that is there is named with its line
    assert any(p.key == key and message in p.message and (p.line or key == "routes")
               for p in problems), problems


def test_a_flaky_pool_behind_a_route_is_learned_as_in_challenge_mode(fleet_t1, tmp_path):
    """T1's servers as the pool of a Host route, beside another pool: learned as the
    challenge contract learns them (tests/test_proxy_http.py holds the same bar)."""
    names = fleet_t1.upstreams("T1")
    rates = [s.success for s in load_scenario("T1").servers]
    best = sorted(range(len(rates)), key=lambda i: -rates[i])[:3]
    other = Upstream("other")
    with serve(other) as port:
        path = tmp_path / "banditlb.toml"
        listed = ", ".join(f'"http://{n}"' for n in names)
        path.write_text(f"""
[listen]
port = 0
admin_port = 0
[[pools]]
name = "other"
upstreams = ["http://127.0.0.1:{port}"]
[[pools]]
name = "flaky"
upstreams = [{listed}]
retry_budget = "off"
[pools.forwarding]
retry_unsafe = true
[[routes]]
pool = "flaky"
host = "ids.local"
[[routes]]
pool = "other"
""")
        with lb_from_file(path, tmp_path / "data") as lb, httpx.Client() as client:
            answers = [client.post(lb.url + "/", json={"id": f"rout{k:020d}"},
                                   headers={"Host": "ids.local"}) for k in range(300)]
            servers = client.get(lb.admin + "/stats", params={"pool": "flaky"}).json()[
                "servers"]
    accepted = sum(a.status_code == 200 for a in answers) / len(answers)
    attempts = [s["attempts"] for s in servers]
    assert accepted >= 0.97 and sum(attempts[i] for i in best) / sum(attempts) >= 0.6
    assert other.answers == 0
