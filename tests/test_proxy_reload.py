"""Hot reload of `banditlb lb --config FILE` on POST /admin/reload and on SIGHUP, under
load from a real client, in front of real upstream servers."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from banditlb.balancer.runner import start_lb_thread
from lb_from_file import FromFile, lb_from_file
from upstreams import FixedStatus, serve


def config(upstreams: list[str], strategy: str = "auto", port: int = 0) -> str:
    listed = ", ".join(f'"{u}"' for u in upstreams)
    return (f'[listen]\nhost = "127.0.0.1"\nport = {port}\nadmin_port = 0\n\n'
            f'[[pools]]\nname = "api"\nupstreams = [{listed}]\nstrategy = "{strategy}"\n'
            f'contract = "http"\n')


class Running:
    """A running `banditlb lb --config FILE`, and a client that never stops sending."""

    def __init__(self, lb: FromFile):
        self.child, self.url, self.admin = lb.child, lb.url, lb.admin
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._load, daemon=True)
        self._thread.start()

    def _load(self) -> None:
        with httpx.Client(timeout=10) as client:
            k = 0
            while not self._stop.is_set():
                k += 1
                try:
                    self.statuses.append(client.get(f"{self.url}/r{k}").status_code)
                except httpx.HTTPError:
                    self.statuses.append(-1)
                time.sleep(0.005)

    def stats(self) -> dict:
        return httpx.get(self.admin + "/stats").json()

    def upstreams(self) -> list[str]:
        return [s["upstream"] for s in self.stats()["servers"]]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def fleet():
    a, b, c = FixedStatus(200), FixedStatus(429), FixedStatus(200)
    with serve(a) as pa, serve(b) as pb, serve(c) as pc:
        yield {name: (app, f"http://127.0.0.1:{port}")
               for name, app, port in (("a", a, pa), ("b", b, pb), ("c", c, pc))}


def test_reload_swaps_upstreams_keeps_what_was_learned_and_fails_no_request(fleet, tmp_path):
    (a, url_a), (b, url_b), (c, url_c) = fleet["a"], fleet["b"], fleet["c"]
    path = tmp_path / "banditlb.toml"
    path.write_text(config([url_a, url_b]))
    with lb_from_file(path, tmp_path / "data") as started:
        lb = Running(started)
        try:
            assert until(lambda: b.answers >= 1)  # b refused once: blocked for its 30 s
            path.write_text(config([url_b, url_c]))  # a goes, b stays, c comes
            reply = httpx.post(lb.admin + "/admin/reload")
            assert reply.status_code == 200, reply.text
            doc = reply.json()
            assert doc["upstreams"] == [url_b, url_c] and doc["learning"] == "kept"
            b_then = b.answers
            stats = lb.stats()
            assert stats["beliefs"]["blocked_until"][0] is not None  # b's block came along
            assert until(lambda: c.answers >= 20)
            a_then = a.answers
            time.sleep(0.3)
            assert a.answers == a_then  # the removed upstream gets nothing new
            assert b.answers == b_then  # and b is still believed blocked
            # a file that does not check is refused with its reasons; nothing changes
            path.write_text(config([url_b, url_c], strategy="nope"))
            bad = httpx.post(lb.admin + "/admin/reload")
            assert bad.status_code == 400 and "pools[0].strategy" in bad.json()["error"]
            assert lb.upstreams() == [url_b, url_c]
            # what only a restart can change is refused, and says so
            path.write_text(config([url_b, url_c], port=1))
            fixed = httpx.post(lb.admin + "/admin/reload")
            assert fixed.status_code == 400 and "listen.port changed" in fixed.json()["error"]
            # SIGHUP does the same as POST /admin/reload
            path.write_text(config([url_c, url_a]))
            lb.child.send_signal(signal.SIGHUP)
            assert until(lambda: lb.upstreams() == [url_c, url_a])
            time.sleep(0.3)
            sent = len(lb.statuses)
        finally:
            lb.close()
    assert sent > 100 and set(lb.statuses) == {200}, "a request failed across the reloads"
    assert lb.child.returncode == 0


def test_reload_without_a_config_file_is_refused(tmp_path):
    with start_lb_thread(["127.0.0.1:9"], data_dir=tmp_path) as lb:
        reply = httpx.post(lb.admin_url + "/admin/reload")
    assert reply.status_code == 400 and "without --config" in reply.json()["error"]
