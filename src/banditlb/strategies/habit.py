"""What v1-v8 share: the original write-up's retry habit, and holding servers back.

Within the free attempts an id is not sent twice to the same server (the
write-up's habit); past them the policy goes to the server it believes best.
v6-v8 also hold servers back after a 429 (a mask or a block) until a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from banditlb.strategies.base import Context, Policy


class Quarantine:
    """Servers held back until a time; when every usable one is held, the one
    released soonest (for a fixed cooldown that is also the one limited longest ago)."""

    __slots__ = ("until",)

    def __init__(self, n_servers: int):
        self.until = [-math.inf] * n_servers

    def hold(self, server: int, until: float) -> None:
        self.until[server] = until

    def ready(self, servers: Sequence[int], now: float) -> list[int]:
        until = self.until
        return [s for s in servers if now >= until[s]]

    def soonest(self, servers: Sequence[int]) -> int:
        return min(servers, key=self.until.__getitem__)

    def as_list(self, now: float) -> list[float | None]:
        """Per server: the time it is held until, None when it is not held."""
        return [t if t > now else None for t in self.until]


class RetryHabit(Policy):
    """Template for v1-v8: subclasses say how they explore (`explore`) and, if they
    hold servers back, set `quarantine`. `free_attempts` must be set by the subclass."""

    free_attempts: int
    quarantine: Quarantine | None = None

    def select(self, ctx: Context) -> int | None:
        unavailable = ctx.unavailable
        usable = [s for s in range(self.n) if s not in unavailable] if unavailable \
            else range(self.n)
        if not usable:
            return None
        held = self.quarantine
        ready = held.ready(usable, ctx.now) if held else usable
        if not ready:
            return held.soonest(usable)
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
        return max(ready, key=lambda s: self.estimate(s, now))
