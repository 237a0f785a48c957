"""The robustness grid's section of docs/benchmarks.md and docs/img/robustness-grid.png,
written from bench/grid/results/ only (so `--from-results` rewrites them without running).

Only the part between the section's markers is replaced (bench/grid/section.py); the rest
of the file belongs to the peer benchmark's report, which keeps this part.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.grid.section import replace_section
from bench.peers.live import MAX_TRIES, STALL_LIMIT_MS
from bench.peers.report import describe
from bench.peers.scoring import (
    AUTO,
    ORACLE,
    Margin,
    Row,
    live_peers,
    live_row,
    paired_margin,
    simulated_row,
    unpaired_margin,
)
from bench.peers.simulated import simulate_command

from banditlb.arrivals import parse_arrivals
from banditlb.strategies import strategy_names

HERE = Path(__file__).parent
DISCUSSION = HERE / "discussion.md"
"""The lead's hand-written "why" for the cells where auto falls short (kept across runs)."""
IMAGE = Path("img") / "robustness-grid.png"
"""The heat map, relative to the doc's folder."""
TARGET_PCT = 90.0
"""auto's share of the holding oracle, checked where the oracle scores at least ..."""
ORACLE_FLOOR = 50.0
"""... this many points per 100 requests (issue #11)."""
CLASS_NAMES = {"T2": "token bucket", "T3": "moving, collapses, penalty box",
               "fixed-window": "fixed window", "sliding-window": "sliding log",
               "concurrency": "k in flight", "shared-quota": "shared quota",
               "header-paced": "X-RateLimit-* on every answer",
               "mixed": "one class per server"}
"""A few words on each preset's limiter class, for the tables' headers."""
PLACEHOLDER = ("Why `auto` falls short in each of these cells is to be explained (the "
               "explanation goes in bench/grid/discussion.md, which this section includes, "
               "so that it survives the next run).")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True)
class Shortfall:
    """One cell where auto is behind a rival (by the mean) or below the oracle target."""

    cls: str
    mode: str
    source: str
    """"simulated" (auto against every other strategy) or "live" (against the live peers)."""
    seeds: int
    behind: tuple[Margin, ...]
    """Rivals whose mean score is at least auto's, the largest deficit first."""
    pct_of_oracle: float | None
    oracle_per_100: float | None

    @property
    def below_target(self) -> bool:
        return (self.oracle_per_100 is not None and self.oracle_per_100 >= ORACLE_FLOOR
                and self.pct_of_oracle is not None and self.pct_of_oracle < TARGET_PCT)


@dataclass(frozen=True)
class Grid:
    """The results, indexed: (class, mode) -> rows by peer name."""

    classes: list[str]
    modes: list[str]
    strategies: list[str]
    sim: dict[tuple[str, str], dict[str, Row]]
    live: dict[tuple[str, str], dict[str, Row]]
    live_oracle: dict[tuple[str, str], Row]
    peers: list[str]
    sim_meta: dict
    live_meta: dict | None
    live_records: list[dict]


def load_grid(results: Path) -> Grid:
    sim_doc = _load(results / "simulated.json")
    if sim_doc is None:
        raise SystemExit(f"no results in {results}: run `make bench-grid` first")
    meta = sim_doc["meta"]
    sim: dict[tuple[str, str], dict[str, Row]] = {}
    for record in sim_doc["records"]:
        sim.setdefault((record["scenario"], record["arrivals"]), {})[record["strategy"]] = record
    rows = {}
    for key, by_name in sim.items():
        oracle = by_name.get(ORACLE, {}).get("score_per_100")
        rows[key] = {name: simulated_row(record, oracle) for name, record in by_name.items()}
    live_doc = _load(results / "live.json")
    live: dict[tuple[str, str], dict[str, Row]] = {}
    live_oracle: dict[tuple[str, str], Row] = {}
    peers: list[str] = []
    if live_doc is not None:
        for record in live_doc["oracle"]:
            live_oracle[(record["scenario"], record["arrivals"])] = simulated_row(record, None)
        peers = live_peers(live_doc["records"])
        cells: dict[tuple[str, str], list[dict]] = {}
        for record in live_doc["records"]:
            cells.setdefault((record["scenario"], record["arrivals"]), []).append(record)
        for key, records in cells.items():
            oracle = live_oracle.get(key)
            live[key] = {peer: live_row(records, peer, oracle and oracle.score_per_100)
                         for peer in live_peers(records)}
    return Grid(meta["classes"], meta["arrivals"], meta["strategies"], rows, live, live_oracle,
                peers, meta, live_doc and live_doc["meta"],
                live_doc["records"] if live_doc else [])


