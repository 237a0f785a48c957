"""`banditlb lb --workers N`: N balancer processes on one port, one parent minding them.

Each worker is a whole `banditlb lb` with its own SO_REUSEPORT listener, so the
kernel spreads new connections evenly over them (no accept lock, no hand-off). The
parent reserves the ports first (bound with SO_REUSEPORT, never listening, so it is
given no connections) and passes them down, which makes `--port 0` work. It restarts
a worker that dies (with a growing pause, so a worker that cannot start does not
spin), and on SIGTERM or SIGINT passes SIGTERM on and waits: every worker drains
its requests and flushes the store before the parent exits.

Each worker learns alone until shared state lands: a server's limit is global, so
N workers that each pace to it send it up to N times what it admits.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from banditlb import services

RESTART_PAUSE_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Pause before restarting a worker that died: longer each time it dies young."""
YOUNG_S = 10.0
"""A worker that dies sooner than this after its start counts as failing to start."""
STOP_TIMEOUT_S = 30.0


def reserve(host: str, port: int) -> socket.socket:
    """Bind host:port with SO_REUSEPORT without listening: the port is ours (port 0
    picks one) and the workers can bind it too."""
    return services.bind(host, port, listen=False, reuse_port=True)


def worker_argv(argv: list[str], port: int, admin_port: int | None) -> list[str]:
    """The parent's `lb` arguments for one worker: no --workers, the reserved ports, and
    --reuse-port (click keeps the last value of an option given twice)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    out += ["--port", str(port), "--reuse-port"]
    if admin_port is not None:
        out += ["--admin-port", str(admin_port)]
    return out


class Supervisor:
    def __init__(self, n: int, argv: list[str], on_line: Callable[[int, str], None]):
        self.n, self.argv, self.on_line = n, argv, on_line
        self.children: list[subprocess.Popen | None] = [None] * n
        self.started_at = [0.0] * n
        self.deaths = [0] * n
        self.stopping = threading.Event()

    def start(self, k: int) -> None:
        child = subprocess.Popen([sys.executable, "-m", "banditlb", "lb", *self.argv],
                                 stdout=subprocess.PIPE, text=True)
        self.children[k], self.started_at[k] = child, time.monotonic()
        threading.Thread(target=self._relay, args=(k, child), daemon=True).start()

    def _relay(self, k: int, child: subprocess.Popen) -> None:
        for line in child.stdout:
            self.on_line(k, line.rstrip("\n"))
        child.stdout.close()

    def run(self) -> int:
        """Start every worker, keep them up until a stop signal, then drain them all."""
        for k in range(self.n):
            self.start(k)
        while not self.stopping.wait(0.2):
            for k, child in enumerate(self.children):
                if child is not None and child.poll() is not None:
                    self._restart(k, child.returncode)
        return self._stop_all()

    def _restart(self, k: int, code: int) -> None:
        young = time.monotonic() - self.started_at[k] < YOUNG_S
        self.deaths[k] = self.deaths[k] + 1 if young else 0
        pause = RESTART_PAUSE_S[min(self.deaths[k], len(RESTART_PAUSE_S) - 1)]
        print(f"banditlb lb: worker {k} exited with code {code}; restarting in {pause:g} s",
              file=sys.stderr, flush=True)
        self.children[k] = None
        if not self.stopping.wait(pause):
            self.start(k)

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def reload(self, *_: object) -> None:
        """SIGHUP: every worker reads the config file again (each applies it alone)."""
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGHUP)

    def _stop_all(self) -> int:
        live = [c for c in self.children if c is not None and c.poll() is None]
        for child in live:
            child.send_signal(signal.SIGTERM)
        worst = 0
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in live:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            worst = max(worst, abs(child.returncode or 0))
        return 0 if worst == 0 else 1
