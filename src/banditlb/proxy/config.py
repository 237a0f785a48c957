"""Everything the balancer needs to start, checked before it binds a socket."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from banditlb.rules import Rules
from banditlb.waitlist import DEFAULT_MAX_WAITING

DEFAULT_MAX_RETRY_AFTER_S = 60.0

MAX_UPSTREAMS = 1024


class ConfigError(ValueError):
    """A setting the balancer cannot start with; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream as the user named it, and the address it resolved to at start."""

    name: str
    """host:port as given, used in answers, metrics and the store."""
    ip: str
    port: int


@dataclass(frozen=True)
class LbConfig:
    upstreams: list[Upstream]
    strategy: str = "auto"
    params: dict = field(default_factory=dict)
    seed: int = 0
    rules: Rules = field(default_factory=lambda: Rules(deadline_s=5.0))
    scenario: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".banditlb")
    fleet_url: str | None = None
    admin_token: str | None = None
    max_waiting: int = DEFAULT_MAX_WAITING
    """Ids that may wait for capacity at once; beyond, 503 with Retry-After."""
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    """An upstream's Retry-After is believed up to this long."""


def split_upstreams(spec: str) -> list[str]:
    """'h:4000-4002,h2:80' -> ['h:4000', 'h:4001', 'h:4002', 'h2:80'] (no resolving)."""
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        host, sep, ports = item.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"bad upstream {item!r}: expected host:port or host:a-b")
        first, dash, last = ports.partition("-")
        low, high = _port(first, item), _port(last, item) if dash else _port(first, item)
        if high < low:
            raise ConfigError(f"bad upstream {item!r}: port range {low}-{high} is backwards")
        names.extend(f"{host}:{p}" for p in range(low, high + 1))
        if len(names) > MAX_UPSTREAMS:
            raise ConfigError(f"more than {MAX_UPSTREAMS} upstreams; check the port ranges")
    return names


def read_upstreams_file(path: Path) -> str:
    """One upstream spec per line (or comma separated); '#' starts a comment."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read upstreams file {path}: {exc.strerror}") from exc
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return ",".join(line for line in lines if line)


def resolve_upstreams(names: list[str]) -> list[Upstream]:
    """Resolve every host once, at start, so the request path never waits on DNS."""
    if not names:
        raise ConfigError("no upstreams: give --upstreams, --upstreams-file or --scenario")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"upstream {dup} is listed twice")
    cache: dict[str, str] = {}
    resolved = []
    for name in names:
        host, _, port = name.rpartition(":")
        if host not in cache:
            cache[host] = _resolve(host, name)
        resolved.append(Upstream(name, cache[host], int(port)))
    return resolved


def _resolve(host: str, name: str) -> str:
    bare = host.strip("[]")
    try:
        infos = socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"upstream {name}: host {bare!r} does not resolve") from exc
    return infos[0][4][0]


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"bad upstream {item!r}: port {text!r} is not a number in 1-65535")
    return int(text)
