"""Shared fixtures: a live fleet on free ports (real sockets on 127.0.0.1) and a client."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator

import pytest

from banditlb.fleet.runner import FleetHandle, start_fleet_thread

HttpCall = Callable[..., tuple[int, dict[str, str], bytes]]


@pytest.fixture
def fleet_t1() -> Iterator[FleetHandle]:
    """Scenario T1 with seed 0 on a random free port range, stopped after the test."""
    with start_fleet_thread(["T1"], seed=0) as fleet:
        yield fleet


@pytest.fixture
def http_call() -> HttpCall:
    """call(port, method, path, body=b"", headers=None, timeout=5.0) -> (status, headers, body),
    one request on a fresh connection to 127.0.0.1."""

    def call(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None, timeout: float = 5.0):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    return call