def _margins(grid: Grid):
    """(source, mode, class, auto's row, its margins over every rival) per cell: simulated
    against every other strategy (unpaired), live against every peer (paired by seed)."""
    for source, table in (("simulated", grid.sim), ("live", grid.live)):
        for mode in grid.modes:
            for cls in grid.classes:
                rows = table.get((cls, mode))
                if not rows or AUTO not in rows:
                    continue
                auto = rows[AUTO]
                if source == "simulated":
                    margins = [unpaired_margin(auto, r) for name, r in rows.items()
                               if name not in (AUTO, ORACLE)]
                else:
                    margins = [paired_margin(auto, r) for name, r in rows.items()
                               if name != AUTO and len(r.per_seed) == len(auto.per_seed)]
                yield source, mode, cls, auto, rows, margins


def shortfalls(grid: Grid) -> list[Shortfall]:
    """Every cell, simulated then live, where auto is not ahead of every other strategy
    (simulated) or peer (live) by the mean, or below TARGET_PCT of the holding oracle
    where the oracle scores at least ORACLE_FLOOR per 100."""
    found = []
    for source, mode, cls, auto, rows, margins in _margins(grid):
        oracle = rows.get(ORACLE) if source == "simulated" else grid.live_oracle.get((cls, mode))
        behind = tuple(sorted((m for m in margins if m.margin <= 0), key=lambda m: m.margin))
        cell = Shortfall(cls, mode, source, auto.seeds, behind, auto.pct_of_oracle,
                         oracle.score_per_100 if oracle else None)
        if behind or cell.below_target:
            found.append(cell)
    return found


def close_calls(grid: Grid) -> list[str]:
    """Cells where auto leads its closest rival by the mean only (the CI reaching 0)."""
    out = []
    for source, mode, cls, _, _, margins in _margins(grid):
        ahead = [m for m in margins if m.margin > 0]
        if ahead and len(ahead) == len(margins):
            closest = min(ahead, key=lambda m: m.margin)
            if closest.margin <= closest.ci95:
                out.append(f"`{cls}` × `{mode}` ({source}): over {closest.versus} by "
                           f"{closest.margin:.1f} ± {closest.ci95:.1f}")
    return out


def _cell(row: Row | None, bold: bool = False) -> str:
    if row is None:
        return "-"
    pct = "" if row.pct_of_oracle is None else f" ({row.pct_of_oracle:.1f}%)"
    text = f"{row.score_per_100:.1f} ± {row.ci95:.1f}{pct}"
    return f"**{text}**" if bold else text


def _header(classes: list[str]) -> list[str]:
    names = [f"`{c}`" + (f" ({CLASS_NAMES[c]})" if c in CLASS_NAMES else "") for c in classes]
    return ["| strategy | " + " | ".join(names) + " |", "|---|" + "---:|" * len(classes)]


def _best(rows: dict[str, Row]) -> str | None:
    """The best scorer of a cell other than the oracle (bold in the tables)."""
    rivals = {name: r for name, r in rows.items() if name != ORACLE}
    return max(rivals, key=lambda n: rivals[n].score_per_100) if rivals else None


