"""Four balancer replicas in front of one fleet: alone, isolated, or sharing through Redis.

    .venv/bin/python bench/replicas.py   # ~15 min; writes bench/results/replicas.json

The fleet's limits are global (one fleet process serves every replica), scaled by
the number of replicas so that R replicas at R x 10 req/s find the fleet as scarce
as one balancer at 10 req/s finds T2 and T3 (`banditlb fleet --capacity-scale R`).
Per fleet class and seed, three setups take the same ids at the same send times,
R x 10 req/s in all (uniform arrivals), the fleet reset with the seed before each:

- one: a single `banditlb lb --strategy auto` takes every id;
- isolated: R processes, ids spread round-robin over them, each learning alone;
- shared: the same R processes with `--shared-state` to one local redis-server.

Scores are the fleet's ground truth per 100 requests (penalty weight 1, 3 free
attempts), with a 95% CI over the seeds; each process starts fresh for each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grid.section import REPLICAS, replace_section  # noqa: E402
from bench.peers.processes import ensure_installed, free_port, log, start_redis  # noqa: E402

from banditlb.balancer.runner import start_lb_process  # noqa: E402
from banditlb.fleet.runner import start_fleet_process  # noqa: E402
from banditlb.harness import NO_ANSWER, fire, make_ids  # noqa: E402
from banditlb.harness.control import FleetControl  # noqa: E402
from banditlb.shared.config import SharedConfig  # noqa: E402
from banditlb.stats import mean_ci95, percentile  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "replicas.json"
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
DISCUSSION = Path(__file__).parent / "replicas_discussion.md"
"""What the figures show, written by hand after a run (the section includes it)."""
SETUPS = ("one", "isolated", "shared")
RATE_PER_REPLICA = 10.0


def one_run(fleet: FleetControl, upstreams: list[str], setup: str, replicas: int, seed: int,
            requests: int, redis_url: str | None, sync_ms: float, data_dir: Path,
            scenario: str) -> dict:
    count = 1 if setup == "one" else replicas
    # a pool of its own per run, so no run reads another's evidence
    shared = SharedConfig(redis_url, f"bench-{scenario}-{seed}-{time.time_ns()}",
                          sync_ms) if setup == "shared" else None
    with ExitStack() as stack:
        handles = [stack.enter_context(start_lb_process(
            upstreams, strategy="auto", data_dir=data_dir / f"{setup}-{seed}-{k}",
            seed=seed + k, shared=shared)) for k in range(count)]
        time.sleep(0.5)  # every replica reads the stream before the first id
        fleet.reset(seed)
        ids = make_ids(requests, seed)
        fired = asyncio.run(fire([f"{h.url}/" for h in handles], ids,
                                 RATE_PER_REPLICA * replicas, seed=seed, timeout_s=15.0))
    truth = fleet.scores()[scenario]
    latencies = sorted(r.latency_ms for r in fired.rows if r.status != NO_ANSWER)
    return {"setup": setup, "seed": seed, "replicas": count, "requests": requests,
            "score_per_100": 100.0 * truth["score"] / requests,
            "accepted": truth["ids_accepted"], "attempts": truth["attempts"],
            "penalized": truth["penalized_attempts"], "rate_limited": truth["rate_limited"],
            "no_answer": sum(r.status == NO_ANSWER for r in fired.rows),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "send_lag_ms": round(fired.send_lag_ms, 1)}


def summarize(runs: list[dict]) -> dict:
    out = {}
    for scenario in sorted({r["scenario"] for r in runs}):
        rows = {}
        for setup in SETUPS:
            mine = [r for r in runs if r["scenario"] == scenario and r["setup"] == setup]
            if mine:
                mean, half = mean_ci95([r["score_per_100"] for r in mine])
                n = mine[0]["requests"]
                rows[setup] = {
                    "mean": round(mean, 2), "ci95": round(half, 2), "seeds": len(mine),
                    "rate_limited_per_100": round(100.0 * statistics.mean(
                        r["rate_limited"] for r in mine) / n, 2),
                    "penalized_per_100": round(100.0 * statistics.mean(
                        r["penalized"] for r in mine) / n, 2),
                    "p50_ms": round(statistics.mean(r["p50_ms"] for r in mine), 1),
                    "p99_ms": round(statistics.mean(r["p99_ms"] for r in mine), 1)}
        one = rows.get("one", {}).get("mean")
        for row in rows.values():
            row["vs_one_pct"] = None if not one else round(100.0 * row["mean"] / one, 1)
        out[scenario] = rows
    return out


def section(doc: dict) -> str:
    """The replicas part of docs/benchmarks.md, from the results file."""
    r = doc["replicas"]
    head = (f"## {r} replicas in front of one fleet: alone, isolated, or sharing through "
            f"Redis (issue #13)\n\n"
            f"<!-- Generated by `.venv/bin/python bench/replicas.py` from "
            f"bench/results/replicas.json; `--from-results` rewrites it. -->\n\n"
            f"Command: `.venv/{doc['command'].strip()}` (about 15 minutes).  \n"
            f"Last run: {doc['date']}, {doc['cores']} cores, "
            f"{doc['requests']} requests per run at {doc['rate_total']:g} req/s in all "
            f"(uniform), sync_ms {doc['sync_ms']:g}, the fleet's capacity scaled by {r} "
            f"(`banditlb fleet --capacity-scale {r}`), scored by the fleet.\n\n"
            f"- **one**: one `banditlb lb --strategy auto` takes every id;\n"
            f"- **isolated**: {r} processes, ids round-robin over them, each learning "
            f"alone;\n"
            f"- **shared**: the same {r} with `--shared-state` to one local redis-server.\n\n"
            "| fleet | setup | score per 100 (95% CI) | % of one | 429s per 100 | "
            "penalized per 100 | client p50 / p99 ms |\n|---|---|---:|---:|---:|---:|---:|\n")
    rows = []
    for scenario, setups in doc["summary"].items():
        for setup, row in setups.items():
            rows.append(f"| {scenario} | {setup} | {row['mean']:.1f} ± {row['ci95']:.1f} "
                        f"({row['seeds']} seeds) | {row['vs_one_pct']:.1f}% | "
                        f"{row['rate_limited_per_100']:.1f} | {row['penalized_per_100']:.1f} | "
                        f"{row['p50_ms']:.0f} / {row['p99_ms']:.0f} |")
    return head + "\n".join(rows) + "\n\n" + DISCUSSION.read_text().strip() + "\n"


def write_doc(doc: dict, path: Path = DOC) -> None:
    old = path.read_text() if path.exists() else ""
    path.write_text(replace_section(old, section(doc), REPLICAS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default="T2,T3")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000,
                        help="ids per run (at replicas x 10 req/s)")
    parser.add_argument("--sync-ms", type=float, default=20.0)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--from-results", action="store_true",
                        help="rewrite the docs/benchmarks.md section from the results file")
    args = parser.parse_args()
    if args.from_results:
        write_doc(json.loads(args.results.read_text()))
        log(f"rewrote the replicas section of {DOC}")
        return
    setups = [s for s in args.setups.split(",") if s]
    unknown = set(setups) - set(SETUPS)
    if unknown or args.replicas < 2 or args.seeds < 1 or args.requests < 1:
        parser.error(f"setups are {', '.join(SETUPS)}; replicas >= 2; seeds, requests >= 1")
    scenarios = [s for s in args.scenarios.split(",") if s]
    data_dir = Path(tempfile.mkdtemp(prefix="banditlb-replicas-"))
    runs: list[dict] = []
    started = time.monotonic()
    steps = len(scenarios) * args.seeds * len(setups)
    ensure_installed(("redis-server",))
    with ExitStack() as stack:
        redis = stack.enter_context(start_redis(free_port()))
        for scenario in scenarios:
            handle = stack.enter_context(start_fleet_process(
                [scenario], capacity_scale=args.replicas))
            fleet = FleetControl(handle.control_url)
            upstreams = handle.upstreams(scenario)
            for seed in range(args.seeds):
                for setup in setups:
                    run = one_run(fleet, upstreams, setup, args.replicas, seed, args.requests,
                                  redis.urls["redis"], args.sync_ms, data_dir, scenario)
                    run["scenario"] = scenario
                    runs.append(run)
                    log(f"[{len(runs)}/{steps}] {scenario} seed {seed} {setup}: "
                        f"{run['score_per_100']:.1f} per 100 (lag {run['send_lag_ms']} ms, "
                        f"{time.monotonic() - started:.0f} s)")
    summary = summarize(runs)
    for scenario, rows in summary.items():
        for setup, row in rows.items():
            log(f"{scenario} {setup}: {row}")
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
           "load_average": os.getloadavg(), "replicas": args.replicas,
           "rate_total": RATE_PER_REPLICA * args.replicas, "requests": args.requests,
           "sync_ms": args.sync_ms, "summary": summary, "runs": runs,
           "command": " ".join(["bin/python bench/replicas.py", *sys.argv[1:]])}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")
    write_doc(doc)
    log(f"wrote {args.results} and its section of {DOC} in "
        f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
