"""The live fleet: every port of the chosen scenarios and the control port on one event loop.

Sockets are bound up front (in the constructor), so a port already in use is a
clear error before anything serves, and port 0 for the control port is known
immediately. A refusing server's port is never bound: connections to it are refused.
"""

from __future__ import annotations

import asyncio
import socket

from banditlb import services
from banditlb.fleet.control import control_handler
from banditlb.fleet.http import Handler, HttpProtocol
from banditlb.fleet.scenario import Scenario, ScenarioError, load_scenario, scale_capacity
from banditlb.fleet.server import LiveScenario, server_handler

MAX_PORT = 65535


class PortInUse(OSError):
    """A port of the fleet cannot be bound; the message names it."""

    def __init__(self, host: str, port: int, reason: str):
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.port = port


def load_scenarios(names: list[str], port_offset: int = 0,
                   capacity_scale: float = 1.0) -> list[Scenario]:
    """Presets or TOML files, shifted by `port_offset`, their capacity scaled by
    `capacity_scale`; ScenarioError on clashes."""
    scenarios = [scale_capacity(load_scenario(name).shifted(port_offset), capacity_scale)
                 for name in names]
    if not scenarios:
        raise ScenarioError("no scenario given")
    seen_names, seen_ports = set(), {}
    for scenario in scenarios:
        if scenario.name in seen_names:
            raise ScenarioError(f"scenario {scenario.name!r} is given twice")
        seen_names.add(scenario.name)
        for port in scenario.ports:
            if not 0 < port <= MAX_PORT:
                raise ScenarioError(f"scenario {scenario.name}: port {port} is out of range "
                                    f"(1-{MAX_PORT}); choose a smaller --port-offset")
            if port in seen_ports:
                raise ScenarioError(f"scenarios {seen_ports[port]} and {scenario.name} "
                                    f"both use port {port}")
            seen_ports[port] = scenario.name
    return scenarios


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 picks a free port); PortInUse if it cannot."""
    try:
        sock = services.bind(host, port, backlog=1024)
    except OSError as exc:
        raise PortInUse(host, port, exc.strerror or str(exc)) from None
    sock.setblocking(False)
    return sock


def check_free(host: str, ports: list[int]) -> None:
    """PortInUse unless every port can be bound right now."""
    sockets = []
    try:
        for port in ports:
            sockets.append(bind(host, port))
    finally:
        for sock in sockets:
            sock.close()


def served_ports(scenarios: list[Scenario]) -> list[int]:
    """The ports that listen: every server's except those refusing connections."""
    return [spec.port for scenario in scenarios for spec in scenario.servers
            if spec.fault != "refuse"]


class LiveFleet:
    """Bound sockets for every server of `scenarios` and a control port; start() serves them."""

    def __init__(self, scenarios: list[Scenario], *, host: str = "127.0.0.1",
                 control_port: int = 0, seed: int = 0, id_ttl_s: float = 600.0):
        self.scenarios = scenarios
        self.host = host
        self.seed = seed
        self.id_ttl_s = id_ttl_s
        self._sockets: dict[int, socket.socket] = {}
        self._control: socket.socket | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[HttpProtocol] = set()
        try:
            for port in served_ports(scenarios):
                self._sockets[port] = bind(host, port)
            self._control = bind(host, control_port)
        except OSError:
            self._close_sockets()
            raise
        self.control_port = self._control.getsockname()[1]

    @property
    def control_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.control_port}"

    @property
    def ports(self) -> dict[str, list[int]]:
        return {scenario.name: scenario.ports for scenario in self.scenarios}

    async def start(self) -> None:
        """Serve every bound socket on the running loop (time origin = now)."""
        loop = asyncio.get_running_loop()
        lives = [LiveScenario(s, self.seed, loop.time, self.id_ttl_s) for s in self.scenarios]
        for live in lives:
            for index, spec in enumerate(live.scenario.servers):
                if spec.port in self._sockets:
                    await self._serve(self._sockets[spec.port], server_handler(live, index))
        await self._serve(self._control, control_handler(lives))

    async def _serve(self, sock: socket.socket, handler: Handler) -> None:
        connections = self._connections
        server = await asyncio.get_running_loop().create_server(
            lambda: HttpProtocol(handler, connections), sock=sock, backlog=1024)
        self._servers.append(server)

    async def close(self) -> None:
        """Stop listening, close every open connection (hanging ones too)."""
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        if self._control is not None:
            self._control.close()
