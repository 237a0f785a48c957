"""Throughput side by side: banditlb (auto, one worker) vs nginx vs HAProxy in front of T1.

    nice .venv/bin/python -m bench.peers.throughput        # writes results/throughput.json

One run measures, for each proxy and for direct calls to the fleet: the added latency
(p50/p99 at a light fixed rate, over a direct call to the best T1 server) and the
maximum rate (open-loop steps of increasing rate; the highest one where errors stay
under 0.1%, answers keep up with the schedule and p99 stays under a bound). With two
cores, the proxy gets core 0 alone and the generator shares core 1 with the fleet;
the CPU each side used is recorded so a rig-limited step can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.peers.configs import HaproxyTuning, NginxTuning, Site
from bench.peers.openloop import StepResult, fire_step
from bench.peers.processes import (
    PeerHandle,
    ensure_installed,
    free_port,
    pin,
    process_tree,
    start_banditlb,
    start_haproxy,
    start_nginx,
)

from banditlb.fleet.runner import start_fleet_process
from banditlb.fleet.scenario import load_scenario
from banditlb.harness.control import FleetControl

RESULTS = Path(__file__).parent / "results"
SCENARIO = "T1"
RATES = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 11000, 15000)
STEP_S = 4.0
LATENCY_RATE = 100.0
LATENCY_S = 10.0
P99_BOUND_MS = 250.0
"""p99 above this (6x the fleet's own 40 ms tail) means requests are queueing."""
MAX_ERROR_PCT = 0.1
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
            * step.target_rps and step.p99_ms <= P99_BOUND_MS)


def measure(name: str, port: int, proxy_pids: list[int], fleet_pids: list[int],
            log: Callable[[str], None]) -> dict:
    """Latency at a light rate, then steps up to the first failing rate (and one between)."""

    def step(rate: float, duration: float) -> dict:
        before = (cpu_seconds(proxy_pids), cpu_seconds(fleet_pids), time.process_time())
        result = asyncio.run(fire_step("127.0.0.1", port, rate, duration, seed=f"{name}{rate}"))
        after = (cpu_seconds(proxy_pids), cpu_seconds(fleet_pids), time.process_time())
        used = [(a - b) / duration for a, b in zip(after, before, strict=True)]
        row = {**dataclasses.asdict(result), "achieved_rps": round(result.achieved_rps, 1),
               "error_pct": round(result.error_pct, 3), "passed": passes(result),
               "proxy_cpu": round(used[0], 3), "fleet_cpu": round(used[1], 3),
               "generator_cpu": round(used[2], 3)}
        log(f"{name}: {rate:>6g}/s -> {row['achieved_rps']:>8.1f}/s  p50 {result.p50_ms:6.1f} "
            f"p99 {result.p99_ms:7.1f} ms  errors {row['error_pct']:.2f}%  cpu proxy "
            f"{used[0]:.2f} fleet {used[1]:.2f} gen {used[2]:.2f}  "
            f"{'ok' if row['passed'] else 'FAIL'}")
        return row

    step(LATENCY_RATE, 2.0)  # warm-up: connections, the balancer's first decisions
    latency = step(LATENCY_RATE, LATENCY_S)
    steps = []
    for rate in RATES:
        steps.append(step(rate, STEP_S))
        if not steps[-1]["passed"]:
            break
    passed = [s for s in steps if s["passed"]]
    failed = [s for s in steps if not s["passed"]]
    if passed and failed:
        middle = (passed[-1]["target_rps"] + failed[0]["target_rps"]) / 2
        steps.append(step(middle, STEP_S))
        passed = [s for s in steps if s["passed"]]
    best = max(passed, key=lambda s: s["target_rps"]) if passed else None
    return {"name": name, "latency": latency, "steps": steps,
            "max_rps": best["target_rps"] if best else 0.0,
            "rig_limited": not failed,
            "proxy_cpu_per_1k": round(1000 * best["proxy_cpu"] / best["achieved_rps"], 4)
            if best and proxy_pids else None}


def start_proxy(kind: str, upstreams: list[str]) -> PeerHandle:
    if kind == "banditlb":
        return start_banditlb({SCENARIO: upstreams}, strategy="auto")
    site = [Site(SCENARIO, free_port(), upstreams)]
    if kind == "nginx":
        return start_nginx(site, NginxTuning())
    return start_haproxy(site, HaproxyTuning())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--proxies", default="banditlb,nginx,haproxy")
    args = parser.parse_args()

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    versions = ensure_installed()
    two_cores = (os.cpu_count() or 1) >= 2
    proxy_cpu, rig_cpu = ("0", "1") if two_cores else ("0", "0")
    pin([os.getpid()], rig_cpu)
    servers = load_scenario(SCENARIO).servers
    best = max(range(len(servers)), key=lambda i: servers[i].success)
    with start_fleet_process([SCENARIO], command_prefix=("taskset", "-c", rig_cpu)) as fleet:
        control = FleetControl(fleet.control_url)
        upstreams = fleet.upstreams(SCENARIO)
        fleet_pids = [fleet.process.pid]
        runs = [measure("direct", fleet.ports[SCENARIO][best], [], fleet_pids, log)]
        for kind in args.proxies.split(","):
            control.reset(0)
            with start_proxy(kind, upstreams) as proxy:
                pin(proxy.pids, proxy_cpu)
                port = int(proxy.urls[SCENARIO].rstrip("/").rsplit(":", 1)[1])
                runs.append(measure(kind, port, proxy.pids, fleet_pids, log))
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "cores": os.cpu_count(), "pinning": {"proxy": proxy_cpu, "generator": rig_cpu,
                                                "fleet": rig_cpu},
           "load_average": os.getloadavg(), "packages": versions, "scenario": SCENARIO,
           "direct_server": fleet.ports[SCENARIO][best] - fleet.ports[SCENARIO][0],
           "step_s": STEP_S, "latency_rate": LATENCY_RATE, "latency_s": LATENCY_S,
           "p99_bound_ms": P99_BOUND_MS, "max_error_pct": MAX_ERROR_PCT,
           "min_keep_up": MIN_KEEP_UP, "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "throughput.json").write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.results / 'throughput.json'}")


if __name__ == "__main__":
    main()
