"""Open-loop load: a new request every 1/rps seconds on schedule, never waiting for answers.

A closed loop (send, wait, send) slows down when the balancer does and hides its
queueing; the grader's clients do not wait, so neither does this generator.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from collections.abc import Callable, Sequence

import aiohttp

from banditlb.ids import ID_LENGTH
from banditlb.store import RequestRow

NO_ANSWER = 0
"""Status recorded for a request the balancer never answered (refused, reset, timed out)."""

ID_ALPHABET = string.ascii_letters + string.digits


def make_ids(count: int, seed: int | str) -> list[str]:
    """`count` random 24-character alphanumeric ids; the same seed gives the same ids."""
    rng = random.Random(seed)
    return ["".join(rng.choices(ID_ALPHABET, k=ID_LENGTH)) for _ in range(count)]


async def fire_open_loop(url: str, ids: Sequence[str], rps: float, *, timeout_s: float = 30.0,
                         on_answer: Callable[[RequestRow], None] | None = None
                         ) -> list[RequestRow]:
    """POST {"id": ...} to `url` for each id at `rps`, concurrently; one row per request.

    Request n (1-based, like the balancer's numbering) leaves at start + (n - 1)/rps
    whatever happened to the earlier ones; the call
    returns when every request has an answer or has waited `timeout_s`.
    """
    if rps <= 0:
        raise ValueError("rps must be positive")
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for number, request_id in enumerate(ids, start=1):
            delay = start + (number - 1) / rps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(
                _send(session, url, number, request_id, on_answer)))
        return list(await asyncio.gather(*tasks))


async def _send(session: aiohttp.ClientSession, url: str, number: int, request_id: str,
                on_answer: Callable[[RequestRow], None] | None) -> RequestRow:
    sent_at = time.time()
    started = time.perf_counter()
    status, attempts = NO_ANSWER, None
    try:
        async with session.post(url, json={"id": request_id}) as response:
            status = response.status
            body = await response.read()
        attempts = _attempts_from(body)
    except (aiohttp.ClientError, TimeoutError):
        pass  # recorded as NO_ANSWER: the balancer's failure is the result, not an error here
    row = RequestRow(number, request_id, status, (time.perf_counter() - started) * 1000,
                     sent_at, attempts)
    if on_answer is not None:
        on_answer(row)
    return row


def _attempts_from(body: bytes) -> int | None:
    """The balancer's "attempts" field, if the answer is the JSON the contract promises."""
    try:
        value = json.loads(body).get("attempts")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
