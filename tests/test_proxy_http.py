"""The http contract against real upstream servers: any request forwarded, answers
streamed, retries only while nothing reached the client, TLS verified, upgrades refused."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
import trustme

from banditlb.balancer.config import Forwarding
from banditlb.balancer.runner import start_lb_thread
from banditlb.fleet.scenario import load_scenario
from upstreams import Upstream, serve, until_close_server


def lb(upstreams: list[str], tmp_path, **options):
    return start_lb_thread(upstreams, strategy="auto", data_dir=tmp_path, **options)


def sent_headers(doc: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in doc["headers"]:
        out.setdefault(name, []).append(value)
    return out


@pytest.fixture
def pair():
    a, b = Upstream("a"), Upstream("b")
    with serve(a) as port_a, serve(b) as port_b:
        yield (a, port_a), (b, port_b)


def test_any_method_path_query_header_and_body_reach_the_upstream(pair, tmp_path):
    (a, port), _ = pair
    with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy:
        answer = httpx.request(
            "PATCH", proxy.url + "/some/path%2Fencoded?x=1&y=%20", content=b"payload bytes",
            headers={"X-Custom": "kept", "Connection": "keep-alive, X-Hop",
                     "X-Hop": "dropped", "TE": "trailers", "Idempotency-Key": "k1"})
    assert answer.status_code == 200
    doc = answer.json()
    seen = sent_headers(doc)
    assert (doc["method"], doc["query"], doc["body_head"]) == ("PATCH", "x=1&y=%20",
                                                             "payload bytes")
    assert doc["path"] == "/some/path/encoded"  # uvicorn decodes; the raw path went as sent
    assert seen["x-custom"] == ["kept"] and "x-hop" not in seen and "te" not in seen
    assert seen["host"] == [f"127.0.0.1:{port}"]  # the upstream's Host by default
    assert seen["x-forwarded-for"] == ["127.0.0.1"] and seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [proxy.url.removeprefix("http://")]
    assert seen["via"] == ["1.1 banditlb"]
    # the answer's hop-by-hop fields are dropped too, and Via added
    assert "x-upstream-hop" not in answer.headers and answer.headers["via"] == "1.1 banditlb"


def test_forwarded_fields_can_be_turned_off_and_the_client_host_kept(pair, tmp_path):
    (a, port), _ = pair
    forwarding = Forwarding(forwarded=(), host_header="client")
    with lb([f"http://127.0.0.1:{port}"], tmp_path, forwarding=forwarding) as proxy:
        doc = httpx.get(proxy.url + "/", headers={"Host": "api.example"}).json()
    seen = sent_headers(doc)
    assert seen["host"] == ["api.example"]
    assert not {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via"} & set(seen)


def test_an_event_reaches_the_client_before_the_next_one_is_written(pair, tmp_path):
    (a, port), _ = pair
    with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy, \
            httpx.stream("GET", proxy.url + "/events", timeout=10) as answer:
        chunks = answer.iter_raw()
        first = next(chunks)
        assert first == b"data: one\n\n"
        assert not a.release_second_event.is_set()  # the upstream still holds event two
        a.release_second_event.set()
        assert b"".join(chunks) == b"data: two\n\n"
        assert answer.headers["content-type"] == "text/event-stream"


def test_an_answer_read_until_the_close_is_passed_on_whole(tmp_path):
    body = b"x" * 300_000
    with until_close_server(body) as port, lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy:
        answer = httpx.get(proxy.url + "/anything", timeout=10)
    assert answer.status_code == 200 and answer.content == body


def test_keep_alive_on_both_sides(pair, tmp_path):
    (a, port), _ = pair
    with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy, httpx.Client() as client:
        answers = [client.get(proxy.url + f"/n/{k}") for k in range(5)]
        # the client's own end of each connection: one port means one connection, kept
        local_ports = {r.extensions["network_stream"].get_extra_info("client_addr")[1]
                       for r in answers}
    # and the balancer reused one upstream connection for the five sequential requests
    assert len({r.json()["client_port"] for r in answers}) == 1 and len(local_ports) == 1


def test_a_failed_get_is_retried_elsewhere_and_the_client_sees_only_the_good_answer(
        pair, tmp_path):
    (a, port_a), (b, port_b) = pair
    bad = Upstream("bad")

    async def always_500(scope, receive, send):
        if scope["type"] == "http":
            bad.answers += 1
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"broken"})

    with serve(always_500) as port_bad, \
            lb([f"http://127.0.0.1:{port_bad}", f"http://127.0.0.1:{port_a}"],
               tmp_path) as proxy:
        answers = [httpx.get(proxy.url + f"/item/{k}") for k in range(20)]
        stats = httpx.get(proxy.admin_url + "/stats").json()
    assert all(r.status_code == 200 and r.json()["upstream"] == "a" for r in answers)
    assert bad.answers >= 1  # it was tried, and its 500 never reached a client
    assert stats["servers"][0]["failed"] == bad.answers


def test_post_is_sent_once_unless_it_carries_an_idempotency_key(tmp_path):
    failing = Upstream("failing")

    async def app(scope, receive, send):
        if scope["type"] == "http":
            failing.answers += 1
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"bad gateway upstream"})

    with serve(app) as port, lb([f"http://127.0.0.1:{port}"], tmp_path,
                                max_attempts=3) as proxy:
        once = httpx.post(proxy.url + "/pay", content=b"{}")
        after_once = failing.answers
        keyed = httpx.post(proxy.url + "/pay", content=b"{}",
                           headers={"Idempotency-Key": "abc"})
    # the upstream's own answer is passed on (no byte of it went out before the end)
    assert once.status_code == 502 and once.content == b"bad gateway upstream"
    assert after_once == 1
    assert keyed.status_code == 502 and failing.answers - after_once > 1


def test_a_client_error_is_passed_on_without_a_retry(pair, tmp_path):
    (a, port_a), (b, port_b) = pair
    with lb([f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"], tmp_path) as proxy:
        answer = httpx.get(proxy.url + "/status/404")
        stats = httpx.get(proxy.admin_url + "/stats").json()
    assert answer.status_code == 404 and a.answers + b.answers == 1
    assert stats["attempts"] == 1


def test_a_body_larger_than_max_retry_body_streams_through_once(pair, tmp_path):
    (a, port), _ = pair
    big = bytes(range(256)) * 4096  # 1 MiB
    forwarding = Forwarding(max_retry_body=1024)
    with lb([f"http://127.0.0.1:{port}"], tmp_path, forwarding=forwarding) as proxy:
        doc = httpx.put(proxy.url + "/upload", content=iter([big[:5000], big[5000:]]),
                        timeout=20).json()
    assert doc["body_bytes"] == len(big) and a.answers == 1


def test_control_endpoints_live_on_the_admin_port_and_every_proxy_path_is_forwarded(
        pair, tmp_path):
    (a, port), _ = pair
    with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy:
        forwarded = httpx.get(proxy.url + "/stats").json()
        stats = httpx.get(proxy.admin_url + "/stats").json()
        metrics = httpx.get(proxy.admin_url + "/metrics").text
    assert forwarded["upstream"] == "a" and forwarded["path"] == "/stats"
    assert stats["requests"] == 1 and "banditlb_attempts_total" in metrics


def test_websocket_upgrade_and_connect_are_refused_with_501(pair, tmp_path):
    (a, port), _ = pair
    with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy:
        ws = httpx.get(proxy.url + "/ws", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        host, port_lb = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port_lb)), timeout=5) as raw:
            raw.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            head = raw.recv(4096)
    assert ws.status_code == 501 and "not proxied" in ws.json()["error"]
    assert head.startswith(b"HTTP/1.1 501")
    assert a.answers == 0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_https_upstreams_are_verified_against_the_ca_bundle(ca, tmp_path):
    cert = ca.issue_cert("localhost")
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    cert.private_key_pem.write_to_path(key)
    cert.cert_chain_pems[0].write_to_path(chain)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(bundle)
    app = Upstream("tls")
    with serve(app, ssl_keyfile=str(key), ssl_certfile=str(chain)) as port:
        url = f"https://localhost:{port}"
        with lb([url], tmp_path / "ok", forwarding=Forwarding(ca_bundle=bundle)) as proxy:
            good = httpx.get(proxy.url + "/secure")
        with lb([url], tmp_path / "default") as proxy:  # the system CAs do not know it
            refused = httpx.get(proxy.url + "/secure")
    assert good.status_code == 200 and good.json()["upstream"] == "tls"
    assert sent_headers(good.json())["host"] == [f"localhost:{port}"]  # SNI and Host by name
    assert refused.status_code in (502, 503) and app.answers == 1


def test_the_retry_budget_keeps_a_fleet_wide_outage_from_multiplying_the_load(tmp_path):
    down = Upstream("down")

    async def app(scope, receive, send):
        if scope["type"] == "http":
            down.answers += 1
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"down"})

    with serve(app) as p1, serve(app) as p2, \
            lb([f"http://127.0.0.1:{p1}", f"http://127.0.0.1:{p2}"], tmp_path,
               max_attempts=10, retry_budget="20", retry_budget_min=5) as proxy, \
            httpx.Client() as client:
        answers = [client.get(proxy.url + f"/r/{k}") for k in range(50)]
        stats = client.get(proxy.admin_url + "/stats").json()
        metrics = client.get(proxy.admin_url + "/metrics").text
    assert all(a.status_code == 503 and a.content == b"down" for a in answers)
    # 50 first attempts, and retries within max(5, 20% of the 50 requests) = 10
    assert 50 < down.answers <= 60 and stats["attempts"] == down.answers
    assert stats["retry_budget"]["denied"] >= 40
    denied = float(stats["retry_budget"]["denied"])
    assert f'banditlb_retries_denied_total{{pool="default"}} {denied}' in metrics


def test_the_access_log_has_one_json_line_per_request_within_a_second(pair, tmp_path):
    (a, port), _ = pair
    log = tmp_path / "access.jsonl"
    with lb([f"http://127.0.0.1:{port}"], tmp_path, access_log=log) as proxy:
        httpx.get(proxy.url + "/one?q=1")
        httpx.post(proxy.url + "/status/404", content=b"x")
        deadline = time.monotonic() + 5
        while len(log.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # flushed within a second, while the proxy still runs
        lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(d["request_method"], d["request_uri"], d["status"]) for d in lines] == [
        ("GET", "/one?q=1", 200), ("POST", "/status/404", 404)]
    assert all(d["upstream_addr"] == f"http://127.0.0.1:{port}" and d["attempts"] == 1
               and d["remote_addr"] == "127.0.0.1" and d["request_time"] >= 0
               and d["body_bytes_sent"] > 100 and d["time"].endswith("+00:00")
               for d in lines)
    assert [d["upstream_status"] for d in lines] == ["200", "404"]


def test_a_flaky_pool_behind_the_http_contract_is_learned_as_in_challenge_mode(fleet_t1,
                                                                              tmp_path):
    """T1's servers (success 0.3-0.93) as URL upstreams: ids are POSTed with the http
    contract (retried: --retry-unsafe) and the challenge contract, the same count each."""
    names = fleet_t1.upstreams("T1")
    rates = [s.success for s in load_scenario("T1").servers]
    best = sorted(range(len(rates)), key=lambda i: -rates[i])[:3]
    shares = {}
    for contract, upstreams, options in (
            ("http", [f"http://{n}" for n in names],
             {"forwarding": Forwarding(retry_unsafe=True), "retry_budget": "off"}),
            ("challenge", names, {})):
        with lb(upstreams, tmp_path / contract, **options) as proxy, httpx.Client() as client:
            answers = [client.post(proxy.url + "/", json={"id": f"{contract[:4]}{k:020d}"})
                       for k in range(300)]
            servers = client.get(proxy.admin_url + "/stats").json()["servers"]
        accepted = sum(a.status_code == 200 for a in answers) / len(answers)
        attempts = [s["attempts"] for s in servers]
        shares[contract] = (accepted, sum(attempts[i] for i in best) / sum(attempts))
    # both contracts get nearly every id accepted and send most attempts to the 3 best
    for accepted, best_share in shares.values():
        assert accepted >= 0.97 and best_share >= 0.6, shares
    assert abs(shares["http"][0] - shares["challenge"][0]) <= 0.03, shares


def test_an_absolute_form_target_goes_to_the_pool_never_to_the_host_it_names(pair, tmp_path):
    (a, port), _ = pair
    with socket.socket() as trap:  # where the target points: nothing may connect here
        trap.bind(("127.0.0.1", 0))
        trap.listen()
        trap.settimeout(0.5)
        target = f"http://127.0.0.1:{trap.getsockname()[1]}/x?y=1"
        with lb([f"http://127.0.0.1:{port}"], tmp_path) as proxy:
            host, lb_port = proxy.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(lb_port)), timeout=5) as raw:
                raw.sendall(f"GET {target} HTTP/1.1\r\nHost: elsewhere\r\n"
                            f"Connection: close\r\n\r\n".encode())
                reply = b""
                while chunk := raw.recv(65536):
                    reply += chunk
        with pytest.raises(TimeoutError):
            trap.accept()
    doc = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert reply.startswith(b"HTTP/1.1 200") and (doc["upstream"], doc["path"]) == ("a", "/x")


def test_head_and_body_limits_are_settings(pair, tmp_path):
    (a, port), _ = pair
    forwarding = Forwarding(max_retry_body=1024, max_body_bytes=100_000)

    def trickle():  # past the bound only after the body has begun to stream upstream
        for _ in range(20):
            time.sleep(0.01)
            yield b"t" * 10_000

    with lb([f"http://127.0.0.1:{port}"], tmp_path, forwarding=forwarding,
            max_head_bytes=2048) as proxy, httpx.Client() as client:
        small_head = client.get(proxy.url + "/", headers={"X-Pad": "p" * 1000})
        big_head = client.get(proxy.url + "/", headers={"X-Pad": "p" * 4000})
        kept = client.put(proxy.url + "/up", content=b"k" * 900)  # kept for retries
        streamed = client.put(proxy.url + "/up", content=b"s" * 90_000)  # streams, fits
        too_big = client.put(proxy.url + "/up", content=b"x" * 200_000)
        cut = client.put(proxy.url + "/up", content=trickle())
        after = client.get(proxy.url + "/still")
        server = httpx.get(proxy.admin_url + "/stats").json()["servers"][0]
    assert small_head.status_code == 200 and big_head.status_code == 431
    assert "larger than 2048 bytes" in big_head.json()["error"]
    assert kept.json()["body_bytes"] == 900 and streamed.json()["body_bytes"] == 90_000
    assert too_big.status_code == 413 and "100000 bytes" in too_big.json()["error"]
    assert cut.status_code == 413 and after.status_code == 200
    # a body the client made too long is not held against the upstream it streamed to
    assert server["failed"] == 0 and server["attempts"] == server["accepted"]


def test_weights_lean_traffic_and_a_zero_weight_is_a_backup(pair, tmp_path):
    (a, port_a), (b, port_b) = pair
    ups = [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]
    with start_lb_thread(ups, strategy="round-robin", data_dir=tmp_path / "w",
                         weights=(1.0, 0.25)) as proxy, httpx.Client() as client:
        for k in range(400):
            client.get(f"{proxy.url}/{k}")
        servers = httpx.get(proxy.admin_url + "/stats").json()["servers"]
    share_b = servers[1]["attempts"] / (servers[0]["attempts"] + servers[1]["attempts"])
    # round robin over what is offered: b is offered a quarter of the time, and then
    # taken every other time: about 1 in 8 (a rich getting richer learner leans harder)
    assert 0.06 < share_b < 0.2 and [s["weight"] for s in servers] == [1.0, 0.25]
    answered_b = b.answers
    with lb([ups[0], ups[1]], tmp_path / "z", weights=(1.0, 0.0)) as proxy:
        codes = [httpx.get(f"{proxy.url}/{k}").status_code for k in range(100)]
    assert codes == [200] * 100 and b.answers == answered_b  # never while a is ready
    with socket.socket() as spare:  # a port nobody listens on once it is closed
        spare.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{spare.getsockname()[1]}"
    with lb([closed, ups[1]], tmp_path / "x", weights=(1.0, 0.0)) as proxy:
        codes = [httpx.get(f"{proxy.url}/{k}").status_code for k in range(30)]
    assert codes == [200] * 30 and b.answers >= answered_b + 30  # the backup serves
