"""Shared fixtures: a live fleet on free ports (real sockets on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from banditlb.fleet.runner import FleetHandle, start_fleet_thread


@pytest.fixture
def fleet_t1() -> Iterator[FleetHandle]:
    """Scenario T1 with seed 0 on a random free port range, stopped after the test."""
    with start_fleet_thread(["T1"], seed=0) as fleet:
        yield fleet
