"""The load generator against a real local HTTP server: open loops keep their schedule
(bursts leave at once), closed loops never have more than N ids in flight."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from banditlb.arrivals import parse_arrivals
from banditlb.harness import NO_ANSWER, fire, make_ids
from banditlb.ids import check_id


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/"


def test_ids_are_valid_and_seeded():
    ids = make_ids(200, "0:T1")
    assert all(check_id(i) for i in ids)
    assert len(set(ids)) == 200
    assert make_ids(200, "0:T1") == ids
    assert make_ids(200, "0:T2") != ids


async def test_never_waits_for_earlier_answers():
    """The server answers nobody until all requests arrived: only an open loop finishes."""
    total = 15
    arrived: list[str] = []
    everyone_here = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        arrived.append((await request.json())["id"])
        if len(arrived) == total:
            everyone_here.set()
        await everyone_here.wait()
        return web.json_response({"status": "ok", "attempts": 2})

    runner, url = await serve(handler)
    try:
        ids = make_ids(total, 1)
        answered = []
        fired = await fire(url, ids, rps=100, timeout_s=20, on_answer=answered.append)
        rows = fired.rows
    finally:
        await runner.cleanup()
    assert [r.status for r in rows] == [200] * total
    assert [r.request_number for r in rows] == list(range(1, total + 1))
    assert [r.request_id for r in rows] == ids
    assert all(r.attempts == 2 for r in rows)
    assert len(answered) == total
    sent = [r.ts for r in rows]
    assert sent == sorted(sent)
    assert sent[-1] - sent[0] >= (total - 1) / 100 * 0.9, "requests left ahead of schedule"
    assert fired.arrivals == "uniform"
    assert fired.p50_ms <= fired.p99_ms and fired.send_lag_ms >= 0


async def test_errors_are_rows_not_exceptions():
    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        if body["id"].startswith(("a", "b", "c", "d", "e", "f", "g", "h")):
            return web.Response(status=502, text="not json")
        return web.json_response({"status": "error", "attempts": 3}, status=502)

    runner, url = await serve(handler)
    try:
        rows = (await fire(url, make_ids(30, 2), rps=200, timeout_s=10)).rows
    finally:
        await runner.cleanup()
    assert {r.status for r in rows} == {502}
    assert {r.attempts for r in rows} == {None, 3}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    rows = (await fire(f"http://127.0.0.1:{closed_port}/", make_ids(3, 3), rps=100,
                       timeout_s=5)).rows
    assert [r.status for r in rows] == [NO_ANSWER] * 3


async def test_rejects_non_positive_rate():
    with pytest.raises(ValueError, match="rps"):
        await fire("http://127.0.0.1:9/", ["x" * 24], rps=0)


async def test_a_burst_leaves_as_n_requests_at_once():
    """burst:5 at 20 req/s: 5 ids together every 0.25 s, all 5 in flight at once (the
    server answers none of a group before the whole group arrived)."""
    size, groups, rps = 5, 4, 20.0
    arrived: list[float] = []
    grown = asyncio.Condition()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        async with grown:
            arrived.append(asyncio.get_running_loop().time())
            group_end = (len(arrived) - 1) // size * size + size
            grown.notify_all()
            await grown.wait_for(lambda: len(arrived) >= group_end)
        return web.json_response({"status": "ok", "attempts": 1})

    runner, url = await serve(handler)
    try:
        fired = await fire(url, make_ids(size * groups, 4), rps, parse_arrivals("burst:5"),
                           timeout_s=20)
    finally:
        await runner.cleanup()
    assert [r.status for r in fired.rows] == [200] * size * groups
    assert fired.arrivals == "burst:5"
    sent = [r.ts for r in fired.rows]
    bursts = [sent[i:i + size] for i in range(0, len(sent), size)]
    gap = size / rps
    for burst in bursts:
        assert max(burst) - min(burst) < gap / 5, "a burst's ids did not leave together"
    starts = [min(burst) for burst in bursts]
    assert all(b - a >= gap * 0.9 for a, b in zip(starts, starts[1:], strict=False)), \
        "bursts left ahead of schedule"


async def test_a_closed_loop_never_has_more_than_n_in_flight():
    """closed:3 against a server that holds each request 40 ms: 3 in flight at most, and
    all 3 clients busy at some point; every id sent once, numbered in send order."""
    total = 24
    in_flight = [0]
    peak = [0]
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((await request.json())["id"])
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            await asyncio.sleep(0.04)
        finally:
            in_flight[0] -= 1
        return web.json_response({"status": "ok", "attempts": 1})

    runner, url = await serve(handler)
    try:
        ids = make_ids(total, 5)
        fired = await fire(url, ids, rps=200, arrivals=parse_arrivals("closed:3"),
                           timeout_s=20)
    finally:
        await runner.cleanup()
    assert peak[0] == 3
    assert sorted(seen) == sorted(ids) and len(seen) == total
    assert [r.request_number for r in fired.rows] == list(range(1, total + 1))
    assert [r.request_id for r in fired.rows] == ids  # the clients take the ids in order
    assert all(r.status == 200 for r in fired.rows)
    assert all(r.latency_ms >= 40 for r in fired.rows), "latency counted before the send"


async def test_a_closed_loop_keeps_to_n_over_rps_when_answers_are_fast():
    """closed:2 at 40 req/s and instant answers: a client sends at most every 2/40 s."""
    total = 12

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok", "attempts": 1})

    runner, url = await serve(handler)
    try:
        fired = await fire(url, make_ids(total, 6), rps=40,
                           arrivals=parse_arrivals("closed:2"), timeout_s=20)
    finally:
        await runner.cleanup()
    sent = sorted(r.ts for r in fired.rows)
    assert len(sent) == total
    # two clients, each at least 0.05 s between its sends: 6 rounds span >= 5 x 0.05 s
    assert sent[-1] - sent[0] >= (total / 2 - 1) * 2 / 40 * 0.9, "sent ahead of N/rps"


async def test_a_trace_sends_only_its_times(tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("5.00\n5.02\n5.05\n")

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok", "attempts": 1})

    runner, url = await serve(handler)
    try:
        ids = make_ids(10, 7)
        fired = await fire(url, ids, rps=10, arrivals=parse_arrivals(f"trace:{trace}"))
    finally:
        await runner.cleanup()
    assert [r.request_id for r in fired.rows] == ids[:3]
