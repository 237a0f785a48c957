"""Run the balancer: in this process (the CLI), in a thread (tests) or in a child process.

One uvicorn worker on uvloop and httptools, serving a socket bound up front so
port 0 works and the real port is known before the first request.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from banditlb import services
from banditlb.balancer.admin import TOKEN_ENV
from banditlb.balancer.app import BalancerApp, create_app
from banditlb.balancer.config import (
    DEFAULT_MAX_HEAD_BYTES,
    HTTP,
    Forwarding,
    LbConfig,
    default_contract,
    resolve_upstreams,
    retry_budget_for,
)
from banditlb.balancer.protocol import with_head_limit
from banditlb.retry_budget import DEFAULT_MIN_RETRIES
from banditlb.rules import Rules
from banditlb.services import ServiceHandle, url_of
from banditlb.shared.config import SharedConfig
from banditlb.waitlist import DEFAULT_MAX_WAITING

READY_PREFIX = "banditlb lb listening on "
ADMIN_PREFIX = "banditlb lb admin on "
START_TIMEOUT_S = 30.0
DRAIN_GRACE_S = 5.0
"""Time on top of the per-request deadline for in-flight requests to finish on shutdown."""


class _Server(uvicorn.Server):
    """uvicorn's server with two hooks: tell when it listens, end SSE streams on shutdown."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None],
                 on_shutdown: Callable[[], None]):
        super().__init__(config)
        self._on_ready, self._on_shutdown = on_ready, on_shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket for the balancer (port 0 picks a free one); `reuse_port`: one of
    several workers' listeners on the same port."""
    # TCP_NODELAY is inherited by accepted connections: uvicorn writes head and body
    # separately, and Nagle would hold the body back until the client acknowledges the head.
    sock = services.bind(host, port, reuse_port=reuse_port, nodelay=True)
    sock.set_inheritable(True)
    return sock


def make_server(app: BalancerApp, on_ready: Callable[[], None] = lambda: None) -> _Server:
    """One uvicorn worker for the balancer app (from create_app)."""
    config: LbConfig = app.state.config
    deadline = config.rules.deadline_s or config.rules.attempt_timeout_s * \
        config.rules.max_attempts
    uv_config = uvicorn.Config(app, loop="uvloop", http=with_head_limit(config.max_head_bytes),
                               lifespan="on",
                               access_log=False, log_level="warning", proxy_headers=False,
                               server_header=False, date_header=config.contract != HTTP,
                               timeout_graceful_shutdown=int(deadline + DRAIN_GRACE_S))
    return _Server(uv_config, on_ready, app.state.events.close)


class LbHandle(ServiceHandle):
    """A running balancer; stop() drains it (in-flight requests finish, attempts flushed)."""

    def __init__(self, url: str, stop: Callable[[], None],
                 process: subprocess.Popen | None = None, admin_url: str | None = None):
        super().__init__(stop, process)
        self.url = url
        self.admin_url = admin_url or url
        """Where /stats, /metrics, /admin and the dashboard answer (the http contract
        has a listener of its own for them)."""


