"""`banditlb lb`: the load balancer service in front of a fleet of flaky upstreams."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from banditlb.balancer import config_file
from banditlb.balancer.admin import TOKEN_ENV, is_loopback
from banditlb.balancer.app import create_app
from banditlb.balancer.config import (
    DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_RETRY_AFTER_S,
    DEFAULT_MAX_RETRY_BODY,
    HTTP,
    ConfigError,
    Forwarding,
    LbConfig,
    checked_contract,
    checked_weights,
    default_contract,
    parse_forwarded,
    read_upstreams_file,
    resolve_upstreams,
    retry_budget_for,
    split_upstreams,
)
from banditlb.balancer.runner import ADMIN_PREFIX, READY_PREFIX, bind, make_server
from banditlb.balancer.workers import Supervisor, reserve, worker_argv
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
from banditlb.retry_budget import DEFAULT_MIN_RETRIES
from banditlb.services import url_of
from banditlb.shared.config import DEFAULT_SYNC_MS, PASSWORD_ENV, SharedConfig
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


def _numbers(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--weights {text!r}: expected numbers separated by commas, "
                          f"e.g. 1,1,0.5") from None


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
    weights: Annotated[str | None, typer.Option(
        help="Comma-separated, one per upstream in order: how much each is preferred at "
             "equal quality (an upstream is offered to the strategy in proportion to its "
             "weight); 0 makes it a backup, used only when no weighted one is ready.")]
    = None,
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
    contract: Annotated[str | None, typer.Option(
        help="challenge: POST / {\"id\": ...} with the penalty rule; http: forward any "
             "request. Default: http when every upstream is a URL (http://h:80, "
             "https://h/v1), else challenge.")] = None,
    admin_port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="http contract: the port of /stats, /metrics, /admin and the "
                               "dashboard (every path of --port is proxied). Default: "
                               "--port + 1 (a free one with --port 0).")] = None,
    max_retry_body: Annotated[int, typer.Option(
        min=0, help="http contract: request bodies up to this many bytes are kept for "
                    "retries; larger ones stream to one upstream, once.")]
    = DEFAULT_MAX_RETRY_BODY,
    retry_unsafe: Annotated[bool, typer.Option(
        help="http contract: retry POST and PATCH too (by default only those with an "
             "Idempotency-Key header).")] = False,
    host_header: Annotated[str, typer.Option(
        help="http contract: the Host sent upstream, the upstream's or the client's.")]
    = "upstream",
    forwarded: Annotated[str, typer.Option(
        help="http contract: fields added, among for, proto, host (X-Forwarded-*) and via; "
             "'none' for none.")] = "for,proto,host,via",
    retry_budget: Annotated[str | None, typer.Option(
        help="Retries at most this % of the requests over 10 s (at least --retry-budget-min "
             "per window), so a fleet-wide outage is not multiplied; 'off' for none. "
             "Default: 20 for the http contract, off for challenge (its rules bound "
             "retries).")] = None,
    retry_budget_min: Annotated[int, typer.Option(
        min=0, help="Retries always allowed per 10 s window, however few the requests.")]
    = DEFAULT_MIN_RETRIES,
    max_head_bytes: Annotated[int, typer.Option(
        min=1024, help="A request head (request line and headers) larger than this gets 431 "
                       "and the connection closes.")] = DEFAULT_MAX_HEAD_BYTES,
    max_body_bytes: Annotated[int, typer.Option(
        min=0, help="http contract: a request body larger than this gets 413 (0: no "
                    "bound; bodies stream through).")] = 0,
    shared_state: Annotated[str | None, typer.Option(
        help="redis://host:port[/db] (or rediss://): replicas of this pool (workers, other "
             "hosts) share what they learn there; the password comes from "
             f"{PASSWORD_ENV}, never from the command line. Off: each learns alone.")]
    = None,
    sync_ms: Annotated[float, typer.Option(
        help="With --shared-state: evidence is flushed and read at most this many ms "
             "apart (a refusal at once).")] = DEFAULT_SYNC_MS,
    pool: Annotated[str, typer.Option(
        help="The pool's name: the 'pool' label of its metrics and, with --shared-state, "
             "its Redis namespace (replicas of one pool share it). A config file names "
             "its pools itself.")] = "default",
    access_log: Annotated[Path | None, typer.Option(
        dir_okay=False, help="http contract: append one JSON line per request here ('-': "
                             "standard output), with nginx's field names (status, "
                             "upstream_addr, request_time, body_bytes_sent, ...).")]
    = None,
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="Balancer processes on the same port (SO_REUSEPORT: the kernel "
                            "spreads connections); one parent restarts them and drains them "
                            "all on SIGTERM. Each learns alone for now.")] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True, help="Set by --workers for its "
                                             "workers: bind with SO_REUSEPORT.")] = False,
    config: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Take the listener and the pool from this TOML file "
                                          "(see `banditlb config check --help`); the flags "
                                          "for them are then not used.")] = None,
    ca_bundle: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="http contract: verify https upstreams against "
                                          "these CA certificates (PEM) instead of the "
                                          "system's.")] = None,
) -> None:
    """Balance requests over flaky upstreams, learning which ones to trust: the challenge's
    POST / {"id": ...}, or (--contract http, or URL upstreams) any HTTP request."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if config is not None:
            lb = config_file.load(config, data_dir=data_dir, fleet_url=fleet_url,
                                  admin_token=admin_token)
        else:
            rules = parse_rules(penalty_weight, free_attempts, max_attempts,
                                attempt_timeout_ms, deadline_ms)
            names = _upstream_names(upstreams, upstreams_file, scenario)
            contract = checked_contract(default_contract(names) if contract is None
                                        else contract, names)
            lb = LbConfig(resolve_upstreams(names), strategy, parse_params(param or []), seed,
                          rules, scenario, host, port, data_dir, fleet_url, admin_token,
                          max_waiting, max_retry_after, contract,
                          Forwarding(max_retry_body, retry_unsafe, host_header,
                                     parse_forwarded(forwarded), ca_bundle,
                                     _admin_port(admin_port, port), max_body_bytes),
                          retry_budget_for(retry_budget, retry_budget_min, contract),
                          access_log, max_head_bytes)
            lb = dataclasses.replace(lb, name=pool, weights=checked_weights(
                None if weights is None else _numbers(weights), len(lb.upstreams)))
        if shared_state is not None:
            lb = dataclasses.replace(lb, shared=SharedConfig(shared_state, lb.name, sync_ms))
        if workers > 1:
            raise SystemExit(_supervise(lb, workers, err))
        app = create_app(lb)
    except ValueError as exc:  # unknown strategy, bad --param, bad upstreams, a bad file
        fail(str(exc))
    if not is_loopback(lb.host) and not admin_token:
        err.print(f"[yellow]warning:[/yellow] listening on {lb.host} without --admin-token: "
                  f"the /admin endpoints stay disabled")
    http = lb.contract == HTTP
    sockets = []
    for role, at in (("", lb.port), ("admin ", lb.forwarding.admin_port))[:1 + http]:
        try:
            sockets.append(bind(lb.host, at, reuse_port))
        except OSError as exc:
            fail(f"cannot listen on {lb.host}:{at} ({role}port): {exc.strerror or exc}")
    url = url_of(sockets[0])
    if http:
        app.admin_port = sockets[1].getsockname()[1]
    resolved = lb.upstreams

    def ready() -> None:
        recorder = app.state.balancer.recorder
        where = f"recording to {recorder.data_dir}" if recorder and recorder.recording \
            else "[bold red]NOT RECORDING[/bold red]"
        err.print(f"[bold]banditlb lb[/bold] {url}  {lb.contract} contract, strategy "
                  f"{lb.strategy}, "
                  f"{len(resolved)} upstreams ({resolved[0].name} ... {resolved[-1].name}), "
                  f"{where}")
        for pool in lb.pools:
            err.print(f"  pool {pool.name}: strategy {pool.strategy}, "
                      f"{len(pool.upstreams)} upstreams")
        if http:
            admin_url = url_of(sockets[1])
            err.print(f"  stats, metrics, admin and dashboard on {admin_url}")
            print(ADMIN_PREFIX + admin_url, flush=True)
        print(READY_PREFIX + url, flush=True)

    server = make_server(app, ready)
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    server.run(sockets=sockets)


