"""Option parsing shared by several sub-commands: clear errors, exit code 2."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console

from banditlb.attempts import Rules
from banditlb.fleet.scenario import Scenario, ScenarioError, load_scenario
from banditlb.strategies import canonical_name, strategy_names

CHALLENGE_SCENARIOS = ("T1", "T2", "T3")

# The router's rules as options, worded once for every command that takes them.
PenaltyWeight = Annotated[float, typer.Option(
    min=0, help="Cost of each attempt beyond the free ones.")]
FreeAttempts = Annotated[int, typer.Option(min=0, help="Attempts per id that cost nothing.")]
MaxAttempts = Annotated[int, typer.Option(min=1, help="Hard cap of attempts per id.")]
AttemptTimeoutMs = Annotated[float, typer.Option(min=1, help="Per-attempt timeout.")]


def fail(message: str) -> NoReturn:
    """Print a user-facing error and exit 2 (bad usage), no traceback."""
    Console(stderr=True).print(f"[bold red]error:[/bold red] {message}")
    raise typer.Exit(2)


def resolve_strategies(spec: str, include_oracle: bool) -> list[str]:
    """'all' or comma-separated names/aliases -> canonical short names, in order given."""
    if spec.strip().lower() == "all":
        return strategy_names(include_oracle=include_oracle)
    names = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            name = canonical_name(item)
        except ValueError as exc:
            fail(str(exc))
        if name == "oracle" and not include_oracle:
            fail("the oracle exists only in the simulator (it reads the fleet's true state)")
        if name not in names:
            names.append(name)
    if not names:
        fail("no strategy given")
    return names


def resolve_scenarios(spec: str) -> list[Scenario]:
    items = CHALLENGE_SCENARIOS if spec.strip().lower() == "all" else \
        [s.strip() for s in spec.split(",") if s.strip()]
    try:
        return [load_scenario(item) for item in items] or fail("no scenario given")
    except ScenarioError as exc:
        fail(str(exc))


def parse_rules(penalty_weight: float, free_attempts: int, max_attempts: int,
                attempt_timeout_ms: float, deadline_ms: float | None) -> Rules:
    try:
        return Rules(free_attempts=free_attempts, penalty_weight=penalty_weight,
                     max_attempts=max_attempts, attempt_timeout_s=attempt_timeout_ms / 1000,
                     deadline_s=None if deadline_ms is None else deadline_ms / 1000)
    except ValueError as exc:
        fail(str(exc))
