"""`banditlb lb` as a process: clear start-up errors (exit 2), and SIGTERM mid-run loses nothing."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from banditlb.balancer.runner import start_lb_process
from banditlb.cli import app
from banditlb.store import Store


@pytest.mark.parametrize(("args", "reason"), [
    (["--upstreams", "127.0.0.1"], "expected host:port"),
    (["--upstreams", "127.0.0.1:4009-4000"], "backwards"),
    (["--upstreams", "no-such-host.invalid:4000"], "does not resolve"),
    (["--scenario", "T9"], "unknown scenario"),
    (["--scenario", "T1", "--strategy", "nope"], "valid names"),
    (["--scenario", "T1", "--strategy", "oracle"], "only in the simulator"),
    (["--scenario", "T1", "--param", "nope=1"], "has no parameter nope"),
    (["--scenario", "T1", "--param", "novalue"], "novalue"),
    ([], "no upstreams"),
    (["--upstreams", "ftp://127.0.0.1:21"], "scheme must be http or https"),
    (["--upstreams", "http://127.0.0.1:80/?q=1"], "no query"),
    (["--upstreams", "http://127.0.0.1:99999"], "bad upstream URL"),
    (["--upstreams", "https://127.0.0.1", "--contract", "challenge"], "need the http contract"),
    (["--upstreams", "127.0.0.1:4000", "--contract", "grpc"], "expected one of"),
    (["--upstreams", "http://127.0.0.1:4000", "--forwarded", "for,bogus"], "bogus"),
    (["--upstreams", "http://127.0.0.1:4000", "--host-header", "mine"], "expected upstream"),
    (["--upstreams", "http://127.0.0.1:4000", "--retry-budget", "lots"], "a percent"),
    (["--upstreams", "http://127.0.0.1:4000", "--retry-budget", "-5"], "retry budget"),
    (["--upstreams", "http://127.0.0.1:4000", "--access-log", "/proc/no/such/dir/log"],
     "cannot open the access log"),
])
def test_bad_options_exit_2_with_the_reason(args, reason, tmp_path):
    result = CliRunner().invoke(app, ["lb", "--port", "0", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert reason in " ".join(result.output.split())


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["lb", "--scenario", "T1", "--port", str(port),
                                          "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cannot listen on" in result.output


def fire(url: str, stop: threading.Event, answered: list[str]) -> None:
    """POST ids until told to stop or the balancer goes away; keep the answered ones."""
    with httpx.Client(timeout=10) as client:
        n = 0
        while not stop.is_set():
            request_id = f"t{threading.get_ident() % 10_000:04d}{n:019d}"
            n += 1
            try:
                answer = client.post(url, json={"id": request_id})
            except httpx.TransportError:
                return
            if answer.status_code in (200, 502, 503):
                answered.append(request_id)


def test_sigterm_mid_run_drains_records_every_answer_and_exits_0(fleet_t1, tmp_path):
    lb = start_lb_process(fleet_t1.upstreams("T1"), strategy="v4", data_dir=tmp_path,
                          scenario="T1")
    answered: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=fire, args=(lb.url + "/", stop, answered))
               for _ in range(6)]
    for thread in clients:
        thread.start()
    while len(answered) < 100:
        time.sleep(0.01)
    lb.stop()  # SIGTERM while the clients are still sending
    stop.set()
    for thread in clients:
        thread.join()
    assert lb.process.returncode == 0
    with Store(tmp_path) as store:
        (run,) = store.runs()
        rows = store.attempts(run["id"])
    completed = {r["request_id"] for r in rows if r["request_complete"]}
    assert set(answered) <= completed
    assert run["ended_at"] is not None and run["summary"]["requests"] >= len(answered)


def test_sigterm_before_any_request_exits_0(tmp_path):
    lb = start_lb_process(["127.0.0.1:1"], data_dir=tmp_path)
    lb.stop()
    assert lb.process.returncode == 0


def test_the_admin_token_reaches_the_child_but_not_its_command_line(fleet_t1, tmp_path):
    with start_lb_process(fleet_t1.upstreams("T1"), data_dir=tmp_path, host="0.0.0.0",
                          admin_token="s3cret-token") as lb, \
            open(f"/proc/{lb.process.pid}/cmdline", "rb") as cmdline:
        assert b"s3cret-token" not in cmdline.read()
        url = f"{lb.url}/admin/reset"
        assert httpx.post(url).status_code == 401
        assert httpx.post(url, headers={"Authorization": "Bearer s3cret-token"}).json()["ok"]
