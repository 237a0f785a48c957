"""The oracle's admission: the fleet's true capacity, read from the models themselves.

Only the simulator can build it (it owns the models); it lets the oracle hold an id
for capacity up to its deadline, so it stays an upper reference under bursts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from banditlb.admission.base import Admission


class TrueState(Protocol):
    def true_success(self, now: float) -> float: ...

    def available(self, now: float) -> bool: ...

    def admits_in(self, now: float) -> float: ...


class TrueCapacity(Admission):
    def __init__(self, n_servers: int, *, truth: Sequence[TrueState] | None = None):
        super().__init__(n_servers)
        if truth is None:
            raise ValueError("the oracle needs the fleet's true state (truth=...), which "
                             "only the simulator has")
        if len(truth) != n_servers:
            raise ValueError(f"truth describes {len(truth)} servers, the strategy has "
                             f"{n_servers}")
        self.truth = truth
        self._all = tuple(range(n_servers))

    def ready(self, now: float, last_chance: bool) -> Sequence[int]:
        truth = self.truth
        return [s for s in self._all if truth[s].available(now)]

    def chance(self, server: int, now: float) -> float:
        return 1.0 if self.truth[server].available(now) else 0.0

    def next_admit(self, server: int, now: float, last_chance: bool) -> float:
        return now + self.truth[server].admits_in(now)

    def probes(self, now: float) -> Sequence[int]:
        return self._all
