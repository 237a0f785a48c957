"""The fleet's control port: ground-truth scores, reset, true state, per-id records."""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qsl

from banditlb.fleet.http import (
    NOT_FOUND,
    Handler,
    Request,
    Response,
    error_response,
    json_response,
    method_not_allowed,
)
from banditlb.fleet.server import LiveScenario
from banditlb.ids import BadId, check_id


class BadQuery(ValueError):
    """A query string the control port cannot use; the message is the reason."""


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


SCORE_PARAMS = {"penalty_weight": (_non_negative_float, "a number >= 0"),
                "free_attempts": (_non_negative_int, "an integer >= 0")}
RESET_PARAMS = {"seed": (int, "an integer")}


def parse_query(query: str, allowed: dict[str, tuple[Callable[[str], object], str]]) -> dict:
    """Known parameters converted; BadQuery names the parameter and what it must be."""
    values = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise BadQuery(f"unknown query parameter {key!r}; known: {', '.join(allowed)}")
        convert, expected = allowed[key]
        try:
            values[key] = convert(raw)
        except ValueError:
            raise BadQuery(f"{key} must be {expected}, got {raw!r}") from None
    return values


def control_handler(scenarios: list[LiveScenario]) -> Handler:
    """The control port's handler over the fleet's live scenarios."""

    def score(query: dict) -> dict:
        return {"scenarios": {
            live.name: {**live.scoreboard.summary(**query), "ports": live.scenario.ports}
            for live in scenarios}}

    def reset(query: dict) -> dict:
        seed = query.get("seed", scenarios[0].seed)
        for live in scenarios:
            live.reset(seed)
        return {"ok": True, "seed": seed}

    def truth(query: dict) -> dict:
        return {"scenarios": {live.name: live.truth() for live in scenarios}}

    def health(query: dict) -> dict:
        return {"ok": True}

    routes = {"/score": ("GET", SCORE_PARAMS, score), "/reset": ("POST", RESET_PARAMS, reset),
              "/truth": ("GET", {}, truth), "/health": ("GET", {}, health)}

    def id_record(request_id: str) -> Response:
        try:
            check_id(request_id)
        except BadId as exc:
            return error_response(400, str(exc))
        for live in scenarios:
            record = live.scoreboard.id_record(request_id, live.now())
            if record is not None:
                return json_response(200, {"id": request_id, "scenario": live.name, **record,
                                           "known": True})
        return json_response(200, {"id": request_id, "scenario": None, "attempts": 0,
                                   "accepted": False, "known": False})

    def handle(request: Request) -> Response:
        if request.path.startswith("/ids/"):
            if request.method != "GET":
                return method_not_allowed("GET")
            return id_record(request.path.removeprefix("/ids/"))
        route = routes.get(request.path)
        if route is None:
            return NOT_FOUND
        method, params, action = route
        if request.method != method:
            return method_not_allowed(method)
        try:
            return json_response(200, action(parse_query(request.query, params)))
        except BadQuery as exc:
            return error_response(400, str(exc))

    return handle
