"""The admission interface, and the rule of the strategies that have no belief about it."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from banditlb.outcomes import Outcome
from banditlb.quota import Quota


class Admission:
    """Per upstream: will it admit an attempt now, and when will it next?

    Subclasses take their parameters as keyword arguments (defaults from the
    write-up or the literature), like the choosers, so a strategy's parameters are
    the union of its chooser's and its admission rule's.
    """

    def __init__(self, n_servers: int):
        self.n = n_servers

    @classmethod
    def param_defaults(cls) -> dict:
        signature = inspect.signature(cls.__init__)
        return {p.name: p.default for p in signature.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name != "truth"}

    def ready(self, now: float, last_chance: bool) -> Sequence[int]:
        """Servers expected to admit an attempt sent now. `last_chance` is the router
        saying this is an id's last free attempt, which may use capacity kept in reserve."""
        raise NotImplementedError

    def chance(self, server: int, now: float) -> float:
        """Probability that an attempt sent to `server` now is admitted (not refused)."""
        raise NotImplementedError

    def next_admit(self, server: int, now: float, last_chance: bool) -> float:
        """The earliest time `server` is expected to admit (`now` when it is ready)."""
        raise NotImplementedError

    def probes(self, now: float) -> Sequence[int]:
        """When none is ready and the id cannot wait: the servers worth trying anyway."""
        raise NotImplementedError

    def sent(self, server: int, now: float) -> None:
        """An attempt leaves for `server` now (it takes the capacity it expects)."""

    def observe(self, server: int, outcome: Outcome, now: float,
                retry_after_s: float | None, quota: Quota | None = None) -> None:
        """What the attempt's answer says about capacity; `now` is when it arrived."""

    def sent_elsewhere(self, server: int, now: float) -> None:
        """Another replica sent `server` an attempt (learned through shared state): it
        takes capacity too, so the replicas together pace to the server's, not N times it.
        Rules that keep no bucket have nothing to take."""

    def observe_elsewhere(self, server: int, outcome: Outcome, now: float,
                          retry_after_s: float | None, quota: Quota | None,
                          crowded: bool) -> None:
        """Another replica's answer from `server`; `crowded`: refused while others of that
        replica's were in flight there. Rules that track nothing in flight learn it as
        their own."""
        self.observe(server, outcome, now, retry_after_s, quota)

    def snapshot(self, now: float) -> dict:
        """Per-server beliefs about capacity, for /stats and the dashboard."""
        return {}


class Open(Admission):
    """No belief about capacity: every server is always ready (v1-v5, v9, v10 and the
    baselines, as the original write-up has them; a 429 is their chooser's business)."""

    def __init__(self, n_servers: int):
        super().__init__(n_servers)
        self._all = tuple(range(n_servers))

    def ready(self, now: float, last_chance: bool) -> Sequence[int]:
        return self._all

    def chance(self, server: int, now: float) -> float:
        return 1.0

    def next_admit(self, server: int, now: float, last_chance: bool) -> float:
        return now

    def probes(self, now: float) -> Sequence[int]:
        return self._all
