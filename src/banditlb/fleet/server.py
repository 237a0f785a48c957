"""One scenario served live: its models, its scoreboard, its clock, and the per-port contract.

Every server port answers `POST /` with the 24-character id (raw or JSON) by asking
its ServerModel what to do at `now` (seconds since the scenario's time origin),
recording the attempt on the scenario's scoreboard, and answering after the
model's latency. A hanging server reads and never answers; a refusing one is
never bound (see live.py).

A server whose scenario names a rate-limit header style (`rate_limit_headers`, see
banditlb.ratelimit.STYLES) says what its limiter has left on its 429s or on every
answer (`rate_limit_headers_on`); its epoch and HTTP-date forms are read from the
scenario's wall clock: the wall time of its origin plus `now`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from banditlb.fleet.http import (
    HANG,
    NOT_FOUND,
    Request,
    Response,
    error_response,
    method_not_allowed,
)
from banditlb.fleet.models import Reply, ServerModel
from banditlb.fleet.scenario import Scenario
from banditlb.fleet.scoreboard import Scoreboard
from banditlb.ids import BadId, parse_id_body

BODIES = {200: b'{"status":"accepted"}', 500: b'{"status":"failed"}',
          429: b'{"status":"rate_limited"}'}
HEALTHY = Response(200, b'{"ok":true}')
"""Statuses only a limiter answers (the model's failures are 500s)."""


class LiveScenario:
    """A scenario's mutable live state; reset() starts it over (new seed, new origin)."""

    def __init__(self, scenario: Scenario, seed: int, clock: Callable[[], float],
                 id_ttl_s: float = 600.0, wall_clock: Callable[[], float] = time.time):
        self.scenario = scenario
        self.id_ttl_s = id_ttl_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.reset(seed)

    @property
    def name(self) -> str:
        return self.scenario.name

    def reset(self, seed: int) -> None:
        self.seed = seed
        self.models: list[ServerModel] = self.scenario.build(seed)
        self.scoreboard = Scoreboard(ttl_s=self.id_ttl_s)
        self.origin = self._clock()
        self.wall_origin = self._wall_clock()
        """Unix time of the origin: `wall_origin + now` dates the epoch and HTTP-date forms."""

    def now(self) -> float:
        return self._clock() - self.origin

    def truth(self) -> dict:
        now = self.now()
        return {"now": now, "seed": self.seed,
                "servers": [model.truth(now) for model in self.models]}


def reply_response(reply: Reply, headers: tuple[tuple[str, str], ...] | None = None) -> Response:
    """The HTTP answer to a model's reply (not for faults); `headers` replace the plain
    Retry-After of a `retry_after = true` server when its style sends rate-limit fields."""
    if headers is None:
        headers = ()
        if reply.retry_after_s is not None:
            headers = (("Retry-After", str(reply.retry_after_s)),)
    return Response(reply.status, BODIES.get(reply.status, BODIES[500]), headers,
                    reply.latency_s)


def server_handler(live: LiveScenario, index: int) -> Callable[[Request], Response]:
    """The request handler of server `index` of a live scenario (its models may be reset)."""

    def handle(request: Request) -> Response:
        model = live.models[index]
        if request.path == "/":
            if request.method != "POST":
                return method_not_allowed("POST")
            try:
                request_id = parse_id_body(request.body)
            except BadId as exc:
                return error_response(400, str(exc))
            now = live.now()
            reply = model.handle(now)
            if reply.fault:
                return HANG
            live.scoreboard.record(request_id, model.port, reply.status, now)
            return reply_response(reply, model.rate_limit_fields(reply, now,
                                                                 live.wall_origin + now))
        if request.path == "/health":
            if request.method != "GET":
                return method_not_allowed("GET")
            return HANG if model.fault else HEALTHY
        return NOT_FOUND

    return handle
