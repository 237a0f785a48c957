"""Live load on the balancer in front of a fleet: the 1,000 req/s burst and the 10 req/s soak.

A fleet process serves the scenarios; one `banditlb lb` process per (scenario, strategy)
records to a temporary store. The client is open loop (request n leaves at n/rps
whatever happened to the others) over pooled keep-alive connections, cheap enough to
keep a 1,000 req/s schedule on a shared 2-core machine. Every second the balancers'
RSS, descriptors and CPU are sampled.

Verdicts, per balancer. A 502 (gave up) or 503 (no upstream usable) is the fleet's
doing and counted apart; anything else that is not a 200 is the balancer's: another
status, a refused or reset connection, no answer within the deadline plus a guard.
A deadline miss is an answer that came later than the balancer's deadline.

    .venv/bin/python bench/soak/live.py burst   # 1,000 req/s for 60 s, v4 on T1
    .venv/bin/python bench/soak/live.py soak    # 10 req/s for 5 min, v4 on T1 and auto on T3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from probe import Sample, growth, sample

from banditlb.balancer.config import resolve_upstreams
from banditlb.balancer.runner import LbHandle, start_lb_process
from banditlb.balancer.upstream import UpstreamClient
from banditlb.fleet.runner import new_event_loop, start_fleet_process
from banditlb.harness import make_ids
from banditlb.outcomes import Attempt, Outcome
from banditlb.procinfo import accepted_connections

DEADLINE_MS = 5000.0
GUARD_S = 2.0
"""A request unanswered DEADLINE + GUARD after it left counts as no answer."""
IDLE_S = 2.0


@dataclass(frozen=True)
class Target:
    scenario: str
    strategy: str


PRESETS = {
    "burst": dict(rps=1000.0, duration_s=60.0, warmup_s=10.0, targets=[Target("T1", "v4")]),
    "soak": dict(rps=10.0, duration_s=300.0, warmup_s=30.0,
                 targets=[Target("T1", "v4"), Target("T3", "auto")]),
}


class LoadClient(UpstreamClient):
    """The balancer's own pooled client as a cheap load generator, with idle connections
    dropped after IDLE_S. The balancer closes keep-alive connections idle for 5 s; a
    client that reuses one at that very moment loses the request (a race every keep-alive
    client must avoid by expiring first, not an error of the balancer)."""

    def _release(self, conn, keep_alive: bool) -> None:
        conn.idle_since = time.monotonic()
        super()._release(conn, keep_alive)

    async def send(self, request_id: str, timeout_s: float) -> Attempt:
        stale = time.monotonic() - IDLE_S
        while self._idle and self._idle[0].idle_since < stale:  # oldest first
            self._idle.popleft().close()
        return await super().send(request_id, timeout_s)


async def open_loop(lb: LbHandle, rps: float, duration_s: float, seed: str) -> list[Attempt]:
    """One request every 1/rps seconds for `duration_s`; the client's view of each."""
    (address,) = resolve_upstreams([lb.url.removeprefix("http://")])
    client = LoadClient(0, address)
    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for n, request_id in enumerate(make_ids(int(rps * duration_s), seed)):
        delay = start + n / rps - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(client.send(request_id, DEADLINE_MS / 1000 + GUARD_S)))
    answers = await asyncio.gather(*tasks)
    client.close()
    return answers


async def sample_every_second(pids: dict[str, int], samples: dict[str, list[Sample]],
                              machine: dict, stop: asyncio.Event) -> None:
    """Every process in `pids` once a second; the machine's load and this loop's lag."""
    started = time.monotonic()
    loads, lags = [], []
    while not stop.is_set():
        for name, pid in pids.items():
            samples[name].append(sample(pid, time.monotonic() - started))
        with open("/proc/loadavg") as loadavg:
            loads.append(float(loadavg.read().split()[0]))
        woke = time.monotonic()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        lags.append(time.monotonic() - woke - 1.0)
    machine["load_1min_max"] = max(loads)
    machine["client_loop_lag_max_ms"] = round(1000 * max(lags[:-1] or [0.0]), 1)


