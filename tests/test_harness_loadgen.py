"""The open-loop generator against a real local HTTP server."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from banditlb.harness import NO_ANSWER, fire_open_loop, make_ids
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
        rows = await fire_open_loop(url, ids, rps=100, timeout_s=20, on_answer=answered.append)
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


async def test_errors_are_rows_not_exceptions():
    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        if body["id"].startswith(("a", "b", "c", "d", "e", "f", "g", "h")):
            return web.Response(status=502, text="not json")
        return web.json_response({"status": "error", "attempts": 3}, status=502)

    runner, url = await serve(handler)
    try:
        rows = await fire_open_loop(url, make_ids(30, 2), rps=200, timeout_s=10)
    finally:
        await runner.cleanup()
    assert {r.status for r in rows} == {502}
    assert {r.attempts for r in rows} == {None, 3}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    rows = await fire_open_loop(f"http://127.0.0.1:{closed_port}/", make_ids(3, 3), rps=100,
                                timeout_s=5)
    assert [r.status for r in rows] == [NO_ANSWER] * 3


async def test_rejects_non_positive_rate():
    with pytest.raises(ValueError, match="rps"):
        await fire_open_loop("http://127.0.0.1:9/", ["x" * 24], rps=0)
