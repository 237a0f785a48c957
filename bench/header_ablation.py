"""Reading rate-limit headers: what `auto` gains where upstreams announce their budget,
and what it loses where they do not.

    .venv/bin/python bench/header_ablation.py                 # the table of docs/strategies.md
    .venv/bin/python bench/header_ablation.py --seeds 5 --arrivals uniform

For each limiter class (a fleet preset) it simulates three fleets and strategies on the
same seeds, with the live balancer's default rules (bench/grid/run.py's
`balancer_rules`) and penalty weight 1:

- "no fields": the preset as it is (its servers send no rate-limit fields), `auto` as
  it is (`read_headers=true`, the default);
- "fields, read": a copy of the preset whose servers send `X-RateLimit-Limit`,
  `-Remaining` and `-Reset` on every answer (and `Retry-After` on refusals), built in
  memory; `auto` reads them;
- "fields, ignored": the same copy, `auto` with `read_headers=false`: the announced
  budgets are ignored (a refusal's `Retry-After` is still believed, as Envoy does).

One class (`--ietf-class`) is run a second time with the IETF `RateLimit` and
`RateLimit-Policy` fields instead, to show the parser reads any style alike. The fleet
draws the same numbers whether it sends fields or not (header fields take no random
draw), so the columns of a row are paired by seed. Each cell is the score per 100
requests with its 95% CI over the seeds, then the % of the oracle (run by run_matrix on
the same seeds and arrivals) and the 429s (and 503 refusals) per 100 requests.

With the defaults it costs about 2 CPU-minutes (7 classes, 2 arrival modes, 10 seeds,
auto and the oracle in 5 variants, plus the IETF class). Two checks are printed below
the table: the oracle scores the same with and without the
fields (it reads the true limiter, never the answers), and `auto` with
`read_headers=false` on the preset as it is scores exactly what "no fields" scores (where
no field comes, reading them changes nothing: the same code path).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from bench.grid.run import balancer_rules  # noqa: E402
from bench.peers.run import parse_arrivals_list  # noqa: E402

from banditlb.arrivals import Arrivals  # noqa: E402
from banditlb.fleet.scenario import Scenario, ScenarioError, load_scenario  # noqa: E402
from banditlb.ratelimit import STYLES  # noqa: E402
from banditlb.sim.matrix import ORACLE, Summary, run_matrix  # noqa: E402

CLASSES = ("T2", "T3", "fixed-window", "sliding-window", "concurrency", "shared-quota",
           "mixed")
ARRIVALS = "uniform,burst:10"
STYLE = "x-ratelimit"
IETF_CLASS = "fixed-window"
RPS = 10.0
AUTO = "auto"
COLUMNS = ("no fields", "fields, read", "fields, ignored")


def with_fields(scenario: Scenario, style: str, on: str = "all") -> Scenario:
    """The same scenario (same name, so the same random draws) whose servers send
    rate-limit fields of `style` on `on` answers ("all" or "429")."""
    servers = tuple(dataclasses.replace(s, rate_limit_headers=style, rate_limit_headers_on=on)
                    for s in scenario.servers)
    return dataclasses.replace(scenario, servers=servers, rate_limit_headers=style,
                               rate_limit_headers_on=on)


def run_variant(scenarios: list[Scenario], read_headers: bool, seeds: int, requests: int,
                mode: Arrivals, workers: int) -> dict[str, dict[str, Summary]]:
    """auto (reading the fields or not) and the oracle on these scenarios:
    {scenario name: {strategy: summary}}."""
    params = {"read_headers": read_headers}
    summaries = run_matrix([AUTO, ORACLE], scenarios, range(seeds), requests, RPS,
                           balancer_rules(), lambda name: params if name == AUTO else {},
                           workers=workers, arrivals=mode)
    out: dict[str, dict[str, Summary]] = {}
    for s in summaries:
        out.setdefault(s.scenario, {})[s.strategy] = s
    return out


def cell(s: Summary) -> str:
    pct = "-" if s.pct_of_oracle is None else f"{s.pct_of_oracle:.1f}%"
    return f"{s.score_per_100:.2f} ± {s.ci95:.2f} ({pct}, {s.rate_limited_per_100:.1f})"


def same(a: Summary, b: Summary) -> bool:
    """The same runs, as far as a summary tells: every figure and the regret curve."""
    return a.as_json() == b.as_json() and np.array_equal(a.regret_mean, b.regret_mean)


def ablation(classes: list[str], modes: list[Arrivals], seeds: int, requests: int,
             style: str, ietf_class: str | None, workers: int) -> tuple[list[str], list[str]]:
    """The Markdown table's lines and the checks' lines."""
    presets = [load_scenario(name) for name in classes]
    styles = {name: [style] for name in classes}
    if ietf_class is not None and style != "ietf":
        styles[ietf_class].append("ietf")
    lines = ["| class | arrivals | " + " | ".join(COLUMNS) + " | oracle |",
             "|---|---|" + "---:|" * (len(COLUMNS) + 1)]
    rows: dict[tuple[str, str], list[str]] = {}
    checks: list[str] = []
    for mode in modes:
        plain = run_variant(presets, True, seeds, requests, mode, workers)
        plain_off = run_variant(presets, False, seeds, requests, mode, workers)
        fielded: dict[str, tuple[dict, dict]] = {}
        for kind in dict.fromkeys(k for ks in styles.values() for k in ks):
            copies = [with_fields(sc, kind) for sc in presets if kind in styles[sc.name]]
            fielded[kind] = (run_variant(copies, True, seeds, requests, mode, workers),
                             run_variant(copies, False, seeds, requests, mode, workers))
        for name in classes:
            base, oracle = plain[name][AUTO], plain[name][ORACLE]
            if not same(base, plain_off[name][AUTO]):
                checks.append(f"- {name} x {mode.label}: auto with read_headers=false "
                              f"differs on the preset as it is: "
                              f"{cell(plain_off[name][AUTO])}")
            for kind in styles[name]:
                read, ignored = (runs[name] for runs in fielded[kind])
                label = name if kind == style else f"{name} (`{kind}`)"
                rows[(label, mode.label)] = [
                    cell(base), cell(read[AUTO]), cell(ignored[AUTO]),
                    f"{oracle.score_per_100:.2f} ± {oracle.ci95:.2f}"]
                if not (same(oracle, read[ORACLE]) and same(oracle, ignored[ORACLE])):
                    checks.append(f"- {name} x {mode.label}: the oracle differs with "
                                  f"{kind} fields")
    for name in classes:
        for kind in styles[name]:
            label = name if kind == style else f"{name} (`{kind}`)"
            for mode in modes:
                lines.append(f"| {label} | {mode.label} | "
                             + " | ".join(rows[(label, mode.label)]) + " |")
    if not checks:
        checks = ["- the oracle scores the same with the fields as without, in every row "
                  "(it reads the true limiter, never the answers);",
                  "- auto with read_headers=false on every preset as it is scores exactly "
                  "what \"no fields\" scores, run for run."]
    return lines, checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="bench/header_ablation.py",
        description="Rate-limit header ablation: auto on each limiter class with no "
                    "rate-limit fields, with fields read (read_headers=true) and with "
                    "fields ignored (read_headers=false), against the oracle; prints a "
                    "Markdown table (score per 100 ± 95% CI, % of the oracle, 429s per "
                    "100).")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help=f"Limiter classes (fleet presets), comma-separated (default "
                             f"{','.join(CLASSES)}).")
    parser.add_argument("--arrivals", default=ARRIVALS,
                        help=f"Arrival modes: uniform, poisson, burst:N, closed:N (default "
                             f"{ARRIVALS}).")
    parser.add_argument("--seeds", type=int, default=10,
                        help="Seeds 0..N-1 per cell (default 10).")
    parser.add_argument("--requests", type=int, default=1000,
                        help="Requests per run (default 1000).")
    parser.add_argument("--style", default=STYLE,
                        help=f"Header style of the fielded copies (default {STYLE}; one of "
                             f"{', '.join(s for s in STYLES if s != 'none')}).")
    parser.add_argument("--ietf-class", default=None,
                        help=f"The class also run with the IETF RateLimit fields (default "
                             f"{IETF_CLASS} when it is among --classes; 'none' for none).")
    parser.add_argument("--workers", type=int, default=1,
                        help="Simulator processes (default 1: the machine is shared).")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.requests < 1 or args.workers < 1:
        parser.error("--seeds must be at least 2 (for a CI), --requests and --workers "
                     "at least 1")
    if args.style not in STYLES or args.style == "none":
        parser.error(f"--style: one of {', '.join(s for s in STYLES if s != 'none')}")
    classes: list[str] = []
    for item in filter(None, (p.strip() for p in args.classes.split(","))):
        try:
            name = load_scenario(item).name
        except ScenarioError as exc:
            parser.error(f"--classes: {exc}")
        if name not in classes:
            classes.append(name)
    if not classes:
        parser.error("--classes: nothing given")
    ietf = IETF_CLASS if args.ietf_class is None and IETF_CLASS in classes else \
        args.ietf_class
    if ietf is not None and ietf.strip().lower() in ("", "none"):
        ietf = None
    if ietf is not None:
        try:
            ietf = load_scenario(ietf).name
        except ScenarioError as exc:
            parser.error(f"--ietf-class: {exc}")
        if ietf not in classes:
            parser.error(f"--ietf-class {ietf} is not among --classes")
    modes = parse_arrivals_list(parser, args.arrivals)
    started = time.monotonic()
    lines, checks = ablation(classes, modes, args.seeds, args.requests, args.style, ietf,
                             args.workers)
    also = f" (and ietf on {ietf})" if ietf and args.style != "ietf" else ""
    print(f"{args.seeds} seeds x {args.requests} requests at {RPS:g} req/s, penalty weight "
          f"1, the balancer's default rules; fields: {args.style} on every answer{also}. "
          "Cells: score/100 ± 95% CI (% of the oracle, 429s per 100 requests).\n")
    print("\n".join(lines))
    print("\nChecks:")
    print("\n".join(checks))
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
