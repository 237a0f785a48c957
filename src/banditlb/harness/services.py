"""Start what the harness needs and was not given: the fleet, then the balancer in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from banditlb.harness.control import FleetControl


@dataclass(frozen=True)
class Services:
    fleet_url: str
    lb_url: str


@contextmanager
def running_services(scenarios: list[str], *, data_dir: Path, seed: int = 0,
                     fleet_url: str | None = None, lb_url: str | None = None,
                     lb_port: int = 0, strategy: str = "auto",
                     **lb_options) -> Iterator[Services]:
    """Yield the fleet and balancer URLs, starting (and afterwards stopping) the missing ones.

    A balancer started here records into `data_dir` and starts on the first scenario's
    servers; the harness points it at each scenario's servers in turn.
    """
    # The runners are imported only when needed: each pulls in its whole server.
    with ExitStack() as stack:
        if fleet_url is None:
            from banditlb.fleet.runner import start_fleet_process

            fleet = stack.enter_context(start_fleet_process(scenarios, seed=seed))
            fleet_url = fleet.control_url
        if lb_url is None:
            from banditlb.balancer.runner import start_lb_process

            upstreams = FleetControl(fleet_url).upstreams(scenarios[0])
            lb = stack.enter_context(start_lb_process(
                upstreams, strategy=strategy, data_dir=data_dir, fleet_url=fleet_url,
                port=lb_port, **lb_options))
            lb_url = lb.url
        yield Services(fleet_url, lb_url)
