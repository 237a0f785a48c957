"""/metrics: Prometheus text built at scrape time from the balancer's in-memory counters.

A custom collector instead of prometheus-client's Counter objects keeps the request
path at plain integer increments. Counters belong to the current run, so they
restart when /admin/strategy starts a new run (Prometheus treats it as a reset).
"""

from __future__ import annotations

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


class BalancerCollector:
    def __init__(self, balancer: Balancer):
        self.balancer = balancer

    def collect(self) -> Iterator[Metric]:
        lane = self.balancer.lane
        counters, names = lane.counters, [u.name for u in lane.upstreams]
        now = lane.clock()

        info = GaugeMetricFamily("banditlb_run_info", "The strategy and run being served.",
                                 labels=["strategy", "scenario", "run_id"])
        info.add_metric([lane.name, lane.scenario or "", str(lane.run_id or "")], 1)
        yield info

        requests = CounterMetricFamily("banditlb_requests", "Requests by result.",
                                       labels=["result"])
        for result, count in counters.results().items():
            requests.add_metric([result], count)
        yield requests

        attempts = CounterMetricFamily("banditlb_attempts", "Upstream attempts by outcome.",
                                       labels=["upstream", "outcome"])
        latency = HistogramMetricFamily("banditlb_attempt_latency_seconds",
                                        "Upstream attempt latency.", labels=["upstream"])
        estimates = GaugeMetricFamily("banditlb_success_estimate",
                                      "Estimate that an attempt sent now is accepted.",
                                      labels=["upstream"])
        for i, (name, server) in enumerate(zip(names, counters.servers, strict=True)):
            for outcome, count in server.by_outcome().items():
                attempts.add_metric([name, outcome], count)
            latency.add_metric([name], _buckets(server.latency), server.latency.sum / 1000.0)
            estimates.add_metric([name], lane.strategy.estimate(i, now))
        problems = CounterMetricFamily(
            "banditlb_rate_limit_field_problems",
            "Rate-limit fields an upstream sent malformed or absurd (ignored or capped).",
            labels=["upstream", "field"])
        for name, server in zip(names, counters.servers, strict=True):
            for field, count in server.field_problems.items():
                problems.add_metric([name, field], count)
        yield attempts
        yield latency
        yield estimates
        yield problems

        request_latency = HistogramMetricFamily("banditlb_request_latency_seconds",
                                                "Time to answer a routed request.")
        request_latency.add_metric([], _buckets(counters.latency), counters.latency.sum / 1000.0)
        yield request_latency

        penalized = CounterMetricFamily("banditlb_penalized_attempts",
                                        "Attempts beyond the free ones.")
        penalized.add_metric([], counters.penalized)
        yield penalized
        score = GaugeMetricFamily("banditlb_score", "Accepted ids minus weighted penalties.")
        score.add_metric([], counters.score)
        yield score

        waiting = GaugeMetricFamily("banditlb_waiting", "Ids waiting for capacity now.")
        waiting.add_metric([], lane.holding.waiting)
        yield waiting
        waited = CounterMetricFamily("banditlb_waited_requests",
                                     "Ids that waited for capacity at least once.")
        waited.add_metric([], counters.waited)
        yield waited
        turned = CounterMetricFamily("banditlb_turned_away_requests",
                                     "Ids answered 503 because too many already waited.")
        turned.add_metric([], counters.turned_away)
        yield turned
        if lane.retry_budget is not None:
            denied = CounterMetricFamily("banditlb_retries_denied",
                                         "Retries the retry budget refused (each ended an id).")
            denied.add_metric([], lane.retry_budget.denied)
            yield denied
        wait = HistogramMetricFamily("banditlb_wait_seconds",
                                     "Time an id waited for capacity (ids that waited).")
        wait.add_metric([], _buckets(counters.wait), counters.wait.sum / 1000.0)
        yield wait
        if self.balancer.shared is not None:
            yield from _shared(self.balancer.shared.view())


def _shared(view: dict) -> Iterator[Metric]:
    """The link to the other replicas: up or not, how fresh, how many, what failed."""
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        metric = GaugeMetricFamily(name, doc)
        metric.add_metric([], value)
        return metric

    yield gauge("banditlb_shared_connected", "1 while Redis answers.", int(view["connected"]))
    yield gauge("banditlb_shared_replicas", "Replicas of this pool heard from lately, this "
                "one included.", view["replicas"])
    lag = view["lag_ms"]
    yield gauge("banditlb_shared_lag_seconds", "From another replica's flush to its evidence "
                "applied here, for the newest batch (NaN before the first).",
                float("nan") if lag is None else lag / 1000.0)
    ago = view["synced_ago_s"]
    yield gauge("banditlb_shared_synced_ago_seconds", "Since the last round trip to Redis "
                "succeeded (NaN before the first).", float("nan") if ago is None else ago)
    for key, doc in (("errors", "Failed Redis calls (each retried)."),
                     ("dropped", "Evidence dropped: the outbox was full."),
                     ("malformed", "Entries from Redis that did not parse."),
                     ("applied", "Pieces of others' evidence applied here.")):
        counter = CounterMetricFamily(f"banditlb_shared_{key}", doc)
        counter.add_metric([], view[key])
        yield counter


def _buckets(histogram: Histogram) -> list[tuple[str, int]]:
    """Cumulative Prometheus buckets, bounds converted from ms to seconds."""
    out, running = [], 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        running += count
        out.append((repr(bound / 1000.0), running))
    out.append(("+Inf", histogram.total))
    return out


def metrics_registry(balancer: Balancer) -> CollectorRegistry:
    """A registry of this app's own (no process-global state shared between apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BalancerCollector(balancer))
    return registry
