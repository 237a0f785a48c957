"""A fixed-bucket histogram: constant memory however long the balancer runs."""

from __future__ import annotations

from bisect import bisect_left


def geometric_bounds(low: float, high: float, factor: float) -> tuple[float, ...]:
    """Upper bucket bounds low, low*factor, ... up to at least high."""
    bounds = [low]
    while bounds[-1] < high:
        bounds.append(round(bounds[-1] * factor, 6))
    return tuple(bounds)


REQUEST_BOUNDS_MS = geometric_bounds(0.05, 20_000.0, 1.2)
"""Fine buckets (20 % wide) so p50/p99 of a sub-millisecond path stay meaningful."""
ATTEMPT_BOUNDS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
                     2000.0, 5000.0)
"""Coarse buckets for the per-upstream Prometheus histograms."""


class Histogram:
    """Counts per bucket (value <= bound); the last count is the overflow bucket."""

    __slots__ = ("bounds", "counts", "total", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += 1
        self.sum += value

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated linearly inside its bucket; None when empty."""
        if not self.total:
            return None
        rank = q * self.total
        seen = 0
        for i, count in enumerate(self.counts):
            if count and seen + count >= rank:
                if i == len(self.bounds):
                    return self.bounds[-1]
                low = self.bounds[i - 1] if i else 0.0
                return low + (self.bounds[i] - low) * max(0.0, rank - seen) / count
            seen += count
        return self.bounds[-1]
