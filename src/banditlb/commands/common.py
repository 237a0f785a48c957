"""Option parsing shared by several sub-commands: clear errors, exit code 2."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from banditlb.arrivals import Arrivals, ArrivalsError, parse_arrivals
from banditlb.fleet.scenario import Scenario, ScenarioError, load_scenario
from banditlb.rules import Rules
from banditlb.strategies import canonical_name, strategy_names

CHALLENGE_SCENARIOS = ("T1", "T2", "T3")

# The router's rules as options, worded once for every command that takes them.
PenaltyWeight = Annotated[float, typer.Option(
    min=0, help="Cost of each attempt beyond the free ones.")]
FreeAttempts = Annotated[int, typer.Option(min=0, help="Attempts per id that cost nothing.")]
MaxAttempts = Annotated[int, typer.Option(min=1, help="Hard cap of attempts per id.")]
AttemptTimeoutMs = Annotated[float, typer.Option(min=1, help="Per-attempt timeout.")]
DeadlineMs = Annotated[float, typer.Option(
    min=1, help="Per-id deadline: attempts and waits for capacity end by then.")]
MaxWaiting = Annotated[int, typer.Option(
    min=0, help="Ids that may wait for capacity at once; beyond, the answer is 503 with "
                "Retry-After.")]
ArrivalsOption = Annotated[str, typer.Option(
    help="How ids are sent, at a mean of --rps: uniform, poisson (seeded), burst:N (N at "
         "once), closed:N (N clients, each sending its next id once its previous one is "
         "answered) or trace:FILE (send times in seconds, one per line).")]


def fail(message: str) -> NoReturn:
    """Print a user-facing error and exit 2 (bad usage), no traceback. The message is
    text, never markup: a value the user typed ("[::1]", "[/path]") is printed as is."""
    Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}")
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


def arrivals_option(spec: str) -> Arrivals:
    """The --arrivals value, or exit 2 with the accepted forms."""
    try:
        return parse_arrivals(spec)
    except ArrivalsError as exc:
        fail(str(exc))
