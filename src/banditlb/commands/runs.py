"""`banditlb runs`: list, show and export the runs recorded in the store."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from banditlb.commands.common import fail
from banditlb.store import (
    DEFAULT_DATA_DIR,
    Store,
    StoreError,
    db_path,
    score_attempts,
    write_attempts_csv,
)

runs_app = typer.Typer(help="Recorded runs: list them, show one, export one to CSV.",
                       no_args_is_help=True)

DataDir = Annotated[Path, typer.Option(help="Directory holding banditlb.sqlite3.")]
RunId = Annotated[int, typer.Argument(help="Run number, as `banditlb runs list` shows it.")]
OUTCOME_COLUMNS = {"accepted": "accepted", "failed": "failed", "rate_limited": "429",
                   "timeout": "timeout", "conn_error": "conn err"}


@runs_app.command("list")
def list_runs(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    session: Annotated[str | None, typer.Option(help="Only this session's runs.")] = None,
) -> None:
    """One line per run: strategy, scenario, when, how many attempts, score."""
    if not db_path(data_dir).exists():
        Console().print(f"no runs recorded in {data_dir} yet (run `banditlb harness` or "
                        f"`banditlb demo`, or pass --data-dir)")
        return
    with open_store(data_dir) as store:
        session_id = None
        if session is not None:
            session_id = store.session_by_name(session)
            if session_id is None:
                names = ", ".join(s["name"] for s in store.sessions()) or "none"
                fail(f"no session named {session!r} in {data_dir} (sessions: {names})")
        runs = store.runs(session_id)
    table = Table(title=f"runs in {db_path(data_dir)}", box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False, collapse_padding=True)
    table.add_column("run", justify="right")
    table.add_column("session", max_width=14, overflow="ellipsis", no_wrap=True)
    for column in ("strategy", "scenario", "started"):
        table.add_column(column, no_wrap=True)
    for column in ("attempts", "accepted", "score"):
        table.add_column(column, justify="right")
    for run in runs:
        summary = run["summary"]
        table.add_row(str(run["id"]), run["session_name"], run["strategy"],
                      run["scenario"] or "-", when(run["started_at"], "%m-%d %H:%M"),
                      str(run["attempt_rows"]),
                      str(summary.get("ids_accepted", "-")), number(summary.get("score")))
    Console().print(table)


@runs_app.command("show")
def show_run(run_id: RunId, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """A run's settings, its summary, the score recomputed from its attempts, and per upstream."""
    with open_store(data_dir, must_exist=True) as store:
        run = find_run(store, run_id, data_dir)
        attempts = store.attempts(run_id)
    summary = run["summary"]
    console = Console()
    about = key_value_table(f"run {run_id}", {
        "session": f"{run['session_name']} (#{run['session_id']})",
        "strategy": run["strategy"], "scenario": run["scenario"] or "-",
        "source": run["source"], "seed": run["seed"], "params": json.dumps(run["params"]),
        "started": when(run["started_at"]), "duration": duration(run),
        "attempt rows": run["attempt_rows"], "request rows": run["request_rows"]})
    console.print(about)
    if summary:
        console.print(key_value_table("summary", summary))
    rules = {"penalty_weight": summary.get("penalty_weight", 1.0),
             "free_attempts": summary.get("free_attempts", 3)}
    console.print(key_value_table(
        "score from stored attempts", {**rules, **score_attempts(attempts, **rules)}))
    if attempts:
        console.print(upstream_table(attempts))


@runs_app.command("export")
def export_run(
    run_id: RunId,
    csv: Annotated[Path, typer.Option("--csv", help="CSV file to write (one line per "
                                      "attempt).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write a run's attempts as CSV, in the columns of the original write-up."""
    with open_store(data_dir, must_exist=True) as store:
        run = find_run(store, run_id, data_dir)
        attempts = store.attempts(run_id)
    try:
        with csv.open("w", newline="") as out:
            lines = write_attempts_csv(out, run, attempts)
    except OSError as exc:
        fail(f"cannot write {csv}: {exc.strerror or exc}")
    Console(stderr=True).print(f"{lines} attempts of run {run_id} written to {csv}")


def open_store(data_dir: Path, must_exist: bool = False) -> Store:
    if must_exist and not db_path(data_dir).exists():
        fail(f"no run store in {data_dir} (no {db_path(data_dir).name}); pass --data-dir")
    try:
        return Store(data_dir)
    except StoreError as exc:
        fail(str(exc))


def find_run(store: Store, run_id: int, data_dir: Path) -> dict:
    run = store.run(run_id)
    if run is None:
        fail(f"no run {run_id} in {data_dir}; `banditlb runs list` shows the runs there")
    return run


def key_value_table(title: str, values: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in values.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else number(value)
        table.add_row(str(key), shown)
    return table


def upstream_table(attempts: list[dict]) -> Table:
    outcomes: dict[str, Counter] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    for a in attempts:
        outcomes[a["upstream"]][a["outcome"]] += 1
        latencies[a["upstream"]].append(a["latency_ms"])
    table = Table(title="per upstream", title_justify="left")
    table.add_column("upstream", no_wrap=True)
    for column in ("attempts", *OUTCOME_COLUMNS.values(), "p50 ms"):
        table.add_column(column, justify="right")
    for upstream in sorted(outcomes):
        counts = outcomes[upstream]
        table.add_row(upstream, str(counts.total()), *(str(counts[o]) for o in OUTCOME_COLUMNS),
                      f"{median(latencies[upstream]):.1f}")
    return table


def when(ts: float, layout: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts).strftime(layout)


def duration(run: dict) -> str:
    if run["ended_at"] is None:
        return "running"
    return f"{run['ended_at'] - run['started_at']:.1f} s"


def number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)
