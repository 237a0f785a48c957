"""`banditlb lb`: the load balancer service in front of a fleet of flaky upstreams."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from banditlb.commands.common import (
    AttemptTimeoutMs,
    DeadlineMs,
    FreeAttempts,
    MaxAttempts,
    MaxWaiting,
    PenaltyWeight,
    fail,
    parse_rules,
)
from banditlb.fleet.scenario import ScenarioError, load_scenario
from banditlb.proxy.admin import TOKEN_ENV, is_loopback
from banditlb.proxy.app import create_app
from banditlb.proxy.config import (
    DEFAULT_MAX_RETRY_AFTER_S,
    LbConfig,
    read_upstreams_file,
    resolve_upstreams,
    split_upstreams,
)
from banditlb.proxy.runner import READY_PREFIX, bind, make_server, url_of
from banditlb.strategies import parse_params
from banditlb.waitlist import DEFAULT_MAX_WAITING


def _exit_quietly(signum: int, frame) -> NoReturn:
    """uvicorn re-raises the stop signal after draining; by then, a clean exit is right."""
    raise SystemExit(0)


def _upstream_names(upstreams: str | None, upstreams_file: Path | None,
                    scenario: str | None) -> list[str]:
    if upstreams_file is not None:
        return split_upstreams(read_upstreams_file(upstreams_file))
    if upstreams is not None:
        return split_upstreams(upstreams)
    if scenario is not None:
        try:
            return [f"127.0.0.1:{port}" for port in load_scenario(scenario).ports]
        except ScenarioError as exc:
            fail(str(exc))
    fail("no upstreams: give --scenario T1, --upstreams 127.0.0.1:4000-4009 or "
         "--upstreams-file FILE")


def lb_command(
    strategy: Annotated[str, typer.Option(help="Strategy name or alias (v1..v10, thompson, "
                                          "ucb, auto, random, ...).")] = "auto",
    scenario: Annotated[str | None, typer.Option(
        help="Serve this scenario's ports on 127.0.0.1 (T1, T2, T3, ...); with --upstreams "
             "it only labels the run.")] = None,
    upstreams: Annotated[str | None, typer.Option(
        help="Comma-separated host:port or host:a-b port ranges.")] = None,
    upstreams_file: Annotated[Path | None, typer.Option(
        help="File with one upstream (or range) per line; '#' comments.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")]
    = 8000,
    penalty_weight: PenaltyWeight = 1.0,
    free_attempts: FreeAttempts = 3,
    max_attempts: MaxAttempts = 10,
    attempt_timeout_ms: AttemptTimeoutMs = 1000.0,
    deadline_ms: DeadlineMs = 5000.0,
    max_waiting: MaxWaiting = DEFAULT_MAX_WAITING,
    max_retry_after: Annotated[float, typer.Option(
        min=0, help="Seconds: an upstream's Retry-After is believed up to this long (a "
                    "larger value is cut to it and counted).")] = DEFAULT_MAX_RETRY_AFTER_S,
    param: Annotated[list[str] | None, typer.Option(help="Strategy parameter k=v "
                                                    "(repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the strategy's random choices.")] = 0,
    data_dir: Annotated[Path, typer.Option(help="Where runs and attempts are recorded.")]
    = Path(".banditlb"),
    fleet_url: Annotated[str | None, typer.Option(
        help="The fleet's control URL, for the dashboard's truth view.")] = None,
    admin_token: Annotated[str | None, typer.Option(
        envvar=TOKEN_ENV, help="Token for /admin/* (required when not bound to loopback).")]
    = None,
) -> None:
    """Balance POST / {"id": ...} over flaky upstreams, learning which ones to trust."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rules = parse_rules(penalty_weight, free_attempts, max_attempts, attempt_timeout_ms,
                        deadline_ms)
    try:
        params = parse_params(param or [])
        resolved = resolve_upstreams(_upstream_names(upstreams, upstreams_file, scenario))
        app = create_app(LbConfig(resolved, strategy, params, seed, rules, scenario, host, port,
                                  data_dir, fleet_url, admin_token, max_waiting,
                                  max_retry_after))
    except ValueError as exc:  # unknown strategy, bad --param, bad upstreams
        fail(str(exc))
    if not is_loopback(host) and not admin_token:
        err.print(f"[yellow]warning:[/yellow] listening on {host} without --admin-token: "
                  f"the /admin endpoints stay disabled")
    try:
        sock = bind(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    url = url_of(sock)

    def ready() -> None:
        recorder = app.state.balancer.recorder
        where = f"recording to {recorder.data_dir}" if recorder and recorder.recording \
            else "[bold red]NOT RECORDING[/bold red]"
        err.print(f"[bold]banditlb lb[/bold] {url}  strategy {strategy}, {len(resolved)} "
                  f"upstreams ({resolved[0].name} ... {resolved[-1].name}), {where}")
        print(READY_PREFIX + url, flush=True)

    server = make_server(app, ready)
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    server.run(sockets=[sock])
