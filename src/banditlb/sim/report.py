"""Presenting simulated results: a Rich table per scenario, JSON lines, a regret plot."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from banditlb.sim.matrix import Summary


def print_tables(console: Console, summaries: list[Summary]) -> None:
    for scenario in dict.fromkeys(s.scenario for s in summaries):
        rows = [s for s in summaries if s.scenario == scenario]
        first = rows[0]
        table = Table(title=f"{scenario}: {first.seeds} seeds x {first.requests} requests")
        for col in ("strategy", "score/100 (95% CI)", "% of oracle", "accepted %",
                    "penalized/100", "429s/100"):
            table.add_column(col, justify="left" if col == "strategy" else "right")
        best = max(r.score_per_100 for r in rows if r.strategy != "oracle")
        for r in sorted(rows, key=lambda r: -r.score_per_100):
            style = "bold green" if r.score_per_100 == best and r.strategy != "oracle" else None
            pct = "-" if r.pct_of_oracle is None else f"{r.pct_of_oracle:.1f}"
            table.add_row(r.strategy, f"{r.score_per_100:.1f} ± {r.ci95:.1f}", pct,
                          f"{r.accepted_pct:.1f}", f"{r.penalized_per_100:.2f}",
                          f"{r.rate_limited_per_100:.1f}", style=style)
        console.print(table)


def print_markdown(summaries: list[Summary]) -> None:
    """One Markdown table per scenario, best first, for the docs."""
    for scenario in dict.fromkeys(s.scenario for s in summaries):
        rows = sorted((s for s in summaries if s.scenario == scenario),
                      key=lambda r: -r.score_per_100)
        print(f"\n**{scenario}** ({rows[0].seeds} seeds x {rows[0].requests} requests)\n")
        print("| strategy | score/100 (95% CI) | % of oracle | accepted % | penalized/100 "
              "| 429s/100 |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            pct = "-" if r.pct_of_oracle is None else f"{r.pct_of_oracle:.1f}"
            print(f"| {r.strategy} | {r.score_per_100:.2f} ± {r.ci95:.2f} | {pct} "
                  f"| {r.accepted_pct:.1f} | {r.penalized_per_100:.2f} "
                  f"| {r.rate_limited_per_100:.1f} |")


def print_json(summaries: list[Summary]) -> None:
    for s in summaries:
        print(json.dumps(s.as_json()), flush=True)


def plot_regret(summaries: list[Summary], path: Path) -> None:
    """Cumulative regret against the oracle, one panel per scenario, 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(s.scenario for s in summaries))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.5),
                             squeeze=False)
    names = list(dict.fromkeys(s.strategy for s in summaries if s.strategy != "oracle"))
    palette = plt.get_cmap("tab20")
    colour = {name: "black" if name == "auto" else palette(i % 20)
              for i, name in enumerate(names)}
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for s in summaries:
            if s.scenario != scenario or s.strategy == "oracle" or s.regret_mean is None:
                continue
            x = range(1, len(s.regret_mean) + 1)
            ax.plot(x, s.regret_mean, label=s.strategy, color=colour[s.strategy],
                    linewidth=2.2 if s.strategy == "auto" else 1.2)
            ax.fill_between(x, s.regret_mean - s.regret_ci95, s.regret_mean + s.regret_ci95,
                            color=colour[s.strategy], alpha=0.15)
        ax.set_title(f"{scenario}: cumulative regret vs oracle")
        ax.set_xlabel("request")
        ax.set_ylabel("regret (oracle score - score)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
