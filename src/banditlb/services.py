"""Starting, waiting for and stopping a service (the fleet, the balancer): one way for both.

A child process says it is ready with a line on its standard output (`<prefix><url>`);
a handle stops a service once, whether it runs in a thread or a child; sockets are
bound up front so port 0 works and the real port is known before the first request.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Callable


def bind(host: str, port: int, *, listen: bool = True, reuse_port: bool = False,
         nodelay: bool = False, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to host:port (port 0 picks a free one), listening unless
    `listen=False` (a port reserved for others to share: `reuse_port`, SO_REUSEPORT).
    `nodelay` is inherited by accepted connections. OSError when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
        if listen:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """http://host:port of a bound socket (a wildcard address as 127.0.0.1)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServiceHandle:
    """A running service; stop() stops it once (also on leaving a `with` block)."""

    def __init__(self, stop: Callable[[], None], process: subprocess.Popen | None = None):
        self.process = process
        """The child process, when the service runs in one."""
        self._stop = stop
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class NotReady(RuntimeError):
    def __init__(self, name: str, code: int):
        self.code = code
        super().__init__(f"{name} exited with code {code} before listening (its error is on "
                         f"stderr above)")


def read_ready(child: subprocess.Popen, name: str, ready_prefix: str, timeout_s: float,
               also: tuple[str, ...] = ()) -> tuple[str, dict[str, str]]:
    """The value of the child's `ready_prefix` line, and of any `also` lines before it;
    NotReady (with its exit code) if it exits first. A child silent for `timeout_s` is
    killed."""
    timer = threading.Timer(timeout_s, child.kill)
    timer.start()
    seen: dict[str, str] = {}
    try:
        for line in child.stdout:
            for prefix in also:
                if line.startswith(prefix):
                    seen[prefix] = line[len(prefix):].strip()
            if line.startswith(ready_prefix):
                return line[len(ready_prefix):].strip(), seen
    finally:
        timer.cancel()
    code = child.wait()
    child.stdout.close()
    raise NotReady(name, code)


def terminate(child: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, a wait for the clean exit, SIGKILL after `timeout_s`; closes its stdout."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child.stdout is not None:
        child.stdout.close()
