"""Helpers for the dashboard tests (no tests here): a served dashboard and a filled store."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from banditlb.balancer.runner import bind
from banditlb.dashboard.routes import dashboard_app
from banditlb.services import url_of
from banditlb.store import AttemptRow, AttemptWriter, Store

MARKUP = '<img src=x id="pwned" onerror="window.__pwned=1">'
"""Put where users' text goes (session names, strategy parameters): must show as text."""
T1_PORTS = list(range(4000, 4010))


@contextmanager
def serve_dashboard(data_dir: Path, fleet_url: str | None = None) -> Iterator[str]:
    """`banditlb dashboard`'s app on a free loopback port, in a thread; yields its base URL."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(dashboard_app(data_dir, fleet_url),
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str) -> tuple[int, dict]:
    status, body = get(url)
    return status, json.loads(body)


def synthetic_attempts(run_id: int, requests: int, seed: int, start: float,
                       ports: list[int] = T1_PORTS, rps: float = 10.0) -> list[AttemptRow]:
    """Attempts of `requests` requests at `rps`: up to 4 tries, servers and outcomes drawn."""
    rng = random.Random(seed)
    rows = []
    for number in range(1, requests + 1):
        t = start + number / rps
        tries = rng.choice([1, 1, 1, 2, 2, 3, 4])
        for k in range(1, tries + 1):
            last = k == tries
            outcome = "accepted" if last and rng.random() < 0.8 else \
                rng.choice(["failed", "rate_limited"])
            port = rng.choice(ports)
            rows.append(AttemptRow(run_id, number, k, f"req{number:05d}{'x' * 16}"[:24],
                                   f"127.0.0.1:{port}", port, outcome,
                                   {"accepted": 200, "failed": 500}.get(outcome, 429),
                                   rng.uniform(1, 30), t + 0.01 * k, last,
                                   last and outcome == "accepted"))
    return rows


def fill_store(data_dir: Path, *, session: str = "matrix", strategies=("v4", "random"),
               scenarios=("T1", "T2"), requests: int = 80, params: dict | None = None) -> dict:
    """A session of harness-like runs (strategy x scenario) with attempts and summaries.

    Returns {"session_id", "run_ids"}. Summaries carry what a harness run stores (rps,
    requests, the rules), so the dashboard can rebuild the oracle for preset scenarios.
    """
    run_ids = []
    with Store(data_dir) as store, AttemptWriter(data_dir) as writer:
        session_id = store.create_session(session)
        for s, scenario in enumerate(scenarios):
            ports = [p + 1000 * s for p in T1_PORTS]
            for k, strategy in enumerate(strategies):
                run_id = store.create_run(session_id, strategy, scenario, params or {}, 0,
                                          "harness")
                rows = synthetic_attempts(run_id, requests, seed=10 * s + k,
                                          start=1_700_000_000.0 + 100 * len(run_ids),
                                          ports=ports)
                for row in rows:
                    writer.put(row)
                accepted = sum(r.request_success for r in rows)
                penalized = sum(max(0, r.attempt_number - 3) for r in rows)
                store.end_run(run_id, {"score": accepted - penalized, "ids_accepted": accepted,
                                       "penalized_attempts": penalized, "requests": requests,
                                       "rate_limited": sum(r.outcome == "rate_limited"
                                                           for r in rows),
                                       "rps": 10.0, "penalty_weight": 1.0, "free_attempts": 3})
                run_ids.append(run_id)
        assert writer.flush()
    return {"session_id": session_id, "run_ids": run_ids}
