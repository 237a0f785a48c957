"""`banditlb fleet`: the simulated flaky servers of one or more scenarios, plus the scoreboard."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console

from banditlb.commands.common import CHALLENGE_SCENARIOS, fail
from banditlb.fleet.live import LiveFleet, PortInUse, load_scenarios
from banditlb.fleet.runner import READY_PREFIX, new_event_loop
from banditlb.fleet.scenario import ScenarioError, preset_names


def port_ranges(ports: list[int]) -> str:
    """[4000, 4001, 4002, 4005] -> '4000-4002,4005'."""
    ranges: list[list[int]] = []
    for port in sorted(ports):
        if ranges and port == ranges[-1][1] + 1:
            ranges[-1][1] = port
        else:
            ranges.append([port, port])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


async def _serve(fleet: LiveFleet) -> None:
    """Serve until SIGINT or SIGTERM, then close listeners and connections."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fleet.start()
    console = Console(soft_wrap=True)
    served = ", ".join(f"{name} {port_ranges(ports)}" for name, ports in fleet.ports.items())
    console.print(f"[bold green]fleet[/bold green] {served} on {fleet.host} | scoreboard "
                  f"[bold]{fleet.control_url}/score[/bold] (seed {fleet.seed}; Ctrl-C stops)")
    print(f"{READY_PREFIX}{fleet.control_url}", flush=True)
    await stop.wait()
    await fleet.close()
    console.print("fleet stopped")


def fleet_command(
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", "-s",
        help=f"A preset ({', '.join(preset_names())}) or a scenario .toml file; repeat for "
             f"several. Default: {', '.join(CHALLENGE_SCENARIOS)}.")] = None,
    seed: Annotated[int, typer.Option(
        help="Seed of every random stream (success draws, latencies): same seed and same "
             "arrivals, same answers. POST /reset?seed=N changes it live.")] = 0,
    host: Annotated[str, typer.Option(help="Address every port listens on.")] = "127.0.0.1",
    control_port: Annotated[int, typer.Option(
        min=0, max=65535, help="Port of the control API (/score, /reset, /truth, /ids/{id}, "
                               "/health); 0 picks a free one.")] = 7000,
    port_offset: Annotated[int, typer.Option(
        help="Added to every server port, e.g. 10000 serves T1 on 14000-14009.")] = 0,
    capacity_scale: Annotated[float, typer.Option(
        min=0.001, help="Multiply every server's capacity (rates, bursts, window limits, "
                        "concurrency caps) by this, keeping its times and error rates: "
                        "R balancers at R x 10 req/s then find it as scarce as one at "
                        "10 req/s.")] = 1.0,
    id_ttl: Annotated[float, typer.Option(
        min=0.001, help="Seconds an id's attempts are remembered after its last attempt; "
                        "scores stay exact, memory stays bounded.")] = 600.0,
) -> None:
    """Serve flaky, rate-limited upstream servers and score whatever balances over them."""
    try:
        scenarios = load_scenarios(list(scenario or CHALLENGE_SCENARIOS), port_offset,
                                   capacity_scale)
        fleet = LiveFleet(scenarios, host=host, control_port=control_port, seed=seed,
                          id_ttl_s=id_ttl)
    except ScenarioError as exc:
        fail(str(exc))
    except PortInUse as exc:
        fail(f"{exc} (is another fleet running? stop it, or use --port-offset / "
             f"--control-port)")
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve(fleet))
    finally:
        loop.close()