@dataclass(frozen=True)
class LbOptions:
    """The tuning options of start_lb_thread/start_lb_process, as `banditlb lb` takes them."""

    penalty_weight: float = 1.0
    free_attempts: int = 3
    max_attempts: int = 10
    attempt_timeout_ms: float = 1000.0
    deadline_ms: float = 5000.0
    params: dict | None = None
    admin_token: str | None = None
    scenario: str | None = None
    seed: int = 0
    max_waiting: int = DEFAULT_MAX_WAITING
    contract: str | None = None
    """None: http for URL upstreams, else challenge."""
    forwarding: Forwarding = Forwarding()
    retry_budget: str | None = None
    """A percent, "off", or None for the contract's default."""
    retry_budget_min: int = DEFAULT_MIN_RETRIES
    access_log: Path | None = None
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    shared: SharedConfig | None = None
    """Share evidence with the pool's other replicas (its password from the environment)."""
    weights: tuple[float, ...] | None = None

    def rules(self) -> Rules:
        return Rules(free_attempts=self.free_attempts, penalty_weight=self.penalty_weight,
                     max_attempts=self.max_attempts,
                     attempt_timeout_s=self.attempt_timeout_ms / 1000,
                     deadline_s=self.deadline_ms / 1000)

    def cli_args(self) -> list[str]:
        args = ["--penalty-weight", str(self.penalty_weight),
                "--free-attempts", str(self.free_attempts),
                "--max-attempts", str(self.max_attempts),
                "--attempt-timeout-ms", str(self.attempt_timeout_ms),
                "--deadline-ms", str(self.deadline_ms), "--seed", str(self.seed),
                "--max-waiting", str(self.max_waiting)]
        for key, value in (self.params or {}).items():
            args += ["--param", f"{key}={value}"]
        if self.scenario:
            args += ["--scenario", self.scenario]
        if self.contract:
            args += ["--contract", self.contract]
        if self.retry_budget is not None:
            args += ["--retry-budget", self.retry_budget]
        args += ["--retry-budget-min", str(self.retry_budget_min)]
        if self.access_log is not None:
            args += ["--access-log", str(self.access_log)]
        args += ["--max-head-bytes", str(self.max_head_bytes),
                 "--max-body-bytes", str(self.forwarding.max_body_bytes)]
        f = self.forwarding
        args += ["--max-retry-body", str(f.max_retry_body), "--host-header", f.host_header,
                 "--forwarded", ",".join(f.forwarded) or "none",
                 "--admin-port", str(f.admin_port)]
        if f.retry_unsafe:
            args.append("--retry-unsafe")
        if f.ca_bundle is not None:
            args += ["--ca-bundle", str(f.ca_bundle)]
        if self.weights is not None:
            args += ["--weights", ",".join(map(str, self.weights))]
        if self.shared is not None:
            args += ["--shared-state", self.shared.url, "--pool", self.shared.pool,
                     "--sync-ms", str(self.shared.sync_ms)]
        return args  # the admin token goes through the environment: argv is public


def start_lb_thread(upstreams: list[str], *, strategy: str = "auto", data_dir: str | Path,
                    fleet_url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                    **options) -> LbHandle:
    """Serve the balancer from a thread of this process (tests); returns once it listens."""
    opts = LbOptions(**options)
    names = list(upstreams)
    contract = opts.contract or default_contract(names)
    config = LbConfig(resolve_upstreams(names), strategy, dict(opts.params or {}),
                      opts.seed, opts.rules(), opts.scenario, host, port, Path(data_dir),
                      fleet_url, opts.admin_token, opts.max_waiting, contract=contract,
                      forwarding=opts.forwarding,
                      retry_budget=retry_budget_for(opts.retry_budget, opts.retry_budget_min,
                                                    contract),
                      access_log=opts.access_log, max_head_bytes=opts.max_head_bytes,
                      shared=opts.shared, weights=opts.weights,
                      name="default" if opts.shared is None else opts.shared.pool)
    sockets = [bind(host, port)]
    app = create_app(config)
    if contract == HTTP:
        sockets.append(bind(host, opts.forwarding.admin_port))
        app.admin_port = sockets[1].getsockname()[1]
    ready = threading.Event()
    server = make_server(app, ready.set)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets},
                              name="banditlb-lb", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            for sock in sockets:
                sock.close()
            raise RuntimeError("the balancer did not start (see the log above)")

    def stop() -> None:
        server.should_exit = True
        thread.join()
        for sock in sockets:
            sock.close()

    return LbHandle(url_of(sockets[0]), stop, admin_url=url_of(sockets[-1]))


def start_lb_process(upstreams: list[str], *, strategy: str = "auto", data_dir: str | Path,
                     fleet_url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                     **options) -> LbHandle:
    """Run `python -m banditlb lb ...` as a child; returns once it listens.

    stop() sends SIGTERM: the child stops accepting, drains, flushes the store and exits 0.
    """
    opts = LbOptions(**options)
    args = ["lb", "--upstreams", ",".join(upstreams), "--strategy", strategy,
            "--data-dir", str(data_dir), "--host", host, "--port", str(port), *opts.cli_args()]
    if fleet_url:
        args += ["--fleet-url", fleet_url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if opts.admin_token:
        env[TOKEN_ENV] = opts.admin_token
    child = subprocess.Popen([sys.executable, "-m", "banditlb", *args], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        url, seen = services.read_ready(child, "banditlb lb", READY_PREFIX, START_TIMEOUT_S,
                                        (ADMIN_PREFIX,))
    except services.NotReady as exc:
        raise RuntimeError(str(exc)) from None
    return LbHandle(url, lambda: services.terminate(child, START_TIMEOUT_S + DRAIN_GRACE_S),
                    child, seen.get(ADMIN_PREFIX))
