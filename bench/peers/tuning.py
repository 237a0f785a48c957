"""Tuning nginx's and HAProxy's ejection settings on T3 before the benchmark proper.

The candidates run on seeds the benchmark does not use, so the chosen setting is not
fitted to the seeds it is then scored on.
"""

from __future__ import annotations

from dataclasses import asdict

from bench.peers.configs import HaproxyTuning, NginxTuning
from bench.peers.live import PeerSpec, haproxy_peer, nginx_peer

NGINX_CANDIDATES = tuple(NginxTuning(max_fails=fails, fail_timeout_s=timeout)
                         for fails, timeout in ((1, 1), (1, 2), (2, 1), (1, 3), (1, 10),
                                                (0, 10)))
"""1/10s is nginx's default; 0 turns passive health off (retries only); 1 s is the shortest
fail_timeout nginx takes. A 429 counts as a
failure (it is in proxy_next_upstream), so fail_timeout is also how long a rate-limiting
server is left alone."""
HAPROXY_CANDIDATES = (HaproxyTuning(error_limit=3), HaproxyTuning(error_limit=10))
TUNING_SCENARIO = "T3"
TUNING_SEEDS = (100, 101)
TUNING_WEIGHT = 1.0


def candidate_peers() -> list[PeerSpec]:
    return [*(nginx_peer(t, (TUNING_WEIGHT,), name=f"nginx {t.label}")
              for t in NGINX_CANDIDATES),
            *(haproxy_peer(t, (TUNING_WEIGHT,), name=f"haproxy {t.label}")
              for t in HAPROXY_CANDIDATES)]


def mean_scores(records: list[dict]) -> dict[str, float]:
    """Peer name -> mean ground-truth score over its runs."""
    by_peer: dict[str, list[float]] = {}
    for record in records:
        by_peer.setdefault(record["peer"], []).append(record["score"])
    return {name: sum(scores) / len(scores) for name, scores in by_peer.items()}


def choose(records: list[dict]) -> dict:
    """The best nginx and the best HAProxy candidate (highest mean score), as dicts."""
    means = mean_scores(records)

    def best(candidates, prefix: str):
        return max(candidates, key=lambda t: means.get(f"{prefix} {t.label}", float("-inf")))

    return {"nginx": asdict(best(NGINX_CANDIDATES, "nginx")),
            "haproxy": asdict(best(HAPROXY_CANDIDATES, "haproxy"))}
