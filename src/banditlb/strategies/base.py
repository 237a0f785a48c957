"""What every chooser shares: rank the servers the admission layer says are ready.

A chooser is pure decision logic about quality. It never reads the clock or the
network and never decides whether a server admits (that is the admission layer's
job, `banditlb.admission`): the router hands it the ready servers, `now`, the
attempt number and what was tried for this id. Each chooser owns a seeded RNG,
so the same seed and the same outcomes give the same decisions live and in the
simulator.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Sequence
from typing import NamedTuple

from banditlb.outcomes import Outcome


class Context(NamedTuple):
    """What a chooser may know when it picks the next server for one id (a NamedTuple:
    the router makes one per attempt)."""

    now: float
    attempt: int = 0
    """0-based number of this attempt for this id."""
    tried: tuple[int, ...] = ()
    """Servers already tried for this id, in order (repeats possible)."""


class Chooser:
    """Base class: subclasses implement choose/observe/quality.

    Servers are indices 0..n_servers-1; the caller maps them to addresses.
    Constructor keyword arguments are the chooser's parameters, with defaults
    from the write-up or the literature; `params` reports them.
    """

    def __init__(self, n_servers: int, *, seed: int = 0):
        if n_servers < 1:
            raise ValueError("a strategy needs at least one server")
        self.n = n_servers
        self.seed = seed
        self.rng = random.Random(seed)
        self.requests = 0

    @classmethod
    def param_defaults(cls) -> dict:
        """The chooser's parameters and their defaults: its constructor's keywords
        other than seed and truth (so the registry and the CLI never keep a second list)."""
        signature = inspect.signature(cls.__init__)
        return {p.name: p.default for p in signature.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "truth")}

    def begin_request(self, now: float) -> None:
        """A new id arrives; called once per id before its first choice."""
        self.requests += 1

    def end_request(self, now: float, accepted: bool, attempts: int) -> None:
        """The router is done with an id (accepted or gave up)."""

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        """The server to try next among `ready` (never empty)."""
        raise NotImplementedError

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        """Learn from one attempt's outcome; `now` is when the outcome arrived."""
        raise NotImplementedError

    def quality(self, server: int, now: float) -> float:
        """Estimated probability that an attempt `server` admits is accepted (for the
        strategies that learn a 429 as a failure, that an attempt is accepted at all)."""
        raise NotImplementedError

    def snapshot(self, now: float) -> dict:
        """Per-server beliefs about quality, for /stats and the dashboard."""
        return {"quality": [round(self.quality(s, now), 4) for s in range(self.n)]}


class RetryHabit(Chooser):
    """The original write-up's retry habit (v1-v8): within the free attempts an id is
    not sent twice to the same server; past them, the server believed best.
    Subclasses say how they explore; `free_attempts` must be set by the subclass."""

    free_attempts: int

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        if ctx.attempt >= self.free_attempts:
            return self.exploit(ready, ctx)
        tried = ctx.tried
        if not tried:
            return self.explore(ready, ctx)
        fresh = [s for s in ready if s not in tried]
        return self.explore(fresh or ready, ctx)

    def explore(self, candidates: Sequence[int], ctx: Context) -> int:
        """Pick among `candidates` (ready, not yet tried for this id when possible)."""
        raise NotImplementedError

    def exploit(self, ready: Sequence[int], ctx: Context) -> int:
        """Past the free attempts: the best known server."""
        now = ctx.now
        return max(ready, key=lambda s: self.quality(s, now))
