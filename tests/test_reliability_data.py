"""The balancer's records survive crashes and disks that fail: kill -9, SIGTERM with requests
in flight, a read-only or full data dir at start, a disk that fills up at run time.

The balancer runs as a child process. Root ignores file permissions, so a child meant to
meet a read-only directory is started without CAP_DAC_OVERRIDE; a full disk is a real
write failure from RLIMIT_FSIZE (the kernel refuses to grow its files).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from banditlb.balancer.runner import READY_PREFIX, LbHandle, LbOptions, start_lb_process
from banditlb.harness import NO_ANSWER, fire, make_ids
from banditlb.outcomes import Outcome
from banditlb.store import Store, db_path

FLUSH_INTERVAL_S = 0.25
LOSS_SLACK_S = 1.0
"""Scheduling slack on top of one flush interval on a loaded 2-core machine: a bound on
lost data, not a speed goal (docs/reliability.md has the measured figure)."""
OUTCOMES = {o.value for o in Outcome}


# ---------------------------------------------------------------- a balancer child we control

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_root_file_powers() -> None:
    """In the child before exec: root loses the right to ignore file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _file_size_limit(limit: int) -> Callable[[], None]:
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_files


@contextlib.contextmanager
def constrained_balancer(upstreams: list[str], data_dir: Path, log: Path,
                         setup: Callable[[], None]) -> Iterator[LbHandle]:
    """`banditlb lb` in a child that runs `setup` before exec; its stderr goes to `log`."""
    args = [sys.executable, "-m", "banditlb", "lb", "--upstreams", ",".join(upstreams),
            "--port", "0", "--data-dir", str(data_dir), *LbOptions().cli_args()]
    with open(log, "w") as stderr:
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 preexec_fn=setup, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = next((line[len(READY_PREFIX):].strip() for line in child.stdout
                if line.startswith(READY_PREFIX)), None)

    def stop() -> None:
        child.terminate()
        child.wait(30)

    handle = LbHandle(url or "", stop, child)
    try:
        assert url, f"the balancer did not start: {log.read_text()}"
        yield handle
    finally:
        handle.stop()
        child.stdout.close()


async def post_ids(url: str, count: int, seed: str) -> list[tuple[int, dict]]:
    async with aiohttp.ClientSession() as session:
        async def one(request_id: str) -> tuple[int, dict]:
            async with session.post(url + "/", json={"id": request_id}) as response:
                return response.status, await response.json(content_type=None)
        return await asyncio.gather(*(one(i) for i in make_ids(count, seed)))


def get_json(url: str, method: str = "GET") -> dict:
    async def call() -> dict:
        async with aiohttp.ClientSession() as session, session.request(method, url) as reply:
            return await reply.json(content_type=None)
    return asyncio.run(call())


def integrity(data_dir: Path) -> str:
    conn = sqlite3.connect(db_path(data_dir))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------- kill -9


def stored_requests(data_dir: Path) -> dict[str, list[dict]]:
    """Attempt rows by request id, from the one run the balancer recorded."""
    with Store(data_dir) as store:
        (run,) = store.runs()
        rows = store.attempts(run["id"])
    by_id: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_id[row["request_id"]].append(row)
    return by_id


def whole(rows: list[dict]) -> bool:
    """Attempts 1..n of one request, every field filled, completed only by the last."""
    rows = sorted(rows, key=lambda r: r["attempt_number"])
    return ([r["attempt_number"] for r in rows] == list(range(1, len(rows) + 1))
            and all(r["outcome"] in OUTCOMES and r["upstream"] and r["port"] > 0
                    and r["latency_ms"] >= 0 and r["ts"] > 0 for r in rows)
            and [bool(r["request_complete"]) for r in rows] == [False] * (len(rows) - 1) + [True])


async def test_kill_9_loses_at_most_the_last_flush_interval_never_part_of_a_row(
        fleet_t1, tmp_path):
    lb = start_lb_process(fleet_t1.upstreams("T1"), data_dir=tmp_path)
    killed_at: list[float] = []

    def kill() -> None:
        lb.process.kill()
        killed_at.append(time.time())

    asyncio.get_running_loop().call_later(2.0, kill)
    try:
        sent = (await fire(lb.url + "/", make_ids(600, "kill-9"), rps=200, timeout_s=5)).rows
    finally:
        lb.stop()
    assert lb.process.returncode == -signal.SIGKILL

    assert integrity(tmp_path) == "ok"
    stored = stored_requests(tmp_path)
    answered = [r for r in sent if r.status != NO_ANSWER]
    assert len(answered) >= 300, "the kill came before the run got going"
    assert all(whole(rows) for rows in stored.values())
    missing_ages = []
    for request in answered:
        rows = stored.get(request.request_id)
        if rows is None:
            missing_ages.append(killed_at[0] - (request.ts + request.latency_ms / 1000))
            continue
        assert len(rows) == request.attempts
        assert rows[-1]["request_success"] == (request.status == 200)
    assert len(missing_ages) < len(answered) / 4
    assert max(missing_ages, default=0.0) < FLUSH_INTERVAL_S + LOSS_SLACK_S, missing_ages


