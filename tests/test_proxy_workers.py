"""`banditlb lb --workers N`: N processes share one port, a dead one comes back, SIGTERM
drains them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from banditlb.balancer.runner import READY_PREFIX
from banditlb.balancer.workers import worker_argv
from banditlb.fleet.runner import start_fleet_thread
from banditlb.store import Store


def test_worker_arguments_drop_workers_and_take_the_reserved_ports():
    argv = ["--scenario", "T1", "--workers", "3", "--port", "0", "--workers=2"]
    assert worker_argv(argv, 4242, None) == ["--scenario", "T1", "--port", "0", "--port",
                                             "4242", "--reuse-port"]
    assert worker_argv([], 1, 2)[-2:] == ["--admin-port", "2"]


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.fixture
def fleet():
    with start_fleet_thread(["T1"], seed=0) as handle:
        yield handle


def test_two_workers_share_the_port_come_back_when_killed_and_drain_on_sigterm(fleet,
                                                                              tmp_path):
    parent = subprocess.Popen([sys.executable, "-m", "banditlb", "lb", "--upstreams",
                               ",".join(fleet.upstreams("T1")), "--port", "0", "--workers", "2",
                               "--data-dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = next(line for line in parent.stdout if line.startswith(READY_PREFIX))
        url = line[len(READY_PREFIX):].strip()
        workers = children_of(parent.pid)
        assert len(workers) == 2
        for k in range(60):  # a fresh connection each: the kernel picks a worker each time
            assert httpx.post(url + "/", json={"id": f"a{k:023d}"}).status_code in (200, 502)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the parent starts a new worker
            now = children_of(parent.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the killed worker was not replaced")
        time.sleep(3)  # the new worker is listening (its start takes about a second)
        answers = [httpx.post(url + "/", json={"id": f"b{k:023d}"}) for k in range(40)]
        assert all(a.status_code in (200, 502) for a in answers)
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(60)
        parent.stdout.close()
    assert code == 0
    with Store(tmp_path) as store:
        runs = store.runs()
    # one run per worker start (2 + the replacement); both first workers took part, and
    # the drained ones (all but the killed one) ended their runs
    assert len(runs) == 3 and sum(r["ended_at"] is not None for r in runs) == 2
    served = [len({a["request_id"] for a in store_attempts(tmp_path, r["id"])}) for r in runs]
    assert sum(served) >= 60 and sorted(served)[1] > 0


def store_attempts(data_dir, run_id: int) -> list[dict]:
    with Store(data_dir) as store:
        return store.attempts(run_id)
