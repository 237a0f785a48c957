"""The robustness grid: limiter class x arrival mode, every strategy simulated, `auto`
against nginx and HAProxy live on a subset of the cells.

    nice .venv/bin/python -m bench.grid.run                 # simulate, run live, write
    .venv/bin/python -m bench.grid.run --skip-live          # the simulated part alone
    .venv/bin/python -m bench.grid.run --from-results       # rewrite the section only

Writes the raw results to bench/grid/results/{simulated,live}.json, then the section of
docs/benchmarks.md between `<!-- robustness-grid:start -->` and `<!-- robustness-grid:end
-->` (nothing else in the file) and docs/img/robustness-grid.png. With the defaults the
simulated part costs about 150 CPU-seconds (8 classes x 4 arrival modes x 16 strategies x
10 seeds x 1,000 requests, on every core: 2-3 minutes here) and the live part about 4
minutes (real time: 300 requests at 10 req/s = 30 s a seed, 2 arrival modes x 3 seeds,
every (peer, class) stream at once; a seed runs again when the machine stalls).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.grid.report import DISCUSSION, Shortfall, write_grid_report
from bench.peers.configs import HaproxyTuning, NginxTuning
from bench.peers.live import auto_peer, haproxy_peer, nginx_peer, run_live
from bench.peers.processes import ensure_installed
from bench.peers.run import RESULTS as PEER_RESULTS
from bench.peers.run import parse_arrivals_list, read_json, write_json

from banditlb.arrivals import Arrivals
from banditlb.balancer.config import LbConfig
from banditlb.fleet.scenario import ScenarioError, load_scenario
from banditlb.rules import Rules
from banditlb.sim.matrix import ORACLE, run_matrix
from banditlb.strategies import canonical_name, strategy_names

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "benchmarks.md"
TUNING = PEER_RESULTS / "tuning.json"
CLASSES = ("T2", "T3", "fixed-window", "sliding-window", "concurrency", "shared-quota",
           "header-paced", "mixed")
ARRIVALS = "uniform,poisson,burst:10,closed:10"
LIVE_CLASSES = ("T2", "fixed-window", "concurrency", "header-paced")
LIVE_ARRIVALS = "uniform,burst:10"
HAPROXY_BALANCES = ("leastconn", "random(2)")
PENALTY_WEIGHT = 1.0
RPS = 10.0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def balancer_rules(penalty_weight: float = PENALTY_WEIGHT) -> Rules:
    """The live balancer's default rules (deadline, attempts, timeouts) at this weight:
    the rules the `auto` peer runs with, built as bench/peers/simulated.py builds them."""
    return dataclasses.replace(LbConfig(upstreams=[]).rules, penalty_weight=penalty_weight)


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count() or 1} cores, Python "
            f"{platform.python_version()}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def simulate_grid(classes: list[str], arrivals: list[Arrivals], strategies: list[str],
                  seeds: int, requests: int, rps: float = RPS, workers: int | None = None,
                  log: Callable[[str], None] = log) -> dict:
    """Every strategy (and the oracle) on every (class, arrival mode) cell; the document
    saved as results/simulated.json."""
    names = list(dict.fromkeys([*(canonical_name(s) for s in strategies), ORACLE]))
    scenarios = [load_scenario(name) for name in classes]
    rules = balancer_rules()
    started = time.monotonic()
    records = []
    for mode in arrivals:
        log(f"simulating {len(names)} strategies x {len(classes)} classes, {mode} arrivals, "
            f"{seeds} seeds x {requests} requests")
        summaries = run_matrix(names, scenarios, range(seeds), requests, rps, rules,
                               workers=workers, arrivals=mode)
        records += [{**s.as_json(), "penalty_weight": PENALTY_WEIGHT, "source": "simulated"}
                    for s in summaries]
    meta = {"date": _now(), "machine": _machine(), "classes": classes,
            "descriptions": {s.name: s.description for s in scenarios},
            "arrivals": [mode.label for mode in arrivals], "strategies": names,
            "seeds": list(range(seeds)), "requests": requests, "rps": rps,
            "penalty_weight": PENALTY_WEIGHT, "rules": dataclasses.asdict(rules),
            "elapsed_s": round(time.monotonic() - started, 1)}
    return {"meta": meta, "records": records}


def live_grid(classes: list[str], arrivals: list[Arrivals], seeds: int, requests: int,
              rps: float = RPS, tuning: Path = TUNING,
              balances: tuple[str, ...] = HAPROXY_BALANCES,
              log: Callable[[str], None] = log) -> dict:
    """`auto`, nginx and HAProxy live on these cells, and the oracle simulated on the same
    seeds, requests and arrivals (the yardstick of the live rows); results/live.json."""
    chosen = read_json(tuning)["chosen"]
    nginx = NginxTuning(**chosen["nginx"])
    haproxy = HaproxyTuning(**chosen["haproxy"])
    weights = (PENALTY_WEIGHT,)
    peers = [auto_peer(PENALTY_WEIGHT), nginx_peer(nginx, weights),
             *(haproxy_peer(dataclasses.replace(haproxy, balance=b), weights)
               for b in balances)]
    versions = ensure_installed()
    started = time.monotonic()
    log(f"live: {len(peers)} peers x {len(classes)} classes in parallel, seeds 0..{seeds - 1}, "
        f"{requests} requests at {rps:g} req/s, arrivals "
        f"{', '.join(mode.label for mode in arrivals)}")
    records = run_live(peers, classes, list(range(seeds)), requests, rps, log, arrivals)
    elapsed = round(time.monotonic() - started)
    log("simulating the oracle on the live seeds")
    scenarios = [load_scenario(name) for name in classes]
    oracle = []
    for mode in arrivals:
        oracle += [{**s.as_json(), "penalty_weight": PENALTY_WEIGHT, "source": "simulated"}
                   for s in run_matrix([ORACLE], scenarios, range(seeds), requests, rps,
                                       balancer_rules(), arrivals=mode)]
    meta = {"date": _now(), "machine": _machine(), "packages": versions, "classes": classes,
            "arrivals": [mode.label for mode in arrivals], "seeds": list(range(seeds)),
            "requests": requests, "rps": rps, "elapsed_s": elapsed,
            "peers": {peer.name: peer.config for peer in peers}}
    return {"meta": meta, "records": records, "oracle": oracle}


def run_grid(results: Path = RESULTS, doc: Path = DOC, *, classes: list[str],
             arrivals: list[Arrivals], strategies: list[str], seeds: int, requests: int,
             rps: float = RPS, live_classes: list[str] | None = None,
             live_arrivals: list[Arrivals] | None = None, live_seeds: int = 3,
             live_requests: int = 300, skip_live: bool = False, from_results: bool = False,
             workers: int | None = None, discussion: Path | None = DISCUSSION,
             log: Callable[[str], None] = log) -> list[Shortfall]:
    """Run what is asked, save it under `results`, rewrite the grid section of `doc`; the
    cells where auto falls short. Live cells are those of the live subset that are also
    grid cells (none: the live part is skipped)."""
    if not from_results:
        write_json(results / "simulated.json",
                   simulate_grid(classes, arrivals, strategies, seeds, requests, rps, workers,
                                 log))
        live_cls = [c for c in (live_classes or []) if c in classes]
        labels = {mode.label for mode in arrivals}
        live_modes = [m for m in (live_arrivals or []) if m.label in labels]
        if skip_live:
            log("live part skipped (--skip-live): the section keeps the live results saved "
                "in " + str(results / "live.json") + ", if any")
        elif not live_cls or not live_modes:
            log("no live cell among the grid's cells: live part skipped")
        else:
            write_json(results / "live.json", live_grid(live_cls, live_modes, live_seeds,
                                                        live_requests, rps, log=log))
    misses = write_grid_report(results, doc, discussion)
    log(f"wrote the grid section of {doc} and its heat map")
    return misses


def _names(parser: argparse.ArgumentParser, flag: str, spec: str,
           check: Callable[[str], str]) -> list[str]:
    out = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            name = check(item)
        except (ScenarioError, ValueError) as exc:
            parser.error(f"{flag}: {exc}")
        if name not in out:
            out.append(name)
    if not out:
        parser.error(f"{flag}: nothing given")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.grid.run",
        description="Robustness grid (limiter class x arrival mode): every strategy "
                    "simulated, auto vs nginx vs HAProxy live on a subset; writes "
                    "results/*.json, the grid section of docs/benchmarks.md and "
                    "docs/img/robustness-grid.png.")
    parser.add_argument("--from-results", action="store_true",
                        help="Run nothing: rewrite the section and heat map from --results.")
    parser.add_argument("--skip-live", action="store_true",
                        help="Simulate only; the section shows the live results already "
                             "saved in --results, if any.")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help=f"Limiter classes (fleet presets), comma-separated "
                             f"(default {','.join(CLASSES)}).")
    parser.add_argument("--arrivals", default=ARRIVALS,
                        help=f"Arrival modes: uniform, poisson, burst:N, closed:N (default "
                             f"{ARRIVALS}).")
    parser.add_argument("--strategies", default="all",
                        help="Simulated strategies, comma-separated names or aliases, or "
                             "all (default); the oracle always runs.")
    parser.add_argument("--seeds", type=int, default=10,
                        help="Simulated seeds 0..N-1 per cell (default 10; at least 5 for "
                             "the published grid).")
    parser.add_argument("--requests", type=int, default=1000,
                        help="Simulated requests per run (default 1000).")
    parser.add_argument("--live-seeds", type=int, default=3, help="Live seeds (default 3).")
    parser.add_argument("--live-requests", type=int, default=300,
                        help="Live requests per run (default 300).")
    parser.add_argument("--live-classes", default=",".join(LIVE_CLASSES),
                        help=f"Classes run live, among --classes (default "
                             f"{','.join(LIVE_CLASSES)}).")
    parser.add_argument("--live-arrivals", default=LIVE_ARRIVALS,
                        help=f"Arrival modes run live, among --arrivals (default "
                             f"{LIVE_ARRIVALS}).")
    parser.add_argument("--rps", type=float, default=RPS, help="Mean rate (default 10).")
    parser.add_argument("--workers", type=int, default=None,
                        help="Simulator processes (default: one per core).")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="Folder of the raw results (default bench/grid/results).")
    parser.add_argument("--doc", type=Path, default=DOC,
                        help="The doc whose grid section is rewritten (default "
                             "docs/benchmarks.md); the heat map goes to img/ beside it.")
    args = parser.parse_args(argv)
    for flag in ("seeds", "requests", "live_seeds", "live_requests"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.rps <= 0:
        parser.error("--rps must be positive")
    classes = _names(parser, "--classes", args.classes, lambda n: load_scenario(n).name)
    live_classes = _names(parser, "--live-classes", args.live_classes,
                          lambda n: load_scenario(n).name)
    strategies = strategy_names(include_oracle=True) if args.strategies.strip() == "all" \
        else _names(parser, "--strategies", args.strategies, canonical_name)
    arrivals = parse_arrivals_list(parser, args.arrivals)
    live_arrivals = parse_arrivals_list(parser, args.live_arrivals)
    for mode in (*arrivals, *live_arrivals):
        if mode.kind == "trace":
            parser.error("--arrivals: the grid takes uniform, poisson, burst:N or closed:N")
    misses = run_grid(args.results, args.doc, classes=classes, arrivals=arrivals,
                      strategies=strategies, seeds=args.seeds, requests=args.requests,
                      rps=args.rps, live_classes=live_classes, live_arrivals=live_arrivals,
                      live_seeds=args.live_seeds, live_requests=args.live_requests,
                      skip_live=args.skip_live, from_results=args.from_results,
                      workers=args.workers)
    print(f"{len(misses)} cell(s) where auto is not ahead of every rival or below its "
          f"oracle target:")
    for miss in misses:
        rivals = ", ".join(f"{m.versus} {m.margin:+.1f}" for m in miss.behind)
        pct = "-" if miss.pct_of_oracle is None else f"{miss.pct_of_oracle:.1f}%"
        print(f"  {miss.cls} x {miss.mode} ({miss.source}): {pct} of the oracle"
              + (f"; behind {rivals}" if rivals else ""))


if __name__ == "__main__":
    main()

