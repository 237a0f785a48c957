"""Throughput side by side: banditlb (auto, one worker) vs nginx vs HAProxy in front of T1.

    nice .venv/bin/python -m bench.peers.throughput        # writes results/throughput.json

One run measures, for each proxy and for direct calls to the fleet: the added latency
(p50/p99 at a light fixed rate, over a direct call to the best T1 server) and the
maximum rate (open-loop steps of increasing rate; the highest one where errors stay
under 0.1%, answers keep up with the schedule and p99 stays under a bound). All
proxies run at once (idle ones cost nothing) and take turns at each rate. With two
cores, the proxies get core 0 and the generator shares core 1 with the fleet; the CPU
each side used is recorded so a rig-limited step can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.peers.configs import HaproxyTuning, NginxTuning, Site
from bench.peers.openloop import StepResult, fire_step
from bench.peers.processes import (
    PeerHandle,
    ensure_installed,
    free_port,
    log,
    pin,
    process_tree,
    start_banditlb,
    start_haproxy,
    start_nginx,
)

from banditlb.fleet.runner import start_fleet_process
from banditlb.fleet.scenario import load_scenario

RESULTS = Path(__file__).parent / "results"
SCENARIO = "T1"
RATES = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 11000, 15000)
STEP_S = 4.0
LATENCY_RATE = 100.0
LATENCY_S = 10.0
P99_BOUND_MS = 250.0
"""p99 above this (6x the fleet's own 40 ms tail) means requests are queueing."""
MAX_ERROR_PCT = 0.1
STEP_TRIES = 3
PAUSE_S = 1.0
MIN_OK_PCT = 85.0
"""Answers that must be 200: a proxy that answers 502 without forwarding is fast but
useless. Through any balancer with retries T1 gives over 90%; its best server alone 93%."""
BUSY_CORE = 0.8
"""Cores used at which a side counts as the one that ran out."""
MIN_KEEP_UP = 0.97
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by the trees of `pids`."""
    total = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def passes(step: StepResult) -> bool:
    return (step.error_pct <= MAX_ERROR_PCT and step.achieved_rps >= MIN_KEEP_UP
            * step.target_rps and step.p99_ms <= P99_BOUND_MS
            and 100.0 * step.ok >= MIN_OK_PCT * step.sent)


@dataclass
class Target:
    """Something to load: direct calls to the fleet, or a proxy in front of it."""

    name: str
    port: int
    proxy_pids: list[int]
    steps: list[dict] = field(default_factory=list)
    tries: list[dict] = field(default_factory=list)
    latency: dict | None = None

    @property
    def passing(self) -> bool:
        return all(s["passed"] for s in self.steps)

    def summary(self) -> dict:
        passed = [s for s in self.steps if s["passed"]]
        failed = [s for s in self.steps if not s["passed"]]
        best = max(passed, key=lambda s: s["target_rps"]) if passed else None
        first_failed = min(failed, key=lambda s: s["target_rps"]) if failed else None
        return {"name": self.name, "latency": self.latency, "steps": self.steps,
                "tries": self.tries, "max_rps": best["target_rps"] if best else 0.0,
                "limit": limit_of(first_failed, bool(self.proxy_pids)),
                "proxy_ms_per_1k": best["proxy_ms_per_1k"] if best and self.proxy_pids
                else None}


def measure(targets: list[Target], fleet_pids: list[int], log: Callable[[str], None]) -> None:
    """Latency at a light rate, then rising rates, every target at each rate in turn.

    Interleaving the targets spreads whatever else the shared machine does over all of
    them instead of one. A failing step is tried again (STEP_TRIES in all) before it
    counts; a target stops at its first counted failure, then one rate halfway back is
    tried. Every try is kept in the results.
    """

    def once(target: Target, rate: float, duration: float) -> dict:
        time.sleep(PAUSE_S)  # whatever the last step left queued drains first
        pids = target.proxy_pids
        before = (cpu_seconds(pids), cpu_seconds(fleet_pids), time.process_time())
        started = time.monotonic()
        result = asyncio.run(fire_step("127.0.0.1", target.port, rate, duration,
                                       seed=f"{target.name}{rate}"))
        elapsed = time.monotonic() - started
        after = (cpu_seconds(pids), cpu_seconds(fleet_pids), time.process_time())
        spent = [a - b for a, b in zip(after, before, strict=True)]
        used = [cpu / elapsed for cpu in spent]
        row = {**dataclasses.asdict(result), "achieved_rps": round(result.achieved_rps, 1),
               "error_pct": round(result.error_pct, 3),
               "ok_pct": round(100.0 * result.ok / result.sent, 1), "passed": passes(result),
               "proxy_cpu": round(used[0], 3), "fleet_cpu": round(used[1], 3),
               "generator_cpu": round(used[2], 3),
               "proxy_ms_per_1k": round(1e6 * spent[0] / max(1, result.answered), 1)}
        log(f"{target.name:>8}: {rate:>6g}/s -> {row['achieved_rps']:>8.1f}/s  p50 "
            f"{result.p50_ms:6.1f} p99 {result.p99_ms:7.1f} ms  errors "
            f"{row['error_pct']:.2f}%  200s {row['ok_pct']:.0f}%  cpu proxy {used[0]:.2f} "
            f"fleet {used[1]:.2f} gen {used[2]:.2f}  {'ok' if row['passed'] else 'FAIL'}")
        target.tries.append(row)
        return row

    def step(target: Target, rate: float, duration: float = STEP_S) -> dict:
        for _ in range(STEP_TRIES):
            row = once(target, rate, duration)
            if row["passed"]:
                break
        return row

    for target in targets:
        once(target, LATENCY_RATE, 2.0)  # warm-up: connections, first decisions
        target.latency = step(target, LATENCY_RATE, LATENCY_S)
    for rate in RATES:
        active = [t for t in targets if t.passing]
        if not active:
            break
        for target in active:
            target.steps.append(step(target, rate))
    for target in targets:
        passed = [s["target_rps"] for s in target.steps if s["passed"]]
        failed = [s["target_rps"] for s in target.steps if not s["passed"]]
        if passed and failed:
            target.steps.append(step(target, (max(passed) + min(failed)) / 2))


def limit_of(step: dict | None, has_proxy: bool) -> str:
    """What ran out at the first failing rate: the proxy's core, the rig's core, or neither
    (a stall from other work on the machine, or a limit that is not CPU)."""
    if step is None:
        return "none reached"
    if has_proxy and step["proxy_cpu"] >= BUSY_CORE:
        return "proxy CPU"
    if step["fleet_cpu"] + step["generator_cpu"] >= BUSY_CORE:
        return "rig CPU"
    return "not CPU-bound"


def start_proxy(kind: str, upstreams: list[str]) -> PeerHandle:
    if kind == "banditlb":
        return start_banditlb({SCENARIO: upstreams}, strategy="auto")
    site = [Site(SCENARIO, free_port(), upstreams)]
    if kind == "nginx":
        # No passive ejection here: at 1,000+ req/s T1's failures put every server out
        # for fail_timeout and nginx answers 502 without forwarding anything.
        return start_nginx(site, NginxTuning(max_fails=0))
    return start_haproxy(site, HaproxyTuning())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--proxies", default="banditlb,nginx,haproxy")
    args = parser.parse_args()

    versions = ensure_installed()
    two_cores = (os.cpu_count() or 1) >= 2
    proxy_cpu, rig_cpu = ("0", "1") if two_cores else ("0", "0")
    pin([os.getpid()], rig_cpu)
    servers = load_scenario(SCENARIO).servers
    best = max(range(len(servers)), key=lambda i: servers[i].success)
    with ExitStack() as stack:
        fleet = stack.enter_context(start_fleet_process(
            [SCENARIO], command_prefix=("taskset", "-c", rig_cpu)))
        upstreams = fleet.upstreams(SCENARIO)
        targets = [Target("direct", fleet.ports[SCENARIO][best], [])]
        for kind in args.proxies.split(","):
            proxy = stack.enter_context(start_proxy(kind, upstreams))
            pin(proxy.pids, proxy_cpu)
            port = int(proxy.urls[SCENARIO].rstrip("/").rsplit(":", 1)[1])
            targets.append(Target(kind, port, proxy.pids))
        measure(targets, [fleet.process.pid], log)
        runs = [target.summary() for target in targets]
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "cores": os.cpu_count(), "pinning": {"proxy": proxy_cpu, "generator": rig_cpu,
                                                "fleet": rig_cpu},
           "load_average": os.getloadavg(), "packages": versions, "scenario": SCENARIO,
           "direct_server": fleet.ports[SCENARIO][best] - fleet.ports[SCENARIO][0],
           "step_s": STEP_S, "step_tries": STEP_TRIES, "latency_rate": LATENCY_RATE,
           "latency_s": LATENCY_S,
           "p99_bound_ms": P99_BOUND_MS, "max_error_pct": MAX_ERROR_PCT,
           "min_ok_pct": MIN_OK_PCT, "busy_core": BUSY_CORE,
           "min_keep_up": MIN_KEEP_UP, "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "throughput.json").write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.results / 'throughput.json'}")


if __name__ == "__main__":
    main()
