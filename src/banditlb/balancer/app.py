"""The balancer's ASGI app: POST / routes an id; the rest is control and observability."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from banditlb.balancer.admin import admin_routes
from banditlb.balancer.config import (
    HTTP,
    LbConfig,
)
from banditlb.balancer.core import Balancer
from banditlb.balancer.events import EventHub, encode
from banditlb.balancer.forward import forward, refuse_websocket
from banditlb.balancer.metrics import metrics_registry
from banditlb.balancer.pools import Pools, UnknownPool
from banditlb.balancer.reload import reload_logged
from banditlb.balancer.replies import send_answer, send_json
from banditlb.dashboard import dashboard_routes
from banditlb.ids import MAX_BODY_BYTES, BadId, parse_id_body

SSE_SEND_TIMEOUT_S = 5.0
DISCARD_MAX_BYTES = 64 * 1024 * 1024
DISCARD_TIMEOUT_S = 2.0
ID_BODY = '{"id": "<24 letters or digits>"}'


class BadInput(Exception):
    """A POST / the balancer refuses before routing: the status and the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/")
                                             and media.endswith(b"+json"))


async def _read_id(scope: Scope, receive: Receive) -> str:
    """The id a POST / carries; BadInput (415, 413 or 400) with the reason otherwise."""
    headers = dict(scope["headers"])
    if not _is_json(headers.get(b"content-type", b"")):
        raise BadInput(415, f"content type must be application/json with body {ID_BODY}")
    declared = headers.get(b"content-length", b"")
    too_big = BadInput(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await _discard_body(receive)
        raise too_big
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY_BYTES:
            if more:
                await _discard_body(receive)
            raise too_big
        if not more:
            break
    try:
        return parse_id_body(body, allow_raw=False)
    except BadId as exc:
        raise BadInput(400, str(exc)) from exc


async def _discard_body(receive: Receive) -> None:
    """Read and drop the rest of a refused body (bounded in bytes and time): closing with
    unread data makes the kernel reset the connection before the client reads the 413."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DISCARD_TIMEOUT_S):
            more = True
            while more and drained < DISCARD_MAX_BYTES:
                message = await receive()
                drained += len(message.get("body", b""))
                more = message.get("more_body", False)


async def _submit(balancer: Balancer, scope: Scope, receive: Receive, send: Send) -> None:
    """POST /: validate, route, answer. Plain ASGI: this is the hot path."""
    if scope["method"] != "POST":
        await send_json(send, 405, {"status": "error", "error": f"method {scope['method']} "
                                     f"not allowed on /; send POST / {ID_BODY}"},
                         [(b"allow", b"POST")])
        return
    try:
        request_id = await _read_id(scope, receive)
    except BadInput as exc:
        balancer.reject()
        await send_json(send, exc.status, {"status": "error", "error": str(exc)})
        return
    await send_answer(send, await balancer.submit(request_id))


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def stats(request: Request) -> Response:
    try:
        return JSONResponse(request.app.state.pools.snapshot(request.query_params.get("pool")))
    except UnknownPool as exc:
        return JSONResponse({"status": "error", "error": str(exc.args[0])}, 404)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


async def events(request: Request) -> Response:
    hub: EventHub = request.app.state.events
    client = hub.subscribe(encode("metrics", request.app.state.pools.snapshot()),
                           encode("heartbeat", {"t": time.time()}))
    if client is None:
        return JSONResponse({"status": "error", "error": f"too many event streams (at most "
                             f"{hub.max_clients}); close one and retry"}, 503)
    return EventSourceResponse(hub.stream(client), send_timeout=SSE_SEND_TIMEOUT_S)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    reasons = {404: f"no such endpoint {request.url.path}; the balancer answers POST /",
               405: f"method {request.method} not allowed on {request.url.path}"}
    return JSONResponse({"status": "error", "error": reasons.get(exc.status_code, exc.detail)},
                        exc.status_code, exc.headers)


def _reload_on_sighup(pools: Pools) -> bool:
    """SIGHUP reloads the config file (a balancer started from one, in the main thread);
    whether the handler is installed."""
    if pools.main.config.source is None:
        return False
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(
            reload_logged(pools)))
    except (RuntimeError, ValueError):  # not the main thread (a balancer in a test thread)
        return False
    return True


def _host(scope: Scope) -> str | None:
    """The request's Host without its port."""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return None


def create_app(config: LbConfig) -> BalancerApp:
    """The balancer app for `config`; the store is opened and the run begun at startup."""
    hub = EventHub()
    pools = Pools(config, hub)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await pools.start()
        ticker = asyncio.create_task(hub.run_ticker(pools.snapshot))
        reloads = _reload_on_sighup(pools)
        try:
            yield
        finally:
            if reloads:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            ticker.cancel()
            hub.close()
            await pools.stop()

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        *admin_routes(),
        *dashboard_routes(config.data_dir, config.fleet_url),
    ]
    control = Starlette(routes=routes, lifespan=lifespan,
                        exception_handlers={404: _http_error, 405: _http_error})
    control.state.config = config
    control.state.pools = pools
    control.state.balancer = pools.main
    control.state.events = hub
    control.state.registry = metrics_registry(pools)
    return BalancerApp(control, pools)


class BalancerApp:
    """The challenge contract: POST / goes straight to the balancer, everything else to
    the Starlette app. The http contract: every request on the proxy listener is
    forwarded; the Starlette app answers on the admin listener only.

    Skipping Starlette's middleware, routing and Request/Response objects on the hot
    path is worth a measurable share of the per-request cost (bench/README.md).
    """

    def __init__(self, control: Starlette, pools: Pools):
        self.control = control
        self.pools = pools
        self.balancer = balancer = pools.main
        self.state = control.state
        self.http = balancer.config.contract == HTTP
        self.admin_port: int | None = None
        """The admin listener's port (the http contract; set once it is bound)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self.http and kind != "lifespan" and scope["server"][1] != self.admin_port:
            if kind == "http":
                balancer = self.pools.pick(_host(scope), scope["path"]) \
                    if self.pools.routes else self.balancer
                if balancer is None:
                    await send_json(send, 404, {"status": "error", "error": "no route "
                                                "matches this request's host and path"})
                    return
                await forward(balancer, scope, receive, send)
            else:
                await refuse_websocket(scope, send)
        elif kind == "http" and scope["path"] == "/" and not self.http:
            await _submit(self.balancer, scope, receive, send)
        else:
            await self.control(scope, receive, send)
