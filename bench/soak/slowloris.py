"""Slowloris against the balancer: connections that never finish their request head.

500 connections each send a request line and then one header byte every 10 s for
60 s, while valid requests arrive at 10 req/s. Measured: how many of the slow
connections the balancer closed (a header timeout would close them), its descriptors
and RSS before and during, and what the valid requests got.

    .venv/bin/python bench/soak/slowloris.py [--connections 500] [--duration-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile

from probe import sample

from banditlb.balancer.runner import start_lb_process
from banditlb.fleet.runner import new_event_loop, start_fleet_process
from banditlb.harness import fire, make_ids

TRICKLE_EVERY_S = 10.0


async def slow_client(port: int, duration_s: float) -> bool:
    """True if the balancer closed the connection before `duration_s` was over."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: lb\r\nX-Slow: ")
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    try:
        while loop.time() < end:
            try:
                if await asyncio.wait_for(reader.read(1024), TRICKLE_EVERY_S) == b"":
                    return True
            except TimeoutError:
                writer.write(b"a")
                await writer.drain()
        return False
    except ConnectionError:
        return True
    finally:
        writer.close()


async def attack(lb_url: str, pid: int, connections: int, duration_s: float) -> dict:
    port = int(lb_url.rsplit(":", 1)[1])
    before = sample(pid, 0.0)
    slow = [asyncio.create_task(slow_client(port, duration_s)) for _ in range(connections)]
    await asyncio.sleep(1.0)
    during = sample(pid, 1.0)
    valid = (await fire(lb_url + "/", make_ids(int(10 * (duration_s - 5)), "loris"),
                        10.0)).rows
    closed = await asyncio.gather(*slow)
    latencies = sorted(r.latency_ms for r in valid)
    return {
        "slow_connections": connections, "held_s": duration_s,
        "closed_by_balancer": sum(closed),
        "fds_before": before.fds, "fds_during": during.fds,
        "rss_mb_before": round(before.rss_kb / 1024, 1),
        "rss_mb_during": round(during.rss_kb / 1024, 1),
        "valid_requests": len(valid),
        "valid_statuses": {str(s): sum(r.status == s for r in valid)
                           for s in sorted({r.status for r in valid})},
        "valid_p99_ms": round(statistics.quantiles(latencies, n=100)[98], 1),
    }


def run_slowloris(connections: int, duration_s: float) -> dict:
    with start_fleet_process(["T1"], seed=0) as fleet, \
            tempfile.TemporaryDirectory(prefix="loris-") as tmp, \
            start_lb_process(fleet.upstreams("T1"), data_dir=tmp) as lb:
        loop = new_event_loop()
        try:
            return loop.run_until_complete(attack(lb.url, lb.process.pid, connections,
                                                  duration_s))
        finally:
            loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--duration-s", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(run_slowloris(args.connections, args.duration_s), indent=1))


if __name__ == "__main__":
    main()