def _sim_table(grid: Grid, mode: str) -> str:
    lines = _header(grid.classes)
    best = {cls: _best(grid.sim.get((cls, mode), {})) for cls in grid.classes}
    for name in grid.strategies:
        cells = [_cell(grid.sim.get((cls, mode), {}).get(name), best[cls] == name)
                 for cls in grid.classes]
        label = f"**{name}**" if name == AUTO else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _live_table(grid: Grid, mode: str, classes: list[str]) -> str:
    lines = _header(classes)
    lines[0] = lines[0].replace("| strategy |", "| peer |", 1)
    best = {cls: _best(grid.live.get((cls, mode), {})) for cls in classes}
    for peer in grid.peers:
        cells = [_cell(grid.live.get((cls, mode), {}).get(peer), best[cls] == peer)
                 for cls in classes]
        label = f"**{peer}**" if peer == AUTO else peer
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    oracle = [grid.live_oracle.get((cls, mode)) for cls in classes]
    lines.append("| oracle (simulated, same seeds) | "
                 + " | ".join("-" if r is None else f"{r.score_per_100:.1f} ± {r.ci95:.1f}"
                              for r in oracle) + " |")
    return "\n".join(lines) + "\n"


def _shortfall_line(s: Shortfall) -> str:
    parts = [f"level with {m.versus} (± {m.ci95:.1f})" if round(m.margin, 1) == 0 else
             f"behind {m.versus} by {-m.margin:.1f} per 100 (± {m.ci95:.1f})"
             for m in s.behind]
    if s.below_target:
        parts.append(f"{s.pct_of_oracle:.1f}% of the oracle (which scores "
                     f"{s.oracle_per_100:.1f} per 100), {TARGET_PCT - s.pct_of_oracle:.1f} "
                     f"points short of {TARGET_PCT:g}%")
    return f"- `{s.cls}` × `{s.mode}` ({s.source}, {_seeds(s.seeds)}): " + "; ".join(parts) + "."


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _stalls(records: list[dict]) -> str:
    """The worst generator lag kept per (arrival mode, seed), and the seeds run again."""
    worst: dict[tuple[str, int], dict] = {}
    for r in records:
        worst.setdefault((r["arrivals"], r["seed"]), r)
    cells = ", ".join(f"`{mode}` seed {seed}: {r['stall_max_ms']:.0f} ms"
                      + (f" ({r['tries']} tries)" if r.get("tries", 1) > 1 else "")
                      for (mode, seed), r in worst.items() if "stall_max_ms" in r)
    if not cells:
        return ""
    return (f"A seed during which the load generator fell more than {STALL_LIMIT_MS:.0f} ms "
            f"behind ran again for every peer (at most {MAX_TRIES} tries, the least stalled "
            f"kept). Worst lag kept: {cells}.")


def _commands(meta: dict, live_meta: dict | None) -> str:
    flags = (f"--seeds {len(meta['seeds'])} --requests {meta['requests']} "
             f"--classes {','.join(meta['classes'])} --arrivals {','.join(meta['arrivals'])}")
    if live_meta is not None:
        flags += (f" --live-seeds {len(live_meta['seeds'])} --live-requests "
                  f"{live_meta['requests']} --live-classes {','.join(live_meta['classes'])} "
                  f"--live-arrivals {','.join(live_meta['arrivals'])}")
    else:
        flags += " --skip-live"
    if meta["rps"] != 10.0:
        flags += f" --rps {meta['rps']:g}"
    every = set(meta["strategies"]) == set(strategy_names(include_oracle=True))
    if not every:
        flags += f" --strategies {','.join(s for s in meta['strategies'] if s != ORACLE)}"
    lines = ["make bench-grid                             # everything, then this section",
             f"python -m bench.grid.run {flags}   # this run",
             "python -m bench.grid.run --from-results     # rewrite this section and the "
             "heat map"]
    for mode in meta["arrivals"]:
        command = simulate_command(meta["classes"], meta["requests"], len(meta["seeds"]),
                                   meta["penalty_weight"], parse_arrivals(mode), meta["rps"])
        if not every:
            command[command.index("--strategies") + 1] = ",".join(meta["strategies"])
        lines.append(" ".join(command) + f"   # the `{mode}` table")
    return "```\n" + "\n".join(lines) + "\n```\n"


