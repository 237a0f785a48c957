"""Showing a run matrix: a progress bar while it runs, then one table and the winners."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from banditlb.harness.live_runs import MatrixConfig, RunResult, iter_runs
from banditlb.store import RequestRow


def run_with_progress(config: MatrixConfig, console: Console) -> list[RunResult]:
    """Run the matrix with a progress bar per run; on Ctrl-C return the finished runs.

    The caller learns about an interruption from len(result) < the matrix size.
    """
    results: list[RunResult] = []
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:

        def on_run_start(strategy: str, scenario: str, total: int
                         ) -> Callable[[RequestRow], None]:
            task = bar.add_task(f"{strategy:>8} on {scenario}", total=total)
            return lambda _row: bar.advance(task)

        try:
            for result in iter_runs(config, on_run_start):
                results.append(result)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: keeping the runs finished so far[/yellow]")
    return results


def print_results(console: Console, results: list[RunResult]) -> None:
    """A table per scenario, best score in bold, then the winner per scenario."""
    if not results:
        console.print("no run finished")
        return
    winners = {}
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = sorted((r for r in results if r.scenario == scenario), key=lambda r: -r.score)
        best = rows[0].score
        winners[scenario] = ([r.strategy for r in rows if r.score == best], best)
        modes = ", ".join(dict.fromkeys(r.arrivals for r in rows))
        table = Table(title=f"{scenario}: {rows[0].requests} requests per run, {modes} "
                            f"arrivals; score from the fleet's ground truth, latency "
                            f"(p50, p99) at the client")
        table.add_column("strategy")
        for column in ("run", "score", "accepted", "penalized", "429s", "attempts",
                       "p50 ms", "p99 ms"):
            table.add_column(column, justify="right")
        for r in rows:
            table.add_row(r.strategy, str(r.run_id), f"{r.score:g}",
                          f"{r.ids_accepted}/{r.requests}", str(r.penalized_attempts),
                          str(r.rate_limited), str(r.attempts), f"{r.client_p50_ms:.1f}",
                          f"{r.client_p99_ms:.1f}",
                          style="bold green" if r.score == best else None)
        console.print(table)
    for scenario, (names, best) in winners.items():
        console.print(f"winner on {scenario}: [bold]{', '.join(names)}[/bold] (score {best:g})")
    for r in results:
        if not r.recording or r.dropped:
            console.print(f"[yellow]run {r.run_id}: the balancer dropped {r.dropped} attempt "
                          f"rows (recording: {r.recording})[/yellow]")
