"""Everything the balancer needs to start, checked before it binds a socket."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from banditlb.retry_budget import RetryBudgetConfig
from banditlb.rules import Rules
from banditlb.shared.config import SharedConfig
from banditlb.waitlist import DEFAULT_MAX_WAITING

DEFAULT_MAX_RETRY_AFTER_S = 60.0
DEFAULT_MAX_HEAD_BYTES = 16 * 1024
DEFAULT_MAX_RETRY_BODY = 64 * 1024
"""Request bodies up to this many bytes are kept for a retry (Linkerd's default);
larger ones stream to one upstream, once."""
CHALLENGE, HTTP = "challenge", "http"
CONTRACTS = (CHALLENGE, HTTP)
"""What the balancer forwards: the challenge's POST / {"id": ...}, or any HTTP request."""
FORWARDED_FIELDS = ("for", "proto", "host", "via")
"""X-Forwarded-For, -Proto, -Host and Via: what the http contract adds, each optional."""

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
    scheme: str = ""
    """"http" or "https" for an upstream given as a URL; "" for a bare host:port."""
    host: str = ""
    """The host as given (the TLS server name and Host header of a URL upstream)."""
    path: str = ""
    """A URL upstream's path prefix ("" or "/v1"), put before every forwarded path."""

    @property
    def origin(self) -> str:
        """scheme://host:port, for a client that connects by name (TLS, re-resolved DNS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme or 'http'}://{host or self.ip}:{self.port}"


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
    contract: str = CHALLENGE
    forwarding: Forwarding = field(default_factory=lambda: Forwarding())
    """How the http contract forwards (unused by the challenge contract)."""
    retry_budget: RetryBudgetConfig | None = None
    """Retries as a share of requests; None: bounded by the rules alone."""
    access_log: Path | None = None
    """One JSON line per request forwarded by the http contract, appended here."""
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    """A request head larger than this gets 431 (bounds memory per connection)."""
    shared: SharedConfig | None = None
    """Where the pool's replicas share their evidence; None: this process learns alone."""
    source: Path | None = None
    """The config file this came from: read again on SIGHUP and POST /admin/reload."""
    weights: tuple[float, ...] | None = None
    """Per upstream (in order), how much it is preferred at equal quality; 0: a backup.
    None: all alike."""
    name: str = "default"
    """The pool's name (its metrics label, its Redis namespace, ?pool= on the admin API)."""
    routes: tuple[PoolRoute, ...] = ()
    """Which requests go to which pool, first match wins; () sends all to this one."""
    pools: tuple[LbConfig, ...] = ()
    """The other pools on this listener (the http contract), each with its own settings."""

    @property
    def all_pools(self) -> tuple[LbConfig, ...]:
        return (self, *self.pools)


def checked_weights(weights, n_upstreams: int) -> tuple[float, ...] | None:
    """Weights as a tuple (None for none given); ConfigError unless there is one per
    upstream, each finite and >= 0, and at least one above 0."""
    if weights is None:
        return None
    values = tuple(float(w) for w in weights)
    if len(values) != n_upstreams:
        raise ConfigError(f"weights: {len(values)} given for {n_upstreams} upstreams "
                          f"(one per upstream, in order)")
    if not all(0.0 <= w < float("inf") for w in values) or not any(values):
        raise ConfigError("weights must be finite and >= 0, and at least one above 0")
    return values


@dataclass(frozen=True)
class PoolRoute:
    """Requests whose path starts with `path_prefix` (and whose Host is `host`, when set)
    go to `pool`."""

    pool: str
    path_prefix: str = "/"
    host: str | None = None
    """Compared without the port, case-insensitively."""

    def __post_init__(self):
        if not self.path_prefix.startswith("/"):
            raise ConfigError(f"path_prefix {self.path_prefix!r} must start with /")
        if self.host is not None:  # lowered once, not per request
            object.__setattr__(self, "host", self.host.lower())

    def matches(self, host: str | None, path: str) -> bool:
        return path.startswith(self.path_prefix) and (
            self.host is None or (host or "").lower() == self.host)


@dataclass(frozen=True)
class Forwarding:
    """The http contract's settings: what is retried, which headers are added, TLS."""

    max_retry_body: int = DEFAULT_MAX_RETRY_BODY
    retry_unsafe: bool = False
    """Retry POST and PATCH too (by default only with an Idempotency-Key header)."""
    host_header: str = "upstream"
    """"upstream": Host is the upstream's (as nginx does); "client": the client's."""
    forwarded: tuple[str, ...] = FORWARDED_FIELDS
    ca_bundle: Path | None = None
    """CA certificates (PEM) that https upstreams are verified against; the system's when
    None."""
    admin_port: int = 0
    """The http contract proxies every path, so /stats, /metrics, /admin and the
    dashboard listen on a port of their own (0 picks a free one)."""
    max_body_bytes: int = 0
    """Request bodies beyond this get 413 (0: no bound, bodies stream through)."""

    def __post_init__(self):
        if self.max_retry_body < 0 or self.max_body_bytes < 0:
            raise ConfigError("max_retry_body and max_body_bytes must be >= 0 bytes")
        if self.host_header not in ("upstream", "client"):
            raise ConfigError(f"host header {self.host_header!r}: expected upstream or client")
        unknown = sorted(set(self.forwarded) - set(FORWARDED_FIELDS))
        if unknown:
            raise ConfigError(f"unknown forwarded field(s) {', '.join(unknown)}: expected "
                              f"some of {', '.join(FORWARDED_FIELDS)} or none")


def parse_forwarded(spec: str) -> tuple[str, ...]:
    """'for,proto' -> ('for', 'proto'); 'none' or '' -> ()."""
    items = tuple(p.strip().lower() for p in spec.split(",") if p.strip())
    return () if items in ((), ("none",)) else items


def retry_budget_for(given: str | None, minimum: int, contract: str) -> RetryBudgetConfig | None:
    """--retry-budget: a percent, 'off', or None for the contract's default (20% for http;
    off for challenge, whose rules bound retries)."""
    if given is None:
        return RetryBudgetConfig(min_retries=minimum) if contract == HTTP else None
    if given.strip().lower() == "off":
        return None
    try:
        percent = float(given)
    except ValueError:
        raise ConfigError(f"--retry-budget {given!r}: a percent of requests, or off") from None
    return RetryBudgetConfig(percent, minimum)


def checked_contract(contract: str, names: list[str]) -> str:
    """`contract` if it is one and can speak to these upstreams; ConfigError if not."""
    if contract not in CONTRACTS:
        raise ConfigError(f"contract {contract!r}: expected one of {', '.join(CONTRACTS)}")
    if contract != HTTP and any(n.startswith("https://") for n in names):
        raise ConfigError("https upstreams need the http contract (the challenge contract "
                          "speaks plain HTTP)")
    return contract


def default_contract(names: list[str]) -> str:
    """URLs mean any HTTP request; a bare host:port list keeps the challenge contract."""
    return HTTP if names and all("://" in n for n in names) else CHALLENGE


def split_upstreams(spec: str) -> list[str]:
    """'h:4000-4002,h2:80' -> ['h:4000', 'h:4001', 'h:4002', 'h2:80'] (no resolving);
    URLs (http://h:80, https://h/v1) are kept as given."""
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if "://" in item:
            _split_url(item)  # checked here, resolved later
            names.append(item)
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
        if "://" in name:
            scheme, host, port, path = _split_url(name)
        else:
            scheme, path = "", ""
            host, _, port = name.rpartition(":")
        if host not in cache:
            cache[host] = _resolve(host, name)
        resolved.append(Upstream(name, cache[host], int(port), scheme, host.strip("[]"), path))
    return resolved


def _split_url(item: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an upstream URL, or ConfigError saying why not."""
    try:
        url = urlsplit(item)
        port = url.port
    except ValueError as exc:
        raise ConfigError(f"bad upstream URL {item!r}: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise ConfigError(f"bad upstream URL {item!r}: the scheme must be http or https")
    if not url.hostname:
        raise ConfigError(f"bad upstream URL {item!r}: no host")
    if url.query or url.fragment or url.username or url.password:
        raise ConfigError(f"bad upstream URL {item!r}: only scheme://host[:port][/path]; "
                          f"no query, fragment or credentials")
    default = 443 if url.scheme == "https" else 80
    return url.scheme, url.hostname, port or default, url.path.rstrip("/")


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
