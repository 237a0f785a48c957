"""`banditlb lb --config FILE` as a child process, for the tests of what only a file can
say (hot reload, several pools)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from banditlb import services
from banditlb.balancer.runner import ADMIN_PREFIX, READY_PREFIX


@dataclass
class FromFile:
    child: subprocess.Popen
    url: str
    admin: str


@contextmanager
def lb_from_file(path: Path, data_dir: Path) -> Iterator[FromFile]:
    """Started and ready; stopped with SIGTERM after (its exit code left on the child)."""
    child = subprocess.Popen([sys.executable, "-m", "banditlb", "lb", "--config", str(path),
                              "--data-dir", str(data_dir)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url, seen = services.read_ready(child, "banditlb lb", READY_PREFIX, 30, (ADMIN_PREFIX,))
        yield FromFile(child, url, seen[ADMIN_PREFIX])
    finally:
        services.terminate(child, 30)
