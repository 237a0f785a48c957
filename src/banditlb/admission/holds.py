"""Holding a server back after a 429 until a time: v6/v7's mask and v8's growing block.

When every server is held, the documented fallback of v6-v8 is the server
released soonest (for a fixed cooldown, the one limited longest ago).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from banditlb.admission.base import Admission
from banditlb.outcomes import ACCEPTED, RATE_LIMITED, Outcome
from banditlb.quota import Quota


class HeldUntil(Admission):
    """Servers held back until a time; subclasses say how long a 429 holds one."""

    def __init__(self, n_servers: int):
        super().__init__(n_servers)
        self.until = [-math.inf] * n_servers

    def ready(self, now: float, last_chance: bool) -> Sequence[int]:
        until = self.until
        return [s for s in range(self.n) if now >= until[s]]

    def chance(self, server: int, now: float) -> float:
        return 1.0 if now >= self.until[server] else 0.0

    def next_admit(self, server: int, now: float, last_chance: bool) -> float:
        return max(now, self.until[server])

    def probes(self, now: float) -> Sequence[int]:
        return (min(range(self.n), key=self.until.__getitem__),)

    def as_list(self, now: float) -> list[float | None]:
        """Per server: the time it is held until, None when it is not held."""
        return [t if t > now else None for t in self.until]


class Mask(HeldUntil):
    """v6/v7: a 429 masks the server for `cooldown_s`."""

    def __init__(self, n_servers: int, *, cooldown_s: float = 1.0):
        super().__init__(n_servers)
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.cooldown_s = cooldown_s

    def observe(self, server: int, outcome: Outcome, now: float,
                retry_after_s: float | None, quota: Quota | None = None) -> None:
        if outcome is RATE_LIMITED:
            self.until[server] = now + self.cooldown_s

    def snapshot(self, now: float) -> dict:
        return {"masked_until": self.as_list(now)}


class Block(HeldUntil):
    """v8: a 429 blocks the server for block_s times a multiplier that starts at 1 and
    doubles with each 429 up to max_multiplier (5, 10, 20, 20 s by default); an
    accepted attempt resets it."""

    def __init__(self, n_servers: int, *, block_s: float = 5.0, max_multiplier: float = 4.0):
        super().__init__(n_servers)
        if block_s < 0 or max_multiplier < 1:
            raise ValueError("block_s must be >= 0 and max_multiplier >= 1")
        self.block_s, self.max_multiplier = block_s, max_multiplier
        self.multiplier = [1.0] * n_servers

    def observe(self, server: int, outcome: Outcome, now: float,
                retry_after_s: float | None, quota: Quota | None = None) -> None:
        if outcome is RATE_LIMITED:
            self.until[server] = now + self.block_s * self.multiplier[server]
            self.multiplier[server] = min(self.max_multiplier, self.multiplier[server] * 2)
        elif outcome is ACCEPTED:
            self.multiplier[server] = 1.0

    def snapshot(self, now: float) -> dict:
        return {"blocked_until": self.as_list(now), "block_multiplier": list(self.multiplier)}
