"""The fleet's true state, fetched server-side, and the oracle's expected score from it.

The browser never names the URL: only the fleet URL the dashboard was started with
is ever fetched, so the truth endpoint cannot be turned into a request forwarder.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request

TRUTH_TIMEOUT_S = 2.0
TRUTH_MAX_AGE_S = 0.5
"""However many pages poll, the fleet is asked at most about twice a second."""


class TruthUnavailable(RuntimeError):
    """The fleet's truth cannot be had; the message says why (shown as "oracle unavailable")."""


def fetch_truth(fleet_url: str | None) -> dict:
    """GET <fleet_url>/truth, or TruthUnavailable saying what is missing."""
    if not fleet_url:
        raise TruthUnavailable("no fleet URL configured (start with --fleet-url URL)")
    url = f"{fleet_url.rstrip('/')}/truth"
    try:
        with urllib.request.urlopen(url, timeout=TRUTH_TIMEOUT_S) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TruthUnavailable(f"{url} answered {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TruthUnavailable(f"cannot reach {url}: {reason}") from exc
    except ValueError as exc:
        raise TruthUnavailable(f"{url} did not answer JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise TruthUnavailable(f"{url} did not answer a fleet truth document")
    return doc


class TruthCache:
    """The fleet's truth, fetched at most once per `max_age_s` and shared by every caller.

    Failures are cached too, so a fleet that does not answer costs one timeout per
    interval, not one per page.
    """

    def __init__(self, fleet_url: str | None, max_age_s: float = TRUTH_MAX_AGE_S):
        self.fleet_url = fleet_url
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._fetched_at = -math.inf
        self._answer: dict | TruthUnavailable = TruthUnavailable("not fetched yet")

    def get(self) -> dict:
        with self._lock:
            if time.monotonic() - self._fetched_at > self.max_age_s:
                try:
                    self._answer = fetch_truth(self.fleet_url)
                except TruthUnavailable as exc:
                    self._answer = exc
                self._fetched_at = time.monotonic()
            answer = self._answer
        if isinstance(answer, TruthUnavailable):
            raise answer
        return answer


def servers_on_ports(truth: dict, ports: set[int] | None) -> list[dict]:
    """Every server of every scenario in `truth`, or only those listening on `ports`."""
    servers = [s for scenario in truth["scenarios"].values() for s in scenario["servers"]]
    return servers if ports is None else [s for s in servers if s["port"] in ports]


def free_slots(server: dict, free_attempts: int) -> int:
    """How many of the free attempts this server could take right now (0 if it would refuse).

    Faulty servers take none; a rate-limited one takes as many as it has whole tokens;
    an unlimited one takes them all.
    """
    if server.get("fault"):
        return 0
    limiter = server.get("limiter") or {}
    if limiter.get("kind", "none") == "none":
        return free_attempts
    if limiter.get("boxed") or limiter.get("collapsed"):
        return 0
    return min(free_attempts, math.floor(limiter.get("tokens", 0.0)))


def capacity_per_s(servers: list[dict]) -> float:
    """Accepted ids per second the servers can give at most right now: sum of rate x p.

    Unlimited servers make it infinite; faulty, boxed or collapsed ones add nothing.
    """
    total = 0.0
    for server in servers:
        limiter = server.get("limiter") or {}
        if server.get("fault") or limiter.get("boxed"):
            continue
        if limiter.get("kind", "none") == "none":
            return math.inf
        total += limiter.get("rate", 0.0) * server["success"]
    return total


def oracle_expected(servers: list[dict], free_attempts: int, rps: float | None = None) -> float:
    """Expected score of one request sent now by an oracle that knows the fleet's state.

    The oracle spends its free attempts on the best true success probabilities among
    the servers that would admit a request now (a server may take several attempts if
    it has the tokens), so it gets 1 - prod(1 - p_i) over those attempts; with no rate
    limits that is 1 - (1 - p_best)^k. When the request rate `rps` is known, it also
    cannot beat the fleet's capacity: at most sum(rate_i x p_i) / rps per request.
    It is an optimistic estimate: it never pays for attempts beyond the free ones and
    treats capacity as shared perfectly among requests.
    """
    slots = sorted((p for s in servers for p in [s["success"]] * free_slots(s, free_attempts)),
                   reverse=True)[:free_attempts]
    miss = 1.0
    for p in slots:
        miss *= 1.0 - p
    expected = 1.0 - miss
    if rps:
        expected = min(expected, capacity_per_s(servers) / rps)
    return expected
