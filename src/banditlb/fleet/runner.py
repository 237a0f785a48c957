"""Run a fleet from Python: on its own loop in a thread (tests) or as a child process
(benchmarks and the harness, so the fleet gets a core of its own).

With port_offset=None every scenario is shifted to a random free range, so tests
and runs side by side never clash with each other or with a fleet on the usual ports.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from banditlb.fleet.live import LiveFleet, PortInUse, check_free, load_scenarios, served_ports
from banditlb.services import NotReady, ServiceHandle, read_ready, terminate

READY_PREFIX = "banditlb fleet listening on "
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
OFFSET_RANGE = (10000, 26000)
"""Shifts the preset ports (4000-6609) below Linux's ephemeral range (32768+), where
outgoing connections of other programs would take ports at random."""
OFFSET_TRIES = 30

T = TypeVar("T")


class FleetHandle(ServiceHandle):
    """A running fleet: where its control API and servers are, and how to stop it."""

    def __init__(self, control_url: str, ports: dict[str, list[int]], host: str,
                 stop: Callable[[], None], process: subprocess.Popen | None = None):
        super().__init__(stop, process)
        self.control_url = control_url
        self.ports = ports
        """Scenario name -> its server ports, in the scenario's order."""
        self.host = host

    def upstreams(self, scenario: str) -> list[str]:
        """host:port of each server of `scenario`, as a balancer takes them."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"{host}:{port}" for port in self.ports[scenario]]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _on_free_ports(port_offset: int | None, control_port: int,
                   attempt: Callable[[int], T]) -> T:
    """attempt(offset) with the given offset, or with random offsets until ports are free."""
    if port_offset is not None:
        return attempt(port_offset)
    rng = random.Random()
    for _ in range(OFFSET_TRIES):
        try:
            return attempt(rng.randrange(*OFFSET_RANGE))
        except PortInUse as exc:
            if control_port and exc.port == control_port:
                raise
    raise PortInUse("127.0.0.1", 0, f"no free port range found in {OFFSET_TRIES} tries")


def start_fleet_thread(scenarios: list[str], seed: int = 0, host: str = "127.0.0.1",
                       port_offset: int | None = None, control_port: int = 0, *,
                       id_ttl_s: float = 600.0, capacity_scale: float = 1.0) -> FleetHandle:
    """Serve the fleet from a daemon thread of this process; returns once it listens.

    Raises ScenarioError for bad scenarios and PortInUse when a port is taken.
    """

    def bound(offset: int) -> LiveFleet:
        return LiveFleet(load_scenarios(scenarios, offset, capacity_scale), host=host,
                         control_port=control_port, seed=seed, id_ttl_s=id_ttl_s)

    fleet = _on_free_ports(port_offset, control_port, bound)
    loop = new_event_loop()
    stopping = loop.create_future()
    ready = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            await fleet.start()
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            await fleet.close()
            ready.set()
            return
        ready.set()
        try:
            await stopping
        finally:
            await fleet.close()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="banditlb-fleet", daemon=True)
    thread.start()
    ready.wait(START_TIMEOUT_S)
    if failure or not ready.is_set():
        raise RuntimeError("the fleet did not start") from (failure[0] if failure else None)

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(lambda: stopping.done() or stopping.set_result(None))
            thread.join(STOP_TIMEOUT_S)

    return FleetHandle(fleet.control_url, fleet.ports, host, stop)


def start_fleet_process(scenarios: list[str], seed: int = 0, host: str = "127.0.0.1",
                        port_offset: int | None = None, control_port: int = 0, *,
                        id_ttl_s: float = 600.0, capacity_scale: float = 1.0,
                        command_prefix: tuple[str, ...] = ()) -> FleetHandle:
    """Run `python -m banditlb fleet ...` as a child; returns once /health answers.

    `command_prefix` runs the child under another program (e.g. ("taskset", "-c", "1")).
    stop() sends SIGTERM and waits for a clean exit.
    """

    def spawn(offset: int) -> FleetHandle:
        loaded = load_scenarios(scenarios, offset, capacity_scale)
        if port_offset is None:
            extra = [control_port] if control_port else []
            check_free(host, served_ports(loaded) + extra)
        args = [*command_prefix, sys.executable, "-m", "banditlb", "fleet", "--seed", str(seed),
                "--host", host, "--control-port", str(control_port),
                "--port-offset", str(offset), "--id-ttl", str(id_ttl_s),
                "--capacity-scale", str(capacity_scale)]
        for name in scenarios:
            args += ["--scenario", name]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        control_url = _wait_ready(child, host, offset)
        return FleetHandle(control_url, {s.name: s.ports for s in loaded}, host,
                           lambda: terminate(child, STOP_TIMEOUT_S), child)

    return _on_free_ports(port_offset, control_port, spawn)


def _wait_ready(child: subprocess.Popen, host: str, offset: int) -> str:
    """The child's control URL from its ready line, confirmed by /health."""
    try:
        url, _ = read_ready(child, "banditlb fleet", READY_PREFIX, START_TIMEOUT_S)
    except NotReady as exc:
        if exc.code == 2:  # the command's exit code for a port in use (scenarios checked)
            raise PortInUse(host, 0, f"a port of the fleet at offset {offset} is taken "
                                     f"(see the error above)") from None
        raise RuntimeError(str(exc)) from None
    with urllib.request.urlopen(f"{url}/health", timeout=START_TIMEOUT_S):
        return url
