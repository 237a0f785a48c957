"""Throughput of `banditlb lb --workers N` (the challenge path) in front of one fast
nginx upstream: one worker against two, on this machine's cores.

    .venv/bin/python bench/workers_speed.py   # ~3 min; writes bench/results/workers_speed.json
    .venv/bin/python bench/workers_speed.py --generator wrk   # ~1 min; workers_speed_wrk.json

`--generator wrk` loads each with wrk (C, closed loop, 64 connections, 10 s) instead of
the Python open-loop steps: a generator that costs little CPU leaves the cores to the
workers, which is what the 1 vs 2 comparison needs on two cores (installed with apt when
missing).

The same open-loop steps as the peer throughput benchmark (bench/peers/throughput.py).
One worker is pinned to core 0. Two workers share cores 0 and 1 with the load generator
and the upstream, which also need CPU. On two cores the pair therefore cannot show what
two free cores would give, so CPU per request is recorded beside the max rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.processes import (  # noqa: E402
    binary,
    ensure_installed,
    free_port,
    log,
    pin,
    start_fast_upstream,
)
from bench.peers.throughput import Target, cpu_seconds, measure  # noqa: E402

from banditlb.balancer.runner import READY_PREFIX  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "workers_speed.json"


def start_workers(n: int, upstream: str, data_dir: Path, cpus: str) -> subprocess.Popen:
    child = subprocess.Popen(["taskset", "-c", cpus, sys.executable, "-m", "banditlb", "lb",
                              "--upstreams", upstream, "--port", "0", "--workers", str(n),
                              "--data-dir", str(data_dir)], stdout=subprocess.PIPE, text=True)
    for line in child.stdout:
        if line.startswith(READY_PREFIX):
            child.url = line[len(READY_PREFIX):].strip()
            return child
    raise RuntimeError(f"banditlb lb --workers {n} did not start")


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"id": "abcdefghijklmnopqrstuvwx"}'
wrk.headers["Content-Type"] = "application/json"
"""
WRK_S, WRK_CONNECTIONS = 10, 64


def measure_wrk(targets: list[Target], cpus: str, workdir: Path) -> None:
    """Each target loaded by wrk for WRK_S seconds: its req/s, errors and proxy CPU."""
    ensure_installed(("wrk",))
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    for target in targets:
        before = cpu_seconds(target.proxy_pids)
        done = subprocess.run(["taskset", "-c", cpus, binary("wrk"), "-t1",
                               f"-c{WRK_CONNECTIONS}", f"-d{WRK_S}s", "-s", str(script),
                               f"http://127.0.0.1:{target.port}/"],
                              capture_output=True, text=True, check=True)
        used = cpu_seconds(target.proxy_pids) - before
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)[1])
        requests = int(re.search(r"(\d+) requests in", done.stdout)[1])
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
        errors = re.search(r"Socket errors: (.*)", done.stdout)
        target.steps.append({"target_rps": round(rps), "passed": True, "wrk": done.stdout,
                             "non_2xx": int(bad[1]) if bad else 0,
                             "socket_errors": errors[1] if errors else None,
                             "proxy_ms_per_1k": round(1e6 * used / max(1, requests), 1)})
        log(f"{target.name}: {rps:,.0f} req/s, {target.steps[-1]['non_2xx']} non-2xx, "
            f"proxy {target.steps[-1]['proxy_ms_per_1k']} ms CPU per 1,000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", choices=("python", "wrk"), default="python",
                        help="the open-loop Python steps, or wrk (closed loop, C)")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    if args.results is None:
        args.results = RESULTS if args.generator == "python" else \
            RESULTS.with_name("workers_speed_wrk.json")

    cores = os.cpu_count() or 1
    pin([os.getpid()], "1" if cores >= 2 else "0")
    data_dir = Path(tempfile.mkdtemp(prefix="banditlb-workers-"))
    with ExitStack() as stack:
        port = free_port()
        upstream = stack.enter_context(start_fast_upstream(port))
        pin(upstream.pids, "1" if cores >= 2 else "0")
        targets = []
        every = ",".join(map(str, range(cores)))
        pinned = ((1, "0"), (2, "0,1" if cores >= 2 else "0"))
        # with wrk the scheduler places everything: one worker can use one core at most,
        # two can use what wrk and the upstream leave of both
        placements = pinned if args.generator == "python" else ((1, every), (2, every))
        for n, cpus in placements:
            child = start_workers(n, f"127.0.0.1:{port}", data_dir / str(n), cpus)
            stack.callback(lambda c=child: (c.terminate(), c.wait(60), c.stdout.close()))
            targets.append(Target(f"{n} worker{'s' if n > 1 else ''}",
                                  int(child.url.rsplit(":", 1)[1]), [child.pid]))
        if args.generator == "wrk":
            pin(upstream.pids, every)
            measure_wrk(targets, every, data_dir)
        else:
            measure(targets, upstream.pids, log)
        runs = {t.name: t.summary() for t in targets}
    one = runs["1 worker"]["max_rps"] or None
    summary = {name: {"max_rps": r["max_rps"], "limit": r["limit"],
                      "vs_one": None if not one else round(r["max_rps"] / one, 2),
                      "proxy_ms_per_1k": r["proxy_ms_per_1k"]} for name, r in runs.items()}
    for name, row in summary.items():
        log(f"{name}: {row}")
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": cores,
           "generator": args.generator,
           "load_average": os.getloadavg(), "summary": summary, "runs": runs}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
