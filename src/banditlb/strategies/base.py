"""One interface for every strategy: select a server, observe what happened.

A policy is pure decision logic. It never reads the clock or the network: the
router hands it `now`, the attempt number and what was tried for this id, and
each policy owns a seeded RNG, so the same seed and the same outcomes give the
same decisions live and in the simulator.
"""

from __future__ import annotations

import inspect
import random
from typing import ClassVar, NamedTuple

from banditlb.outcomes import Outcome


class Context(NamedTuple):
    """What a policy may know when it picks the next server for one id (a NamedTuple:
    the router makes one per attempt)."""

    now: float
    attempt: int = 0
    """0-based number of this attempt for this id."""
    tried: tuple[int, ...] = ()
    """Servers already tried for this id, in order (repeats possible)."""
    unavailable: frozenset[int] = frozenset()
    """Servers the caller knows cannot be used right now (down, ejected)."""


class Policy:
    """Base class: subclasses set `name`/`alias` and implement select/observe/estimate.

    Servers are indices 0..n_servers-1; the caller maps them to addresses.
    Constructor keyword arguments are the strategy's parameters, with defaults
    from the write-up or the literature; `params` reports them.
    """

    name: ClassVar[str] = ""
    alias: ClassVar[str] = ""
    needs_truth: ClassVar[bool] = False
    """True only for the oracle, which the simulator feeds the fleet's true state."""

    def __init__(self, n_servers: int, *, seed: int = 0):
        if n_servers < 1:
            raise ValueError("a policy needs at least one server")
        self.n = n_servers
        self.seed = seed
        self.rng = random.Random(seed)
        self.requests = 0

    @classmethod
    def param_defaults(cls) -> dict:
        """The strategy's parameters and their defaults: its constructor's keywords
        other than seed and truth (so the registry and the CLI never keep a second list)."""
        signature = inspect.signature(cls.__init__)
        return {p.name: p.default for p in signature.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "truth")}

    @property
    def params(self) -> dict:
        """The strategy's parameters (constructor keywords other than n_servers/seed),
        read from the attributes of the same names."""
        return {name: getattr(self, name) for name in self.param_defaults()}

    def begin_request(self, now: float) -> None:
        """A new id arrives; called once per id before its first select."""
        self.requests += 1

    def end_request(self, now: float, accepted: bool, attempts: int) -> None:
        """The router is done with an id (accepted or gave up)."""

    def select(self, ctx: Context) -> int | None:
        """The server to try next, or None when no server is usable now."""
        raise NotImplementedError

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float,
                retry_after_s: float | None = None) -> None:
        """Learn from one attempt's outcome; `now` is when the outcome arrived."""
        raise NotImplementedError

    def estimate(self, server: int, now: float) -> float:
        """Estimated probability that an attempt sent to `server` now is accepted.

        The router compares it with the penalty weight to decide whether an
        attempt beyond the free ones is worth its cost.
        """
        raise NotImplementedError

    def snapshot(self, now: float) -> dict:
        """Per-server beliefs for /stats and the dashboard."""
        return {"estimates": [round(self.estimate(s, now), 4) for s in range(self.n)]}

    def untried_candidates(self, ctx: Context, free_attempts: int = 3) -> list[int]:
        """The original write-up's retry habit: within the free attempts skip servers
        already tried for this id; always skip unavailable ones. Falls back to every
        available server when the filter leaves none."""
        usable = [s for s in range(self.n) if s not in ctx.unavailable]
        if ctx.attempt < free_attempts and ctx.tried:
            fresh = [s for s in usable if s not in ctx.tried]
            if fresh:
                return fresh
        return usable
