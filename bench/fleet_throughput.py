"""How many requests per second one fleet process serves, and what each id costs it in memory.

The fleet runs as a child process pinned to core 1 (`taskset -c 1`), this driver on
core 0, so the figure is the fleet's own single-core throughput. N keep-alive
connections each send one request, wait for the answer, send the next; the
servers' modelled latency (about 2 ms median) is hidden by the concurrency.

Phase 1 drives T1 for --duration seconds (throughput, latency percentiles).
Phase 2 keeps going until --requests ids were sent in total, every id new, and
compares the fleet's RSS before and after: the scoreboard keeps one record per
id seen within its TTL (600 s), so this is the memory cost of a live id. The
same cost is measured in-process with tracemalloc on a bare Scoreboard.

    .venv/bin/python bench/fleet_throughput.py [--duration 10] [--connections 64]
        [--requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
import tracemalloc
import urllib.request
from array import array
from collections import Counter

from banditlb.fleet.runner import new_event_loop, start_fleet_process
from banditlb.fleet.scoreboard import Scoreboard

REQUEST = b"POST / HTTP/1.1\r\nHost: fleet\r\nContent-Length: 24\r\n\r\n"


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    """Ids to send (each new), and what came back."""

    def __init__(self, first_id: int, limit: int, until: float):
        self.next = first_id
        self.limit = limit
        self.until = until
        self.latencies = array("d")
        self.statuses: Counter[int] = Counter()

    def take_id(self) -> bytes | None:
        if self.next >= self.limit or time.perf_counter() >= self.until:
            return None
        self.next += 1
        return b"bench%019d" % self.next


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time."""

    def __init__(self, load: Load, closed: asyncio.Future):
        self.load = load
        self.closed = closed
        self.buffer = b""
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        request_id = self.load.take_id()
        if request_id is None:
            self.transport.close()
            return
        self.sent_at = time.perf_counter()
        self.transport.write(REQUEST + request_id)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        length_at = self.buffer.index(b"Content-Length: ") + 16
        length = int(self.buffer[length_at:self.buffer.index(b"\r\n", length_at)])
        if len(self.buffer) < head_end + 4 + length:
            return
        self.load.statuses[int(self.buffer[9:12])] += 1
        self.load.latencies.append(time.perf_counter() - self.sent_at)
        self.buffer = self.buffer[head_end + 4 + length:]
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def drive(ports: list[int], connections: int, load: Load) -> float:
    """Run the load over `connections` connections spread over `ports`; elapsed seconds."""
    loop = asyncio.get_running_loop()
    closed = [loop.create_future() for _ in range(connections)]
    start = time.perf_counter()
    for i, done in enumerate(closed):
        await loop.create_connection(lambda done=done: Connection(load, done), "127.0.0.1",
                                     ports[i % len(ports)])
    await asyncio.gather(*closed)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def scoreboard_bytes_per_id(ids: int = 100_000) -> float:
    """tracemalloc's count of what `ids` live ids add to a Scoreboard."""
    board = Scoreboard()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(ids):
        board.record(f"mem{n:021d}", 4000, 200, n * 1e-4)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of phase 1")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=200_000,
                        help="ids sent in total (phases 1 and 2) for the memory check")
    args = parser.parse_args()

    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    prefix = ("taskset", "-c", "1") if pinned else ()
    with start_fleet_process(["T1"], seed=0, command_prefix=prefix) as fleet:
        if pinned:
            os.sched_setaffinity(0, {0})
        pid = fleet.process.pid
        ports = fleet.ports["T1"]
        rss_start = rss_bytes(pid)
        loop = new_event_loop()
        try:
            phase1 = Load(0, args.requests, time.perf_counter() + args.duration)
            cpu_start = cpu_seconds(pid)
            elapsed1 = loop.run_until_complete(drive(ports, args.connections, phase1))
            fleet_cpu = cpu_seconds(pid) - cpu_start
            phase2 = Load(phase1.next, args.requests, float("inf"))
            elapsed2 = loop.run_until_complete(drive(ports, args.connections, phase2))
        finally:
            loop.close()
        rss_end = rss_bytes(pid)
        with urllib.request.urlopen(f"{fleet.control_url}/score", timeout=10) as response:
            ids_seen = json.loads(response.read())["scenarios"]["T1"]["ids_seen"]

    latencies = sorted(phase1.latencies)
    sent = len(phase1.latencies) + len(phase2.latencies)
    print(f"pinned: fleet on core 1, driver on core 0: {pinned}")
    print(f"phase 1: {len(latencies)} requests in {elapsed1:.2f} s over {args.connections} "
          f"connections = {len(latencies) / elapsed1:,.0f} req/s; "
          f"p50 {percentile(latencies, 0.5) * 1e3:.2f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1e3:.2f} ms; statuses {dict(phase1.statuses)}")
    print(f"fleet CPU in phase 1: {fleet_cpu:.2f} s ({fleet_cpu / elapsed1:.0%} of one core) = "
          f"{len(latencies) / fleet_cpu:,.0f} requests per fleet CPU-second")
    print(f"phase 2: {len(phase2.latencies)} requests in {elapsed2:.2f} s = "
          f"{len(phase2.latencies) / elapsed2:,.0f} req/s")
    print(f"ids sent {sent}, fleet ids_seen {ids_seen}")
    print(f"fleet RSS {rss_start / 2**20:.1f} MiB -> {rss_end / 2**20:.1f} MiB: "
          f"{(rss_end - rss_start) / max(1, ids_seen):.0f} bytes per live id")
    print(f"Scoreboard alone (tracemalloc): {scoreboard_bytes_per_id():.0f} bytes per live id")


if __name__ == "__main__":
    main()
