"""The cost of staleness: R simulated replicas that hear each other's evidence d late.

    .venv/bin/python bench/staleness.py   # ~2 min on 2 cores; writes bench/results/staleness.json
                                          # and docs/img/staleness.png, prints a Markdown table
    .venv/bin/python bench/staleness.py --per-replica --replicas 1,8 --delays 0,100,off \
        --seeds 5 --results /tmp/long.json --plot /tmp/long.png   # as long runs (~10 min)

Per fleet class (T2, T3) and replica count R (1, 2, 4, 8), the fleet's capacity is
scaled by R (`banditlb.fleet.scenario.scale_capacity`) and the ids come at R x 10 req/s
in all, spread round-robin over the replicas, so R replicas find the fleet as scarce as
one balancer finds T2 or T3 at 10 req/s. Each replica runs its own `auto` (seeded
seed + k) and feeds the others' attempts and answers to it d after they happened
(`banditlb.sim.engine`, through the same `banditlb.shared.evidence.apply` as the live
replicas), for each d in 0 ... 1000 ms, and isolated (no sharing). One replica has no
one to hear, so R = 1 runs once per seed. The holding oracle, as R replicas (it reads
the fleet's true state, so it needs no evidence), is the yardstick. Every cell takes
the same seeds (fleet draws and send times), 1,000 requests per run, penalty weight 1,
3 free attempts: score per 100 requests, the mean with a 95% CI over the seeds.

1,000 ids at R x 10 req/s last 100 / R seconds of virtual time, and T3's limits move
on their own clock (waves of 25-40 s, collapses every 40-80 s), so a row compares
delays at one R; across rows the fleet's weather differs too (the oracle's column shows
how much). `--per-replica` gives every replica 1,000 ids instead, every run 100 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from banditlb.arrivals import UNIFORM
from banditlb.fleet.scenario import load_scenario, scale_capacity
from banditlb.rules import Rules
from banditlb.sim.engine import ISOLATED, parse_sync_ms
from banditlb.sim.matrix import Job, run_job
from banditlb.stats import mean_ci95

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "staleness.json"
PLOT = ROOT / "docs" / "img" / "staleness.png"
RATE_PER_REPLICA = 10.0
DELAYS = "0,10,20,50,100,200,500,1000,off"


def log(text: str) -> None:
    """A progress line on standard error, stamped with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def label(sync_s: float) -> str:
    return "isolated" if sync_s == ISOLATED else f"{1000 * sync_s:g}"


def plan(scenarios: list[str], replica_counts: list[int], delays: list[float], seeds: int,
         requests: int, strategy: str, per_replica: bool = False) -> list[tuple[dict, Job]]:
    """Every run: (its cell, its job). R = 1 runs once (no delay applies). `per_replica`:
    `requests` per replica (R x as many in all, so every run lasts as long)."""
    rules = Rules()
    runs = []
    for name in scenarios:
        base = load_scenario(name)
        for r in replica_counts:
            fleet = scale_capacity(base, r)
            rps = RATE_PER_REPLICA * r
            ids = requests * r if per_replica else requests
            cells = [(strategy, ISOLATED)] if r == 1 else [(strategy, d) for d in delays]
            cells.append(("oracle", ISOLATED))
            for who, d in cells:
                for seed in range(seeds):
                    cell = {"scenario": name, "replicas": r, "strategy": who,
                            "sync": "one" if r == 1 else label(d), "seed": seed}
                    runs.append((cell, Job(who, fleet, seed, ids, rps, rules, {},
                                           UNIFORM, replicas=r, sync_s=d)))
    # the slowest first (many replicas, T3), so the pool's last minutes are not one job
    runs.sort(key=lambda x: (-x[1].replicas, x[1].scenario.name != "T3"))
    return runs