def _supervise(lb: LbConfig, workers: int, err: Console) -> int:
    """Reserve the ports, run the workers until SIGTERM or SIGINT, drain them; the exit
    code (0 when every worker drained cleanly)."""
    http = lb.contract == HTTP
    try:
        held = [reserve(lb.host, lb.port)] + ([reserve(lb.host, lb.forwarding.admin_port)]
                                              if http else [])
    except OSError as exc:
        fail(f"cannot listen on {lb.host}:{lb.port}: {exc.strerror or exc}")
    ports = [sock.getsockname()[1] for sock in held]
    ready: set[int] = set()
    lock = threading.Lock()

    def on_line(k: int, line: str) -> None:
        with lock:
            if line.startswith(READY_PREFIX):
                ready.add(k)
                if len(ready) == workers:
                    err.print(f"[bold]banditlb lb[/bold]: {workers} workers ready")
                    if http:
                        print(ADMIN_PREFIX + url_of(held[1]), flush=True)
                    print(READY_PREFIX + url_of(held[0]), flush=True)
            elif not line.startswith(ADMIN_PREFIX):
                print(line, flush=True)  # the access log on standard output, for one

    supervisor = Supervisor(workers, worker_argv(sys.argv[2:], ports[0],
                                                 ports[1] if http else None), on_line)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, supervisor.reload)
    try:
        return supervisor.run()
    finally:
        for sock in held:
            sock.close()


def _admin_port(given: int | None, port: int) -> int:
    if given is not None:
        return given
    return 0 if port == 0 else port + 1