def grid_section(grid: Grid, image: Path | None, discussion: Path | None = DISCUSSION) -> str:
    """The markdown between the markers."""
    meta, live_meta = grid.sim_meta, grid.live_meta
    rules = meta["rules"]
    classes = "\n".join(f"- `{c}`: {meta['descriptions'].get(c, '')}" for c in grid.classes)
    modes = "\n".join(f"- `{m}`: {describe(m, meta['rps'])}" for m in grid.modes)
    out = [f"""## Robustness grid: limiter class × arrival mode (issue #11)

<!-- Generated by `make bench-grid` (bench/grid/run.py) from bench/grid/results/. Do not
     edit by hand: change bench/grid/ (the "why" lives in bench/grid/discussion.md) and
     run `python -m bench.grid.run --from-results`. bench/peers/report.py keeps this
     part when it rewrites the rest of the file. -->

Every strategy, simulated (virtual time, the fleet's own models), on every limiter class
under every arrival mode: {_seeds(len(meta['seeds']))} x {meta['requests']:,} requests at
{meta['rps']:g} req/s per cell and strategy, the same seeds, ids and send times for every
strategy; scored with {rules['free_attempts']} free attempts and penalty weight
{meta['penalty_weight']:g}, under the live balancer's default rules (at most
{rules['max_attempts']} attempts, deadline {rules['deadline_s']:g} s, attempt timeout
{rules['attempt_timeout_s']:g} s). Each cell reads "score per 100 requests ± 95% CI (% of
the holding oracle)": the oracle, which peeks at the true state and holds an id for
capacity rather than give it up, runs in every cell on the same seeds. The best scorer
other than the oracle is in bold.

Limiter classes (the fleet presets of the same names):

{classes}

Arrival modes (the same mean rate):

{modes}

Simulated part: {meta['date']}, {meta['machine']}, {meta['elapsed_s']:.0f} s.

{_commands(meta, live_meta)}"""]
    for mode in grid.modes:
        out.append(f"### Simulated, `{mode}` arrivals\n\n{_sim_table(grid, mode)}")
    if live_meta is None:
        out.append("### Live\n\nNo live results saved (the run used `--skip-live`).\n")
    else:
        peers = "\n".join(f"- **{name}**: `{config}`" for name, config
                          in live_meta["peers"].items())
        live_classes = [c for c in grid.classes if c in live_meta["classes"]]
        out.append(f"""### Live: `auto` against nginx and HAProxy

Each peer in front of its own fleet (`banditlb fleet` serving
{', '.join(f'`{c}`' for c in live_meta['classes'])}), all (peer, class) streams of a seed
at once, {_seeds(len(live_meta['seeds']))} x {live_meta['requests']:,} requests at
{live_meta['rps']:g} req/s, scored by the fleet's ground truth at penalty weight 1.
nginx and HAProxy take the setting tuned by the peer benchmark
(bench/peers/results/tuning.json). "% of the oracle" divides by the oracle simulated on
the same seeds, requests and arrivals (its row). {_stalls(grid.live_records)}

Live part: {live_meta['date']}, {live_meta['machine']}; {', '.join(
            f'{n} {v}' for n, v in live_meta['packages'].items())}; took
{live_meta['elapsed_s'] / 60:.0f} min.

{peers}
""")
        for mode in [m for m in grid.modes if m in live_meta["arrivals"]]:
            out.append(f"#### Live, `{mode}` arrivals\n\n{_live_table(grid, mode, live_classes)}")
    if image is not None:
        out.append(f"### Heat map\n\nEvery cell (rows) by strategy and live peer (columns), "
                   f"colour and number = % of the holding oracle (simulated on the same "
                   f"seeds); blank where a peer did not run.\n\n"
                   f"![% of the holding oracle per cell and strategy]({image.as_posix()})\n")
    misses = shortfalls(grid)
    close = close_calls(grid)
    listed = "\n".join(map(_shortfall_line, misses)) if misses else \
        "None: `auto` is ahead of every rival and at its oracle target in every cell."
    why = discussion.read_text().strip() if discussion is not None and discussion.exists() \
        else PLACEHOLDER
    near = ("\n\nAhead by the mean only (the 95% CI of the lead reaching 0), against the "
            "closest rival: " + "; ".join(close) + ".") if close else ""
    out.append(f"""### Where `auto` is not ahead, or below {TARGET_PCT:g}% of the oracle

Cells where `auto`'s mean score is not above every other strategy's (simulated cells:
every simulated strategy, CIs combined as independent) or every live peer's (live cells:
per-seed differences), or below {TARGET_PCT:g}% of the holding oracle where the oracle
scores at least {ORACLE_FLOOR:g} per 100:

{listed}{near}

{why}
""")
    return "\n".join(out)


