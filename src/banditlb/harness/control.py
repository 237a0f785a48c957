"""Talking to the fleet's control API and the balancer's admin API (small synchronous calls)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class HarnessError(RuntimeError):
    """A service the harness drives is missing or misbehaving; the message says which and why."""


def call_json(method: str, url: str, body: dict | None = None, *, token: str | None = None,
              timeout_s: float = 30.0) -> dict:
    """One JSON request; HarnessError (naming the URL) on refusal, HTTP error or bad JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        hint = " (set --admin-token or BANDITLB_ADMIN_TOKEN)" if exc.code == 401 else ""
        raise HarnessError(f"{method} {url} answered {exc.code}{hint}: {detail}") from exc
    except urllib.error.URLError as exc:
        raise HarnessError(f"cannot reach {url}: {exc.reason}") from exc
    except (TimeoutError, ConnectionError) as exc:
        raise HarnessError(f"{method} {url} failed: {exc}") from exc
    except ValueError as exc:
        raise HarnessError(f"{method} {url} did not answer JSON: {exc}") from exc


class FleetControl:
    """The fleet's control API: ground-truth scores, reset."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"

    def reset(self, seed: int) -> None:
        call_json("POST", f"{self.url}/reset?seed={seed}")

    def scores(self, penalty_weight: float = 1.0, free_attempts: int = 3) -> dict[str, dict]:
        query = urllib.parse.urlencode({"penalty_weight": penalty_weight,
                                        "free_attempts": free_attempts})
        return call_json("GET", f"{self.url}/score?{query}")["scenarios"]

    def upstreams(self, scenario: str) -> list[str]:
        """host:port of each server of `scenario`, in the fleet's order."""
        scores = self.scores()
        if scenario not in scores:
            raise HarnessError(f"the fleet at {self.url} does not serve scenario {scenario!r} "
                               f"(it serves {', '.join(scores) or 'nothing'})")
        return [f"{self.host}:{port}" for port in scores[scenario]["ports"]]


class BalancerControl:
    """The balancer's admin API: switch strategy and run, flush attempts to the store."""

    def __init__(self, url: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.token = token

    def switch(self, strategy: str, upstreams: list[str], scenario: str, run_id: int,
               seed: int) -> dict:
        return call_json("POST", f"{self.url}/admin/strategy",
                         {"strategy": strategy, "upstreams": upstreams, "scenario": scenario,
                          "run_id": run_id, "seed": seed}, token=self.token)

    def flush(self) -> dict:
        return call_json("POST", f"{self.url}/admin/flush", {}, token=self.token)
