"""What the balancer adds to a request, and how many requests per second one worker passes.

A fleet process serves T1; `banditlb lb` (strategy v4, recording to a temporary store)
runs in front of it as its own process. The machine has two cores: the balancer
gets core 0 to itself, the fleet and this load generator share core 1.

Latency, open loop (a request leaves every 1/rate seconds whatever happened to the
earlier ones), for each rate: direct calls to one T1 server for reference, then the
same rate through the balancer. The balancer's *added* latency is measured per
request: what the client saw minus the time its upstream attempts took as the
balancer timed them (read back from the store), so the fleet's own random latency
(about 2 ms median, 1 % at 40 ms) and the retries cancel out. Percentiles come
from every sample of the run.

Capacity, closed loop: --connections keep-alive connections each send the next
request as soon as the previous answer arrives, for --capacity-s seconds, through
the balancer and then straight to the fleet's ten servers. The balancer's CPU share
shows whether it was the bottleneck; requests per balancer CPU-second is what one
worker passes with a core of its own (CPU time is counted at the 10 ms tick, and
other work on a shared machine inflates it less than wall-clock figures). Last,
the CPU cost per request of the balancer's own upstream client and of aiohttp's,
each driving the fleet from this process.

    .venv/bin/python bench/proxy_latency.py [--rates 10,500] [--durations 30,10]
        [--capacity-s 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import urllib.request

import aiohttp

from banditlb.balancer.config import resolve_upstreams
from banditlb.balancer.runner import start_lb_process
from banditlb.balancer.upstream import UpstreamClient
from banditlb.fleet.runner import new_event_loop, start_fleet_process
from banditlb.store import Store

WARMUP_RATE, WARMUP_S = 200.0, 3.0


def client_for(address: str) -> UpstreamClient:
    """The balancer's own pooled client speaks exactly this protocol: POST / {"id": ...}."""
    return UpstreamClient(0, resolve_upstreams([address])[0])


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_loop(address: str, rate: float, duration_s: float,
                    prefix: str) -> dict[str, tuple[int, float]]:
    """id -> (status, seconds) for rate*duration requests sent on schedule."""
    client = client_for(address)
    answers: dict[str, tuple[int, float]] = {}

    async def one(request_id: str) -> None:
        attempt = await client.send(request_id, 30.0)
        answers[request_id] = (attempt.status or 0, attempt.latency_s)

    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for n in range(int(rate * duration_s)):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(f"{prefix}{n:0{24 - len(prefix)}d}")))
    await asyncio.gather(*tasks)
    client.close()
    return answers


async def closed_loop(addresses: list[str], connections: int, duration_s: float,
                      prefix: str) -> tuple[int, float]:
    """(answers, elapsed seconds) with `connections` requests always in flight."""
    clients = [client_for(a) for a in addresses]
    count = 0
    until = time.perf_counter() + duration_s

    async def worker(k: int) -> None:
        nonlocal count
        client, n = clients[k % len(clients)], 0
        while time.perf_counter() < until:
            await client.send(f"{prefix}{k:03d}{n:0{21 - len(prefix)}d}", 30.0)
            count, n = count + 1, n + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(connections)))
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    return count, elapsed


