"""A strategy: a chooser (quality) with an admission rule (capacity), and whether it holds.

This is what the router drives. `estimate` is the chance an attempt sent now is
accepted: the chooser's quality times the admission rule's chance of admitting.
`hold` says whether an id may wait for capacity (up to its deadline) when no
server is ready, instead of trying one that is expected to refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from banditlb.admission.base import Admission
from banditlb.outcomes import Outcome
from banditlb.quota import Quota
from banditlb.strategies.base import Chooser


class Strategy:
    __slots__ = ("name", "alias", "chooser", "admission", "hold", "params", "n", "weights")

    def __init__(self, name: str, alias: str, chooser: Chooser, admission: Admission,
                 hold: bool, params: dict):
        self.name, self.alias = name, alias
        self.chooser, self.admission = chooser, admission
        self.hold = hold
        self.params = params
        """Every parameter with its value (chooser's, admission rule's and hold)."""
        self.n = chooser.n
        self.weights: tuple[float, ...] | None = None
        """Per upstream, how much it is preferred at equal quality (None: all alike)."""

    def offered(self, ready: Sequence[int]) -> Sequence[int]:
        """The ready upstreams the chooser may pick from, thinned by weight: each is
        offered with probability its weight over the highest weight ready, so at equal
        quality traffic leans toward the heavier ones, and a weight of 0 makes an
        upstream a backup, used only when no weighted one is ready. The draws come from
        the chooser's seeded RNG (the same seed, the same decisions)."""
        weights = self.weights
        top = max(weights[s] for s in ready)
        if top <= 0.0:
            return ready
        draw = self.chooser.rng.random
        return [s for s in ready if weights[s] >= top or draw() < weights[s] / top]

    def estimate(self, server: int, now: float) -> float:
        """Probability that an attempt sent to `server` now is accepted."""
        return self.chooser.quality(server, now) * self.admission.chance(server, now)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float,
                retry_after_s: float | None = None, quota: Quota | None = None,
                judged: bool = True) -> None:
        """One attempt's answer: capacity to the admission rule, quality to the chooser
        (unless it says nothing about quality: `judged` false)."""
        self.admission.observe(server, outcome, now, retry_after_s, quota)
        if judged:
            self.chooser.observe(server, outcome, now, latency_s)

    def sent_elsewhere(self, server: int, now: float) -> None:
        """Another replica sent `server` an attempt (shared state, banditlb.shared)."""
        self.admission.sent_elsewhere(server, now)

    def observe_elsewhere(self, server: int, outcome: Outcome, now: float, latency_s: float,
                          retry_after_s: float | None, quota: Quota | None, judged: bool,
                          crowded: bool) -> None:
        """Another replica's answer: evidence about capacity and quality, as good as ours
        (the chooser cannot tell it from its own)."""
        self.admission.observe_elsewhere(server, outcome, now, retry_after_s, quota, crowded)
        if judged:
            self.chooser.observe(server, outcome, now, latency_s)

    def snapshot(self, now: float) -> dict:
        """Per-server beliefs for /stats and the dashboard."""
        return {"estimates": [round(self.estimate(s, now), 4) for s in range(self.n)],
                **self.chooser.snapshot(now), **self.admission.snapshot(now)}
