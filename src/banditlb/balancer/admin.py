"""The admin endpoints (/admin/strategy, /admin/reset, /admin/flush): who may call them
(anyone on a loopback-only balancer, else token holders) and what they accept."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from banditlb.balancer.config import ConfigError, LbConfig, resolve_upstreams, split_upstreams
from banditlb.balancer.core import Balancer, ReloadError, SwitchError
from banditlb.balancer.pools import UnknownPool
from banditlb.balancer.reload import reload_from_file

TOKEN_ENV = "BANDITLB_ADMIN_TOKEN"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or wildcard may reach other machines


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def admin_denial(bind_host: str, token: str | None, authorization: str | None) -> str | None:
    """None when the caller may use admin endpoints, else the reason it may not."""
    if is_loopback(bind_host):
        return None
    if not token:
        return (f"admin endpoints are disabled: the balancer listens on {bind_host}, "
                f"so start it with --admin-token or {TOKEN_ENV}")
    if not bearer_ok(authorization, token):
        return "admin endpoints need the header 'Authorization: Bearer <admin token>'"
    return None


def _admin(handler):
    """Wrap an admin handler with the token rule and JSON error answers."""
    async def guarded(request: Request) -> Response:
        config: LbConfig = request.app.state.balancer.config
        reason = admin_denial(config.host, config.admin_token,
                              request.headers.get("authorization"))
        if reason is not None:
            return JSONResponse({"ok": False, "error": reason}, 401,
                                {"WWW-Authenticate": "Bearer"})
        try:
            balancer = request.app.state.pools.named(request.query_params.get("pool"))
            return JSONResponse(await handler(request, balancer))
        except UnknownPool as exc:
            return JSONResponse({"ok": False, "error": str(exc.args[0])}, 404)
        except (SwitchError, ConfigError, ReloadError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 400)
    return guarded


SWITCH_FIELDS = {"strategy": str, "params": dict, "upstreams": list, "scenario": str,
                 "run_id": int, "session": str, "seed": int}
INT64 = range(-(2**63), 2**63)
"""What SQLite stores as an integer: run ids and seeds beyond it are refused up front."""


def _has_lone_surrogate(value) -> bool:
    """JSON may carry "\\ud800"; such text cannot be stored or even echoed in an error."""
    if isinstance(value, str):
        return not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


async def _switch_request(request: Request) -> dict:
    """The /admin/strategy body, type- and range-checked; SwitchError with the reason."""
    try:
        doc = json.loads(await request.body() or b"{}")
    except ClientDisconnect as exc:  # the client went away mid-body: nobody to answer
        raise SwitchError("the request body was cut short") from exc
    except ValueError as exc:
        raise SwitchError(f"body must be JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("strategy"), str):
        raise SwitchError('body must be a JSON object with at least {"strategy": "<name>"}')
    if _has_lone_surrogate(doc):
        raise SwitchError("text in the body must be valid Unicode (a lone surrogate escape "
                          "such as \\ud800 is not)")
    unknown = set(doc) - set(SWITCH_FIELDS)
    if unknown:
        raise SwitchError(f"unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(SWITCH_FIELDS)}")
    for key, kind in SWITCH_FIELDS.items():
        value = doc.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise SwitchError(f"{key} must be {kind.__name__}")
        if kind is int and value is not None and value not in INT64:
            raise SwitchError(f"{key} must fit in 64 bits, got {value}")
    return doc


async def admin_strategy(request: Request, balancer: Balancer) -> dict:
    doc = await _switch_request(request)
    upstreams = None
    if doc.get("upstreams") is not None:
        if not all(isinstance(u, str) for u in doc["upstreams"]):
            raise SwitchError('upstreams must be a list of "host:port" strings')
        names = split_upstreams(",".join(doc["upstreams"]))
        upstreams = await asyncio.to_thread(resolve_upstreams, names)
    lane = await balancer.switch(doc["strategy"], doc.get("params"), upstreams,
                                 doc.get("scenario"), doc.get("run_id"), doc.get("session"),
                                 doc.get("seed"))
    return {"ok": True, "run_id": lane.run_id, "strategy": lane.name,
            "upstreams": [u.name for u in lane.upstreams]}


async def admin_reset(request: Request, balancer: Balancer) -> dict:
    balancer.reset()
    return {"ok": True, "run_id": balancer.lane.run_id, "strategy": balancer.lane.name}


async def admin_flush(request: Request, balancer: Balancer) -> dict:
    return await balancer.flush()


async def admin_reload(request: Request, balancer: Balancer) -> dict:
    """Every pool at once (the file is one), whatever ?pool= says."""
    return await reload_from_file(request.app.state.pools)


def admin_routes() -> list[Route]:
    return [Route("/admin/strategy", _admin(admin_strategy), methods=["POST"]),
            Route("/admin/reload", _admin(admin_reload), methods=["POST"]),
            Route("/admin/reset", _admin(admin_reset), methods=["POST"]),
            Route("/admin/flush", _admin(admin_flush), methods=["POST"])]