async def client_cpu_per_request(addresses: list[str], connections: int,
                                 duration_s: float) -> dict[str, float]:
    """CPU seconds this process spends per request with each candidate upstream client,
    closed loop against the fleet: why the balancer has its own small client."""
    spent = {}
    started = time.process_time()
    count, _ = await closed_loop(addresses, connections, duration_s, "own")
    spent["banditlb UpstreamClient"] = (time.process_time() - started) / count
    urls = [f"http://{a}/" for a in addresses]
    count, until = 0, time.perf_counter() + duration_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(k: int) -> None:
            nonlocal count
            n = 0
            while time.perf_counter() < until:
                request_id = f"aio{k:03d}{n:018d}"
                async with session.post(urls[k % len(urls)], json={"id": request_id}) as r:
                    await r.read()
                count, n = count + 1, n + 1

        started = time.process_time()
        await asyncio.gather(*(worker(k) for k in range(connections)))
    spent["aiohttp ClientSession + TCPConnector"] = (time.process_time() - started) / count
    return spent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def call(method: str, url: str) -> dict:
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None,
                                     method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def upstream_seconds(data_dir: str, run_id: int) -> dict[str, float]:
    """request id -> total time of its upstream attempts, as the balancer measured them."""
    total: dict[str, float] = {}
    with Store(data_dir) as store:
        for row in store.attempts(run_id):
            total[row["request_id"]] = total.get(row["request_id"], 0.0) + \
                row["latency_ms"] / 1000
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,500", help="open-loop rates, req/s")
    parser.add_argument("--durations", default="30,10", help="seconds per rate")
    parser.add_argument("--capacity-s", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    durations = [float(d) for d in args.durations.split(",")]

    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    loop = new_event_loop()
    with tempfile.TemporaryDirectory() as data_dir, \
            start_fleet_process(["T1"], seed=0,
                                command_prefix=("taskset", "-c", "1") if pinned else ()
                                ) as fleet, \
            start_lb_process(fleet.upstreams("T1"), strategy="v4", data_dir=data_dir,
                             scenario="T1") as lb:
        if pinned:
            os.sched_setaffinity(lb.process.pid, {0})
            os.sched_setaffinity(0, {1})
        lb_address = lb.url.removeprefix("http://")
        direct_address = fleet.upstreams("T1")[3]
        print(f"pinned: balancer on core 0, fleet + load generator on core 1: {pinned}")
        loop.run_until_complete(open_loop(lb_address, WARMUP_RATE, WARMUP_S, "warm"))
        run_id = call("GET", f"{lb.url}/stats")["run_id"]
        for rate, duration in zip(rates, durations, strict=True):
            direct = loop.run_until_complete(open_loop(direct_address, rate, duration,
                                                       f"d{int(rate)}x"))
            cpu = cpu_seconds(lb.process.pid)
            through = loop.run_until_complete(open_loop(lb_address, rate, duration,
                                                        f"b{int(rate)}x"))
            cpu_per_request = (cpu_seconds(lb.process.pid) - cpu) / len(through)
            call("POST", f"{lb.url}/admin/flush")
            upstream = upstream_seconds(data_dir, run_id)
            added = [seconds - upstream[i] for i, (_, seconds) in through.items()]
            direct_s = [s for _, s in direct.values()]
            through_s = [s for _, s in through.values()]
            statuses = sorted({status for status, _ in through.values()})
            print(f"{rate:g} req/s x {duration:g} s: direct p50 {pct(direct_s, .5) * 1e3:.3f} "
                  f"p99 {pct(direct_s, .99) * 1e3:.3f} ms | through the balancer p50 "
                  f"{pct(through_s, .5) * 1e3:.3f} p99 {pct(through_s, .99) * 1e3:.3f} ms "
                  f"(statuses {statuses}) | added p50 {pct(added, .5) * 1e3:.3f} "
                  f"p99 {pct(added, .99) * 1e3:.3f} ms over {len(added)} requests | balancer "
                  f"CPU {cpu_per_request * 1e6:.0f} us per request")
        cpu, rss_before = cpu_seconds(lb.process.pid), rss_mib(lb.process.pid)
        passed, elapsed = loop.run_until_complete(
            closed_loop([lb_address], args.connections, args.capacity_s, "cap"))
        lb_cpu = cpu_seconds(lb.process.pid) - cpu
        rss_after = rss_mib(lb.process.pid)
        direct_n, direct_elapsed = loop.run_until_complete(
            closed_loop(fleet.upstreams("T1"), args.connections, args.capacity_s, "dir"))
        stats = call("GET", f"{lb.url}/stats")
        clients = loop.run_until_complete(client_cpu_per_request(
            fleet.upstreams("T1"), args.connections, args.capacity_s / 2))
    loop.close()
    print(f"capacity, {args.connections} connections: through the balancer "
          f"{passed / elapsed:,.0f} req/s (balancer CPU {lb_cpu / elapsed:.0%} of a core = "
          f"{passed / lb_cpu:,.0f} requests per balancer CPU-second, "
          f"{stats['attempts'] / max(1, stats['requests']):.2f} attempts per request); "
          f"straight to the fleet {direct_n / direct_elapsed:,.0f} req/s")
    for name, seconds in clients.items():
        print(f"upstream client CPU per request ({args.connections} connections): {name} "
              f"{seconds * 1e6:.0f} us")
    print(f"balancer RSS {rss_before:.1f} MiB before the capacity run, {rss_after:.1f} MiB "
          f"after {passed:,} more requests")


if __name__ == "__main__":
    main()
