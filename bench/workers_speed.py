"""Throughput of `banditlb lb --workers N` (the challenge path) in front of one fast
nginx upstream: one worker against two, on this machine's cores.

    .venv/bin/python bench/workers_speed.py   # ~3 min; writes bench/results/workers_speed.json

The same open-loop steps as the peer throughput benchmark (bench/peers/throughput.py).
One worker is pinned to core 0. Two workers share cores 0 and 1 with the load generator
and the upstream, which also need CPU. On two cores the pair therefore cannot show what
two free cores would give, so CPU per request is recorded beside the max rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.processes import free_port, log, pin, start_fast_upstream  # noqa: E402
from bench.peers.throughput import Target, measure  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    pin([os.getpid()], "1" if cores >= 2 else "0")
    data_dir = Path(tempfile.mkdtemp(prefix="banditlb-workers-"))
    with ExitStack() as stack:
        port = free_port()
        upstream = stack.enter_context(start_fast_upstream(port))
        pin(upstream.pids, "1" if cores >= 2 else "0")
        targets = []
        for n, cpus in ((1, "0"), (2, "0,1" if cores >= 2 else "0")):
            child = start_workers(n, f"127.0.0.1:{port}", data_dir / str(n), cpus)
            stack.callback(lambda c=child: (c.terminate(), c.wait(60), c.stdout.close()))
            targets.append(Target(f"{n} worker{'s' if n > 1 else ''}",
                                  int(child.url.rsplit(":", 1)[1]), [child.pid]))
        measure(targets, upstream.pids, log)
        runs = {t.name: t.summary() for t in targets}
    one = runs["1 worker"]["max_rps"] or None
    summary = {name: {"max_rps": r["max_rps"], "limit": r["limit"],
                      "vs_one": None if not one else round(r["max_rps"] / one, 2),
                      "proxy_ms_per_1k": r["proxy_ms_per_1k"]} for name, r in runs.items()}
    for name, row in summary.items():
        log(f"{name}: {row}")
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": cores,
           "load_average": os.getloadavg(), "summary": summary, "runs": runs}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