def write_grid_report(results: Path, doc_path: Path,
                      discussion: Path | None = DISCUSSION) -> list[Shortfall]:
    """Replace the grid section of `doc_path` (the rest untouched) and draw the heat map
    next to it (`img/robustness-grid.png`); the cells where auto falls short."""
    grid = load_grid(results)
    image = doc_path.parent / IMAGE
    image.parent.mkdir(parents=True, exist_ok=True)
    plot_heatmap(grid, image)
    old = doc_path.read_text() if doc_path.exists() else ""
    doc_path.write_text(replace_section(old, grid_section(grid, IMAGE, discussion)))
    return shortfalls(grid)


def heat_rows(grid: Grid) -> tuple[list[str], list[str], list[list[float]]]:
    """Row labels (class x mode, with the oracle's score), column labels (strategies but the
    oracle, then the live peers) and % of the oracle (NaN where nothing ran)."""
    columns = [s for s in grid.strategies if s != ORACLE]
    live_columns = [f"{peer} (live)" for peer in grid.peers]
    labels, values = [], []
    for cls in grid.classes:
        for mode in grid.modes:
            sim = grid.sim.get((cls, mode), {})
            oracle = sim.get(ORACLE)
            labels.append(f"{cls} · {mode}"
                          + (f" (oracle {oracle.score_per_100:.0f})" if oracle else ""))
            live = grid.live.get((cls, mode), {})
            row = [_pct_or_nan(sim.get(s)) for s in columns]
            row += [_pct_or_nan(live.get(peer)) for peer in grid.peers]
            values.append(row)
    return labels, columns + live_columns, values


def _pct_or_nan(row: Row | None) -> float:
    return math.nan if row is None or row.pct_of_oracle is None else row.pct_of_oracle


def plot_heatmap(grid: Grid, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels, columns, values = heat_rows(grid)
    data = np.array(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(7.0, 3.5 + 0.62 * len(columns)),
                                    1.6 + 0.34 * len(labels)))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#e8e8e8")
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=50, vmax=100,
                      aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not math.isnan(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="black")
    ax.set_xticks(range(len(columns)), columns, rotation=55, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    sims = len([s for s in grid.strategies if s != ORACLE])
    if grid.peers:
        ax.axvline(sims - 0.5, color="black", linewidth=1.2)
    for k in range(1, len(grid.classes)):
        ax.axhline(k * len(grid.modes) - 0.5, color="white", linewidth=1.5)
    colorbar = fig.colorbar(image, ax=ax, extend="both", fraction=0.03, pad=0.02)
    colorbar.set_label("% of the holding oracle")
    ax.set_title("Robustness grid: % of the holding oracle\nrows: limiter class · arrivals; "
                 "columns: simulated strategies, then live peers", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
