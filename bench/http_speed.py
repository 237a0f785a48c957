"""Speed of the http contract: banditlb forwarding any request vs nginx, one worker each,
in front of the same fast upstream (nginx answering `return 200`).

    .venv/bin/python bench/http_speed.py      # ~5 min; writes bench/results/http_speed.json

The same open-loop steps as the peer throughput benchmark (bench/peers/throughput.py:
rising rates, the highest one where errors stay under 0.1%, answers keep up and p99
stays under 250 ms). The proxies get core 0, taking turns; the load generator and the
upstream share core 1. Targets: the upstream direct, nginx proxying to it, banditlb's
challenge contract (POST / {"id"}) and its http contract, all with the same requests.
Reported: max req/s, the ratio to nginx, and p50 added over direct at 1,000 req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.configs import NginxTuning, Site  # noqa: E402
from bench.peers.processes import (  # noqa: E402
    ensure_installed,
    free_port,
    log,
    pin,
    start_fast_upstream,
    start_nginx,
)
from bench.peers.throughput import Target, measure  # noqa: E402

from banditlb.balancer.runner import start_lb_process  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "http_speed.json"
LATENCY_AT = 1000.0


def p50_at(run: dict, rate: float) -> float | None:
    rows = [s for s in run["steps"] if s["target_rps"] == rate and s["passed"]]
    return rows[0]["p50_ms"] if rows else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    versions = ensure_installed()
    proxy_cpu, rig_cpu = ("0", "1") if (os.cpu_count() or 1) >= 2 else ("0", "0")
    pin([os.getpid()], rig_cpu)
    data_dir = Path(tempfile.mkdtemp(prefix="banditlb-speed-"))
    with ExitStack() as stack:
        port = free_port()
        upstream = stack.enter_context(start_fast_upstream(port))
        pin(upstream.pids, rig_cpu)
        targets = [Target("direct", port, [])]
        nginx = stack.enter_context(start_nginx([Site("fast", free_port(),
                                                      [f"127.0.0.1:{port}"])],
                                                NginxTuning(max_fails=0)))
        pin(nginx.pids, proxy_cpu)
        targets.append(Target("nginx", int(nginx.urls["fast"].rstrip("/").rsplit(":", 1)[1]),
                              nginx.pids))
        for name, upstreams in (("challenge", [f"127.0.0.1:{port}"]),
                                ("http", [f"http://127.0.0.1:{port}"])):
            lb = stack.enter_context(start_lb_process(upstreams, strategy="auto",
                                                      data_dir=data_dir / name))
            pin([lb.process.pid], proxy_cpu)
            targets.append(Target(name, int(lb.url.rsplit(":", 1)[1]), [lb.process.pid]))
        measure(targets, upstream.pids, log)
        runs = {t.name: t.summary() for t in targets}
    nginx_rps = runs["nginx"]["max_rps"] or None
    direct_p50 = p50_at(runs["direct"], LATENCY_AT)
    summary = {}
    for name, run in runs.items():
        p50 = p50_at(run, LATENCY_AT)
        summary[name] = {
            "max_rps": run["max_rps"], "limit": run["limit"],
            "vs_nginx": None if not nginx_rps else round(run["max_rps"] / nginx_rps, 3),
            "p50_ms_at_1000": p50,
            "added_p50_ms_at_1000": None if p50 is None or direct_p50 is None
            else round(p50 - direct_p50, 3),
            "proxy_ms_per_1k": run["proxy_ms_per_1k"]}
        log(f"{name:>9}: {run['max_rps']:>7g} req/s ({run['limit']}), "
            f"x nginx {summary[name]['vs_nginx']}, p50 at 1,000/s {p50} ms")
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
           "pinning": {"proxy": proxy_cpu, "generator_and_upstream": rig_cpu},
           "load_average": os.getloadavg(), "packages": versions, "summary": summary,
           "runs": runs}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
