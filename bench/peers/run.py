"""The peer benchmark: `auto` (live) vs nginx vs HAProxy vs every simulated strategy.

    nice .venv/bin/python -m bench.peers.run                 # tune, simulate, run live, write
    .venv/bin/python -m bench.peers.run --arrivals uniform,burst:10   # only these processes
    .venv/bin/python -m bench.peers.run --from-results       # rewrite the doc from results/

Writes the raw results to bench/peers/results/*.json, then docs/benchmarks.md and
docs/img/peers-*.png from them. Takes about 40 minutes: the live runs are real time
(1,000 requests at 10 req/s = 100 s a seed, for each arrival process), every (peer,
scenario) stream in parallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.peers.configs import HaproxyTuning, NginxTuning
from bench.peers.live import auto_peer, haproxy_peer, nginx_peer, run_live
from bench.peers.processes import ensure_installed, log
from bench.peers.report import write_report
from bench.peers.simulated import run_simulated
from bench.peers.tuning import (
    TUNING_SCENARIO,
    TUNING_SEEDS,
    candidate_peers,
    choose,
)

from banditlb.arrivals import Arrivals, ArrivalsError, parse_arrivals

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
SCENARIOS = ["T1", "T2", "T3", "drift", "faults"]
WEIGHTS = (1.0, 0.5)
ARRIVALS = "uniform,poisson,burst:10,closed:10"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} is missing: run `make bench-peers` first") from None


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def tune(requests: int, rps: float, results: Path) -> dict:
    log(f"tuning nginx and HAProxy on {TUNING_SCENARIO}, seeds {list(TUNING_SEEDS)}")
    records = run_live(candidate_peers(), [TUNING_SCENARIO], list(TUNING_SEEDS), requests,
                       rps, log)
    doc = {"scenario": TUNING_SCENARIO, "seeds": list(TUNING_SEEDS), "requests": requests,
           "rps": rps, "records": records, "chosen": choose(records)}
    write_json(results / "tuning.json", doc)
    return doc["chosen"]


def simulate(scenarios: list[str], requests: int, rps: float, seed_counts: list[int],
             arrivals: list[Arrivals], results: Path) -> None:
    records = []
    for mode in arrivals:
        for seeds in seed_counts:
            for weight in WEIGHTS:
                log(f"simulating every strategy, {mode} arrivals, {seeds} seeds, penalty "
                    f"weight {weight:g}")
                records += run_simulated(scenarios, requests, seeds, weight, mode, rps)
    write_json(results / "simulated.json", {"requests": requests, "records": records})


def run_peers(chosen: dict, scenarios: list[str], seeds: int, requests: int, rps: float,
              arrivals: list[Arrivals], results: Path) -> None:
    nginx = NginxTuning(**chosen["nginx"])
    haproxy = HaproxyTuning(**chosen["haproxy"])
    peers = [auto_peer(1.0), auto_peer(0.5), nginx_peer(nginx, WEIGHTS),
             haproxy_peer(dataclasses.replace(haproxy, balance="random(2)"), WEIGHTS),
             haproxy_peer(dataclasses.replace(haproxy, balance="leastconn"), WEIGHTS)]
    versions = ensure_installed()
    started = time.monotonic()
    log(f"live: {len(peers)} peers x {len(scenarios)} scenarios in parallel, seeds "
        f"0..{seeds - 1}, {requests} requests at {rps:g} req/s, arrivals "
        f"{', '.join(mode.label for mode in arrivals)}")
    records = run_live(peers, scenarios, list(range(seeds)), requests, rps, log, arrivals)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {_cpus()} cores, Python "
                       f"{platform.python_version()}",
            "packages": versions, "scenarios": scenarios, "seeds": list(range(seeds)),
            "requests": requests, "rps": rps, "arrivals": [mode.label for mode in arrivals],
            "elapsed_s": round(time.monotonic() - started),
            "peers": {peer.name + ("" if len(peer.weights) > 1 else
                                   f" (w={peer.weights[0]:g})"): peer.config
                      for peer in peers}}
    write_json(results / "live.json", {"meta": meta, "records": records})


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from-results", action="store_true",
                        help="Only rewrite the doc and plots from the saved results.")
    parser.add_argument("--skip-tune", action="store_true",
                        help="Reuse the tuning saved in results/tuning.json.")
    parser.add_argument("--skip-simulate", action="store_true",
                        help="Reuse the simulated rows saved in results/simulated.json.")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--arrivals", default=ARRIVALS,
                        help="Comma-separated arrival processes, each a run of its own for "
                             "every peer and seed (and simulated alike): uniform, poisson, "
                             f"burst:N, closed:N, trace:FILE (default {ARRIVALS}). Tuning "
                             "always runs uniform.")
    parser.add_argument("--seeds", type=int, default=5, help="Live seeds 0..N-1.")
    parser.add_argument("--sim-seeds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    arrivals = parse_arrivals_list(parser, args.arrivals)
    if not args.from_results:
        ensure_installed()
        chosen = read_json(args.results / "tuning.json")["chosen"] if args.skip_tune \
            else tune(args.requests, args.rps, args.results)
        log(f"chosen: {chosen}")
        if not args.skip_simulate:
            simulate(scenarios, args.requests, args.rps, sorted({args.seeds, args.sim_seeds}),
                     arrivals, args.results)
        run_peers(chosen, scenarios, args.seeds, args.requests, args.rps, arrivals,
                  args.results)
    write_report(args.results, args.doc)
    log(f"wrote {args.doc}")


def parse_arrivals_list(parser: argparse.ArgumentParser, spec: str) -> list[Arrivals]:
    """'uniform,burst:10' -> their Arrivals, each once; exit 2 with the accepted forms."""
    modes: dict[str, Arrivals] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            mode = parse_arrivals(item)
        except ArrivalsError as exc:
            parser.error(f"--arrivals: {exc}")
        modes.setdefault(mode.label, mode)
    if not modes:
        parser.error("--arrivals: no arrival process given")
    return list(modes.values())


if __name__ == "__main__":
    main()
