"""Load by an arrival process (banditlb.arrivals): one POST per id, one row per id.

Open loop (uniform, poisson, burst:N, trace:FILE): id k leaves at start + send_times[k]
whatever happened to the earlier ones. The grader's clients do not wait, and a generator
that waited would slow down with the balancer and hide its queueing. Closed loop
(closed:N): N clients, each sending the next unsent id once its previous one is answered,
and not before `next_send` says. Each row's latency is measured from when its id
actually left; how late that was against the schedule is the run's send lag.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from banditlb.arrivals import UNIFORM, Arrivals
from banditlb.ids import ID_LENGTH
from banditlb.stats import percentile
from banditlb.store import RequestRow

NO_ANSWER = 0
"""Status recorded for a request the balancer never answered (refused, reset, timed out)."""

ID_ALPHABET = string.ascii_letters + string.digits


def make_ids(count: int, seed: int | str) -> list[str]:
    """`count` random 24-character alphanumeric ids; the same seed gives the same ids."""
    rng = random.Random(seed)
    return ["".join(rng.choices(ID_ALPHABET, k=ID_LENGTH)) for _ in range(count)]


def client_latency(rows: Sequence[RequestRow]) -> tuple[float, float]:
    """(p50, p99) of the rows' latencies in ms, as the client saw them (nan for no row)."""
    latencies = sorted(row.latency_ms for row in rows)
    return percentile(latencies, 50), percentile(latencies, 99)


@dataclass(frozen=True)
class Fired:
    """What one `fire` sent and got back."""

    rows: list[RequestRow]
    """One per id sent, by request number (1-based, in the order the ids left)."""
    arrivals: str
    send_lag_ms: float
    """How late the latest send left against its schedule (the generator's own stall)."""

    @property
    def p50_ms(self) -> float:
        return client_latency(self.rows)[0]

    @property
    def p99_ms(self) -> float:
        return client_latency(self.rows)[1]


OnAnswer = Callable[[RequestRow], None]
Send = Callable[[int, str], Awaitable[tuple[RequestRow, float]]]
"""(request number, id) -> (its row, when it left in seconds from the start)."""


async def fire(url: str | Sequence[str], ids: Sequence[str], rps: float,
               arrivals: Arrivals = UNIFORM, seed: int = 0, *, timeout_s: float = 30.0,
               on_answer: OnAnswer | None = None) -> Fired:
    """POST {"id": ...} to `url` for each id, sent by `arrivals` at a mean of `rps`; given
    several URLs (replicas behind an even front), id k goes to the (k mod n)-th.

    The schedule is `arrivals.send_times(len(ids), rps, seed)`, so one seed sends at the
    same times in every run (and in the simulator). A trace may send fewer ids than
    given (`arrivals.count`). Returns when every id sent has an answer or has waited
    `timeout_s`; a request that failed is a row with status NO_ANSWER, never an error.
    """
    if rps <= 0:
        raise ValueError("rps must be positive")
    ids = list(ids[:arrivals.count(len(ids))])
    times = arrivals.send_times(len(ids), rps, seed)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()

        def now() -> float:
            return loop.time() - start

        urls = [url] if isinstance(url, str) else list(url)

        async def send(number: int, request_id: str) -> tuple[RequestRow, float]:
            left = now()
            target = urls[number % len(urls)]
            return await _send(session, target, number, request_id, on_answer), left

        if arrivals.closed:
            sent = await _closed_loop(send, ids, times, arrivals, rps, now)
        else:
            sent = await _open_loop(send, ids, times, now)
    rows = sorted((row for row, _, _ in sent), key=lambda row: row.request_number)
    lag = max((left - due for _, left, due in sent), default=0.0)
    return Fired(rows, arrivals.label, 1000.0 * max(0.0, lag))


async def _open_loop(send: Send, ids: list[str], times: list[float],
                     now: Callable[[], float]) -> list[tuple[RequestRow, float, float]]:
    """Id k leaves at times[k], never waiting for an answer (a burst's ids all at once)."""

    async def due_at(number: int, request_id: str, due: float):
        row, left = await send(number, request_id)
        return row, left, due

    tasks = []
    for number, (request_id, due) in enumerate(zip(ids, times, strict=True), start=1):
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(due_at(number, request_id, due)))
    return list(await asyncio.gather(*tasks))


async def _closed_loop(send: Send, ids: list[str], firsts: list[float], arrivals: Arrivals,
                       rps: float, now: Callable[[], float]
                       ) -> list[tuple[RequestRow, float, float]]:
    """One task per client: its first id at firsts[c], then at `arrivals.next_send`;
    the clients take the ids in order, so at most N are ever in flight."""
    unsent = iter(enumerate(ids, start=1))
    sent: list[tuple[RequestRow, float, float]] = []

    async def client(due: float) -> None:
        while True:
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            taken = next(unsent, None)
            if taken is None:
                return
            row, left = await send(*taken)
            sent.append((row, left, due))
            due = arrivals.next_send(left, now(), rps)

    await asyncio.gather(*(client(due) for due in firsts))
    return sent


async def _send(session: aiohttp.ClientSession, url: str, number: int, request_id: str,
                on_answer: OnAnswer | None) -> RequestRow:
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
