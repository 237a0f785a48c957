"""/metrics: Prometheus text built at scrape time from the balancer's in-memory counters.

A custom collector instead of prometheus-client's Counter objects keeps the request
path at plain integer increments. Counters belong to the current run, so they
restart when /admin/strategy starts a new run (Prometheus treats it as a reset).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from banditlb.balancer.core import Balancer
from banditlb.balancer.histogram import Histogram
from banditlb.balancer.pools import Pools


class BalancerCollector:
    """Every pool's metrics, each labelled with its pool."""

    def __init__(self, pools: Pools):
        self.pools = pools

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        for balancer in self.pools:
            f.add(balancer)
        yield from f.all()


class _Families:
    def __init__(self):
        def gauge(name, doc, *labels):
            return GaugeMetricFamily(name, doc, labels=["pool", *labels])

        def counter(name, doc, *labels):
            return CounterMetricFamily(name, doc, labels=["pool", *labels])

        def histogram(name, doc, *labels):
            return HistogramMetricFamily(name, doc, labels=["pool", *labels])

        self.info = gauge("banditlb_run_info", "The strategy and run being served.",
                          "strategy", "scenario", "run_id")
        self.requests = counter("banditlb_requests", "Requests by result.", "result")
        self.attempts = counter("banditlb_attempts", "Upstream attempts by outcome.",
                                "upstream", "outcome")
        self.latency = histogram("banditlb_attempt_latency_seconds",
                                 "Upstream attempt latency.", "upstream")
        self.estimates = gauge("banditlb_success_estimate",
                               "Estimate that an attempt sent now is accepted.", "upstream")
        self.problems = counter(
            "banditlb_rate_limit_field_problems",
            "Rate-limit fields an upstream sent malformed or absurd (ignored or capped).",
            "upstream", "field")
        self.request_latency = histogram("banditlb_request_latency_seconds",
                                         "Time to answer a routed request.")
        self.penalized = counter("banditlb_penalized_attempts", "Attempts beyond the free ones.")
        self.score = gauge("banditlb_score", "Accepted ids minus weighted penalties.")
        self.waiting = gauge("banditlb_waiting", "Ids waiting for capacity now.")
        self.waited = counter("banditlb_waited_requests",
                              "Ids that waited for capacity at least once.")
        self.turned = counter("banditlb_turned_away_requests",
                              "Ids answered 503 because too many already waited.")
        self.denied = counter("banditlb_retries_denied",
                              "Retries the retry budget refused (each ended an id).")
        self.wait = histogram("banditlb_wait_seconds",
                              "Time an id waited for capacity (ids that waited).")
        self.shared = [gauge("banditlb_shared_connected", "1 while Redis answers."),
                       gauge("banditlb_shared_replicas", "Replicas of this pool heard from "
                             "lately, this one included."),
                       gauge("banditlb_shared_lag_seconds", "From another replica's flush to "
                             "its evidence applied here, for the newest batch (NaN before "
                             "the first)."),
                       gauge("banditlb_shared_synced_ago_seconds", "Since the last round trip "
                             "to Redis succeeded (NaN before the first).")]
        self.shared_counts = {key: counter(f"banditlb_shared_{key}", doc) for key, doc in (
            ("errors", "Failed Redis calls (each retried)."),
            ("dropped", "Evidence dropped: the outbox was full."),
            ("malformed", "Entries from Redis that did not parse."),
            ("applied", "Pieces of others' evidence applied here."))}

    def add(self, balancer: Balancer) -> None:
        lane = balancer.lane
        pool = balancer.config.name
        counters, names = lane.counters, [u.name for u in lane.upstreams]
        now = lane.clock()
        self.info.add_metric([pool, lane.name, lane.scenario or "", str(lane.run_id or "")], 1)
        for result, count in counters.results().items():
            self.requests.add_metric([pool, result], count)
        for i, (name, server) in enumerate(zip(names, counters.servers, strict=True)):
            for outcome, count in server.by_outcome().items():
                self.attempts.add_metric([pool, name, outcome], count)
            self.latency.add_metric([pool, name], _buckets(server.latency),
                                    server.latency.sum / 1000.0)
            self.estimates.add_metric([pool, name], lane.strategy.estimate(i, now))
            for field, count in server.field_problems.items():
                self.problems.add_metric([pool, name, field], count)
        self.request_latency.add_metric([pool], _buckets(counters.latency),
                                        counters.latency.sum / 1000.0)
        self.penalized.add_metric([pool], counters.penalized)
        self.score.add_metric([pool], counters.score)
        self.waiting.add_metric([pool], lane.holding.waiting)
        self.waited.add_metric([pool], counters.waited)
        self.turned.add_metric([pool], counters.turned_away)
        if lane.retry_budget is not None:
            self.denied.add_metric([pool], lane.retry_budget.denied)
        self.wait.add_metric([pool], _buckets(counters.wait), counters.wait.sum / 1000.0)
        if balancer.shared is not None:
            view = balancer.shared.view()
            lag, ago = view["lag_ms"], view["synced_ago_s"]
            for metric, value in zip(self.shared, (
                    int(view["connected"]), view["replicas"],
                    math.nan if lag is None else lag / 1000.0,
                    math.nan if ago is None else ago), strict=True):
                metric.add_metric([pool], value)
            for key, metric in self.shared_counts.items():
                metric.add_metric([pool], view[key])

    def all(self) -> Iterator[Metric]:
        """The families that have samples (an unused one would only be noise)."""
        families = [v for v in vars(self).values() if isinstance(v, Metric)]
        families += self.shared + list(self.shared_counts.values())
        return (f for f in families if f.samples)


def _buckets(histogram: Histogram) -> list[tuple[str, int]]:
    """Cumulative Prometheus buckets, bounds converted from ms to seconds."""
    out, running = [], 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        running += count
        out.append((repr(bound / 1000.0), running))
    out.append(("+Inf", histogram.total))
    return out


def metrics_registry(pools: Pools) -> CollectorRegistry:
    """A registry of this app's own (no process-global state shared between apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BalancerCollector(pools))
    return registry