def verdicts(answers: list[Attempt]) -> dict:
    statuses = Counter(a.status for a in answers if a.status is not None)
    no_answer = Counter(a.outcome.value for a in answers if a.status is None)
    own_errors = sum(n for status, n in statuses.items() if status not in (200, 502, 503))
    latencies = sorted(a.latency_s * 1000 for a in answers if a.status is not None)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "sent": len(answers),
        "ok_200": statuses[200],
        "gave_up_502": statuses[502],
        "unavailable_503": statuses[503],
        "balancer_errors": own_errors + sum(no_answer.values()),
        "no_answer": dict(no_answer),
        "other_statuses": {s: n for s, n in statuses.items() if s not in (200, 502, 503)},
        "deadline_misses": sum(a.outcome is not Outcome.CONN_ERROR
                               and a.latency_s * 1000 > DEADLINE_MS for a in answers),
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }


def stats_of(lb: LbHandle) -> dict:
    with urllib.request.urlopen(lb.url + "/stats", timeout=10) as reply:
        return json.loads(reply.read())


def own_view(stats: dict) -> dict:
    """The balancer's own timing of each request (routing only, not its accept queue)."""
    latency = stats["latency_ms"]
    lows = [0.0, *latency["bounds"]]
    return {"balancer_counted": stats["requests"], "recording": stats["recording"],
            "dropped": stats["dropped"], "balancer_p50_ms": latency["p50"],
            "balancer_p99_ms": latency["p99"],
            "balancer_over_deadline": sum(n for low, n in zip(lows, latency["counts"],
                                                              strict=True)
                                          if low >= DEADLINE_MS)}


def connections_left(lb: LbHandle) -> int:
    """Client connections the balancer still holds once the client closed them all."""
    port = int(lb.url.rsplit(":", 1)[1])
    for _ in range(50):
        left = accepted_connections(lb.process.pid, port)
        if not left:
            break
        time.sleep(0.1)
    return left


def run_live(targets: list[Target], rps: float, duration_s: float, warmup_s: float) -> list[dict]:
    """Load every target's balancer at `rps` for `duration_s`; one result per target."""
    scenarios = sorted({t.scenario for t in targets})
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        fleet = stack.enter_context(start_fleet_process(scenarios, seed=0))
        lbs = [stack.enter_context(start_lb_process(
            fleet.upstreams(t.scenario), strategy=t.strategy, data_dir=data_dir / t.strategy,
            scenario=t.scenario, deadline_ms=DEADLINE_MS)) for t in targets]
        pids = {f"lb{i}": lb.process.pid for i, lb in enumerate(lbs)}
        pids |= {"fleet": fleet.process.pid, "client": os.getpid()}
        samples = {name: [] for name in pids}
        machine: dict = {}

        async def everything() -> list[list[Attempt]]:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_every_second(pids, samples, machine, stop))
            answers = await asyncio.gather(*(open_loop(lb, rps, duration_s, f"{t}")
                                             for lb, t in zip(lbs, targets, strict=True)))
            stop.set()
            await sampler
            return answers

        loop = new_event_loop()
        try:
            started = time.monotonic()
            all_answers = loop.run_until_complete(everything())
            wall = time.monotonic() - started
        finally:
            loop.close()
        cpu = {name: round(s[-1].cpu_s - s[0].cpu_s, 1) for name, s in samples.items()}
        left = [connections_left(lb) for lb in lbs]
        results = []
        for i, (lb, target, answers) in enumerate(zip(lbs, targets, all_answers, strict=True)):
            results.append({
                "scenario": target.scenario, "strategy": target.strategy, "rps": rps,
                "duration_s": duration_s, "wall_s": round(wall, 1), **verdicts(answers),
                **own_view(stats_of(lb)), **growth(samples[f"lb{i}"], warmup_s),
                "fleet_cpu_s": cpu["fleet"], "client_cpu_s": cpu["client"],
                "client_connections_left": left[i], **machine})
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset", choices=PRESETS)
    parser.add_argument("--duration-s", type=float, help="override the preset's duration")
    args = parser.parse_args()
    preset = dict(PRESETS[args.preset])
    if args.duration_s:
        preset["duration_s"] = args.duration_s
        preset["warmup_s"] = min(preset["warmup_s"], args.duration_s / 6)
    print(json.dumps(run_live(**preset), indent=1))


if __name__ == "__main__":
    main()