def run_all(runs: list[tuple[dict, Job]], workers: int) -> list[dict]:
    started = time.monotonic()
    out = []
    with ProcessPoolExecutor(workers) as pool:
        for i, ((cell, _), stats) in enumerate(zip(
                runs, pool.map(run_job, [job for _, job in runs], chunksize=2), strict=True)):
            out.append({**cell, "score_per_100": round(100 * stats.score / stats.requests, 3),
                        "accepted": stats.accepted, "attempts": stats.attempts,
                        "rate_limited": stats.rate_limited, "requests": stats.requests})
            if (i + 1) % 20 == 0 or i + 1 == len(runs):
                log(f"{i + 1}/{len(runs)} runs, {time.monotonic() - started:.0f} s")
    return out


def summarize(rows: list[dict]) -> list[dict]:
    """One cell per (scenario, R, strategy, sync): mean score with its 95% CI and the
    429s per 100 requests, over the seeds."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["scenario"], row["replicas"], row["strategy"], row["sync"]),
                         []).append(row)
    out = []
    for (scenario, r, who, sync), runs in cells.items():
        mean, ci = mean_ci95([x["score_per_100"] for x in runs])
        out.append({"scenario": scenario, "replicas": r, "strategy": who, "sync": sync,
                    "sync_ms": None if sync in ("one", "isolated") else float(sync),
                    "score_per_100": round(mean, 2), "ci95": round(ci, 2),
                    "rate_limited_per_100": round(sum(100 * x["rate_limited"] / x["requests"]
                                                      for x in runs) / len(runs), 2),
                    "seeds": len(runs)})
    out.sort(key=lambda c: (c["scenario"], c["replicas"], c["strategy"] != "oracle"))
    return out


def markdown(summary: list[dict], delays: list[float], strategy: str) -> str:
    columns = [label(d) for d in delays]
    head = ["fleet", "R", *[f"{c} ms" if c != "isolated" else c for c in columns], "oracle"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    by = {(c["scenario"], c["replicas"], c["strategy"], c["sync"]): c for c in summary}

    def cell(key: tuple) -> str:
        c = by.get(key)
        return "-" if c is None else f"{c['score_per_100']:.1f} ± {c['ci95']:.1f}"

    for scenario, r in dict.fromkeys((c["scenario"], c["replicas"]) for c in summary):
        # one replica has no one to hear: its one figure stands for every d
        values = [cell((scenario, r, strategy, "one" if r == 1 else c)) for c in columns]
        lines.append(f"| {scenario} | {r} | " + " | ".join(values)
                     + f" | {cell((scenario, r, 'oracle', 'one' if r == 1 else 'isolated'))} |")
    return "\n".join(lines)


def plot(summary: list[dict], delays: list[float], strategy: str, path: Path) -> None:
    """Score against d, one line per R, one panel per fleet; isolated as a marker at the
    right of each line, one balancer as a dashed level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [d for d in delays if d != ISOLATED]
    xs = [1000 * d for d in finite]
    x_of = {label(d): x for d, x in zip(finite, xs, strict=True)}
    shown = [max(x, 3.0) for x in xs]  # 0 ms on a log axis: drawn at 3 ms, labelled 0
    x_iso = max(shown) * 2.5
    scenarios = list(dict.fromkeys(c["scenario"] for c in summary))
    counts = sorted({c["replicas"] for c in summary if c["replicas"] > 1})
    dodge = {r: 1.0 + 0.07 * (i - (len(counts) - 1) / 2) for i, r in enumerate(counts)}
    """Each R's points a little apart on the log axis, so the error bars do not hide
    each other."""
    colours = {1: "black", 2: "tab:blue", 4: "tab:orange", 8: "tab:green", 16: "tab:red"}
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6.2 * len(scenarios), 4.6),
                             squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        mine = [c for c in summary if c["scenario"] == scenario and c["strategy"] == strategy]
        for r in sorted({c["replicas"] for c in mine}):
            colour = colours.get(r)
            cells = [c for c in mine if c["replicas"] == r]
            if r == 1:
                one = cells[0]
                ax.axhline(one["score_per_100"], color=colour, linestyle="--", linewidth=1,
                           label=f"R=1 (one balancer): {one['score_per_100']:.1f}")
                continue
            line = sorted((c for c in cells if c["sync"] in x_of), key=lambda c: x_of[c["sync"]])
            x = [max(x_of[c["sync"]], 3.0) * dodge[r] for c in line]
            y = [c["score_per_100"] for c in line]
            err = [c["ci95"] for c in line]
            ax.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=4,
                        capsize=2, linewidth=1.4, label=f"R={r}")
            iso = next((c for c in cells if c["sync"] == "isolated"), None)
            if iso is not None:
                ax.errorbar([x_iso * dodge[r]], [iso["score_per_100"]], yerr=[iso["ci95"]],
                            color=colour, marker="s", markersize=7, markerfacecolor="white",
                            capsize=2, linestyle="none")
        ax.set_xscale("log")
        ax.set_xticks([*shown, x_iso])
        ax.set_xticklabels([f"{x:g}" for x in xs] + ["isolated"], rotation=45, fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("sync delay d (ms); squares: isolated replicas")
        ax.set_ylabel("score per 100 requests (95% CI)")
        ax.set_title(f"{scenario} x R capacity at R x 10 req/s ({strategy})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dump(doc: dict) -> str:
    """The results as JSON: indented, but one line per run."""
    head = json.dumps({k: v for k, v in doc.items() if k != "runs"}, indent=1)
    runs = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in doc["runs"])
    return f'{head[:-2]},\n "runs": [\n{runs}\n ]\n}}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default="T2,T3")
    parser.add_argument("--replicas", default="1,2,4,8", help="comma-separated counts")
    parser.add_argument("--delays", default=DELAYS,
                        help="comma-separated sync delays in ms; off = isolated")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000, help="ids per run, in all")
    parser.add_argument("--per-replica", action="store_true",
                        help="--requests per replica instead (runs of R replicas last as "
                             "long as one balancer's, R times the ids)")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--from-results", action="store_true",
                        help="simulate nothing: draw the plot and print the table from "
                             "--results")
    args = parser.parse_args()
    if args.from_results:
        doc = json.loads(args.results.read_text())
        delays = [parse_sync_ms("off" if d == "isolated" else d) for d in doc["delays_ms"]]
        plot(doc["summary"], delays, doc["strategy"], args.plot)
        print(markdown(doc["summary"], delays, doc["strategy"]))
        return
    try:
        replica_counts = [int(x) for x in args.replicas.split(",") if x.strip()]
        delays = [parse_sync_ms(x) for x in args.delays.split(",") if x.strip()]
        if not replica_counts or min(replica_counts) < 1 or not delays:
            raise ValueError("replica counts must be >= 1, and some delay given")
    except ValueError as exc:
        parser.error(str(exc))
    if args.seeds < 2 or args.requests < 1 or args.workers < 1:
        parser.error("--seeds must be >= 2 (for a CI), --requests and --workers >= 1")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    runs = plan(scenarios, replica_counts, delays, args.seeds, args.requests, args.strategy,
                args.per_replica)
    log(f"{len(runs)} runs on {args.workers} processes")
    started, cpu_started = time.monotonic(), os.times()
    rows = run_all(runs, args.workers)
    elapsed = time.monotonic() - started
    spent = os.times()
    cpu = (spent.children_user + spent.children_system - cpu_started.children_user
           - cpu_started.children_system)
    summary = summarize(rows)
    command = "python bench/staleness.py " + " ".join(sys.argv[1:])
    doc = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "wall_s": round(elapsed, 1), "cpu_s": round(cpu, 1), "command": command.strip(),
           "strategy": args.strategy, "requests": args.requests,
           "per_replica": args.per_replica, "seeds": args.seeds,
           "rate_per_replica": RATE_PER_REPLICA, "delays_ms": [label(d) for d in delays],
           "summary": summary, "runs": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(dump(doc))
    plot(summary, delays, args.strategy, args.plot)
    print(markdown(summary, delays, args.strategy))
    log(f"{len(runs)} runs in {elapsed:.0f} s wall, {cpu:.0f} s CPU; wrote {args.results} "
        f"and {args.plot}")


if __name__ == "__main__":
    main()