# ---------------------------------------------------------------- SIGTERM


async def test_sigterm_drains_requests_in_flight_and_flushes_them(tmp_path):
    """20 requests wait on a slow upstream when SIGTERM arrives: all are answered and stored."""
    arrived = asyncio.Queue()

    async def slow_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:  # keep-alive: one request after another
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                arrived.put_nowait(1)
                await asyncio.sleep(1.0)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()

    server = await asyncio.start_server(slow_upstream, "127.0.0.1", 0)
    upstream = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    lb = await asyncio.to_thread(start_lb_process, [upstream], data_dir=tmp_path,
                                 attempt_timeout_ms=5000, deadline_ms=8000)
    try:
        in_flight = asyncio.create_task(post_ids(lb.url, 20, "drain"))
        for _ in range(20):
            await asyncio.wait_for(arrived.get(), 10)
        lb.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_ids(lb.url, 1, "after SIGTERM")  # no longer accepting
        answers = await in_flight
        code = await asyncio.to_thread(lb.process.wait, 30)
    finally:
        lb.stop()
        server.close()
    assert code == 0
    assert [status for status, _ in answers] == [200] * 20
    stored = stored_requests(tmp_path)
    assert set(stored) == set(make_ids(20, "drain"))
    assert all(len(rows) == 1 and rows[0]["request_success"] for rows in stored.values())
    with Store(tmp_path) as store:
        (run,) = store.runs()
    assert run["ended_at"] is not None and run["summary"]["accepted"] == 20


# ---------------------------------------------------------------- disks that fail


def _read_only(data_dir: Path) -> Callable[[], None]:
    data_dir.mkdir()
    data_dir.chmod(0o555)
    return _without_root_file_powers


def _no_room(data_dir: Path) -> Callable[[], None]:
    return _file_size_limit(1000)


@pytest.mark.parametrize(("make_bad", "reason"), [
    (_read_only, "is read-only"),
    (_no_room, "disk I/O error"),
], ids=["read-only data dir", "no room for the database"])
def test_unusable_data_dir_at_start_is_reported_loudly_and_requests_still_succeed(
        fleet_t1, tmp_path, make_bad, reason):
    data_dir, log = tmp_path / "data", tmp_path / "lb.log"
    with constrained_balancer(fleet_t1.upstreams("T1"), data_dir, log,
                              make_bad(data_dir)) as lb:
        answers = asyncio.run(post_ids(lb.url, 30, "no store"))
        stats = get_json(lb.url + "/stats")
        flushed = get_json(lb.url + "/admin/flush", "POST")
    stderr = log.read_text()
    assert "NOT RECORDING" in stderr and reason in stderr and str(data_dir) in stderr
    assert "Traceback" not in stderr
    assert all(status in (200, 502) for status, _ in answers)
    assert stats["recording"] is False and stats["run_id"] is None
    assert flushed["recording"] is False


def test_disk_filling_up_at_run_time_stops_recording_loudly_requests_keep_succeeding(
        fleet_t1, tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "lb.log"
    with constrained_balancer(fleet_t1.upstreams("T1"), data_dir, log,
                              _file_size_limit(100_000)) as lb:
        assert get_json(lb.url + "/stats")["recording"] is True
        answers = []
        for batch in range(8):
            answers += asyncio.run(post_ids(lb.url, 100, f"filling {batch}"))
        stats = get_json(lb.url + "/stats")
        flushed = get_json(lb.url + "/admin/flush", "POST")
    assert all(status in (200, 502) for status, _ in answers)
    assert stats["requests"] == 800
    assert stats["recording"] is False and stats["dropped"] > 0
    assert flushed == {"ok": True, "recording": False, "dropped": flushed["dropped"]}
    stderr = log.read_text()
    assert "recording to" in stderr  # it started recording
    assert stderr.count("NOT RECORDING attempts any more") == 1  # warned once, not per row
    assert "file size limits" in stderr
    assert "Traceback" not in stderr
    assert integrity(data_dir) == "ok"
