"""Scenarios: a TOML file per fleet configuration, turned into server models for a seed."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from banditlb.fleet.limiters import build_limiter
from banditlb.fleet.models import LatencyModel, ServerModel, SuccessModel
from banditlb.fleet.streams import stream

PRESET_DIR = "scenarios"


class ScenarioError(ValueError):
    """A scenario name or file that cannot be used; the message says why."""


@dataclass(frozen=True)
class ServerSpec:
    """One server's settings as written in the scenario file (defaults merged in)."""

    port: int
    success: float | tuple[float, float]
    limiter: dict | list
    """A limiter table or a list of them (see banditlb.fleet.limiters.build_limiter)."""
    latency: dict
    retry_after: bool = False
    drift: tuple[tuple[float, float], ...] = ()
    fault: str | None = None
    rate_limit_headers: str = "none"
    """How the live server tells what its limit has left (banditlb.ratelimit's styles)."""
    rate_limit_headers_on: str = "429"
    """On which answers: "429" (refusals only) or "all"."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    servers: tuple[ServerSpec, ...]
    port_offset: int = 0
    """How far the servers were shifted from the ports written in the file."""
    rate_limit_headers: str = "none"
    """The scenario-wide rate-limit header style (a server's own key overrides it)."""
    rate_limit_headers_on: str = "429"

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def shifted(self, offset: int) -> Scenario:
        """The same scenario on other ports (tests run side by side without clashing)."""
        servers = tuple(dataclasses.replace(s, port=s.port + offset) for s in self.servers)
        return dataclasses.replace(self, servers=servers, port_offset=self.port_offset + offset)

    def build(self, seed: int = 0) -> list[ServerModel]:
        """Fresh models for every server; same seed, same draws, whatever the port offset.
        Servers naming the same limiter group share one limiter object."""
        groups: dict = {}
        return [_build_server(self.name, spec, seed, spec.port - self.port_offset, groups)
                for spec in self.servers]


def preset_names() -> list[str]:
    folder = resources.files("banditlb.fleet").joinpath(PRESET_DIR)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A preset by name (case-insensitive) or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {path}")
        return parse_scenario(path.read_text(), default_name=path.stem)
    by_lower = {n.lower(): n for n in preset_names()}
    name = by_lower.get(name_or_path.lower())
    if name is None:
        raise ScenarioError(f"unknown scenario {name_or_path!r}; presets: "
                            f"{', '.join(preset_names())}, or a path to a .toml file")
    text = resources.files("banditlb.fleet").joinpath(PRESET_DIR, f"{name}.toml").read_text()
    return parse_scenario(text, default_name=name)


def parse_scenario(text: str, default_name: str = "custom") -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"bad TOML: {exc}") from exc
    defaults = doc.get("defaults", {})
    raw_servers = doc.get("servers")
    if not raw_servers:
        raise ScenarioError("a scenario needs at least one [[servers]] entry")
    headers = {key: _header_key(doc, key, "scenario") for key in HEADER_KEYS}
    headers = {key: _header_key(defaults, key, "defaults", value)
               for key, value in headers.items()}
    groups: dict = {}
    servers = tuple(_parse_server(i, raw, defaults, headers, groups)
                    for i, raw in enumerate(raw_servers))
    ports = [s.port for s in servers]
    if len(set(ports)) != len(ports):
        raise ScenarioError("two servers share a port")
    return Scenario(doc.get("name", default_name), doc.get("description", ""), servers,
                    rate_limit_headers=headers["rate_limit_headers"],
                    rate_limit_headers_on=headers["rate_limit_headers_on"])


HEADER_KEYS = {"rate_limit_headers": "none", "rate_limit_headers_on": "429"}
"""Scenario keys for the rate-limit fields of the answers, with their defaults; each may
be written at the top, in [defaults] or on one server."""


def _header_key(table: dict, key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, HEADER_KEYS[key] if default is None else default)
    if key == "rate_limit_headers_on" and type(value) is int:
        value = str(value)  # rate_limit_headers_on = 429
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}.{key} must be a name such as {HEADER_KEYS[key]!r} "
                            f"(got {value!r})")
    return value


def _merge_limiter(default: object, own: object) -> object:
    """A server's limiter: its own table over the defaults' one (merged when both are
    tables of the same kind), else whichever is written."""
    if own is None:
        return default if default is not None else {"kind": "none"}
    if isinstance(own, dict) and isinstance(default, dict) and \
            own.get("kind", default.get("kind")) == default.get("kind"):
        return {**default, **own}
    return own


def _parse_server(index: int, raw: dict, defaults: dict, headers: dict[str, str],
                  groups: dict) -> ServerSpec:
    where = f"servers[{index}]"
    if "port" in raw:
        where += f" (port {raw['port']})"
    if "port" not in raw or "success" not in raw:
        raise ScenarioError(f"{where} needs a port and a success probability")
    success = raw["success"]
    if isinstance(success, list):
        if len(success) != 2 or not 0 <= success[0] <= success[1] <= 1:
            raise ScenarioError(f"{where}.success range must be [low, high] within [0, 1]")
        success = (float(success[0]), float(success[1]))
    elif not 0 <= success <= 1:
        raise ScenarioError(f"{where}.success must be within [0, 1]")
    drift = tuple((float(t), float(p)) for t, p in raw.get("drift", []))
    spec = ServerSpec(
        port=int(raw["port"]),
        success=success,
        limiter=_merge_limiter(defaults.get("limiter"), raw.get("limiter")),
        latency={**defaults.get("latency", {}), **raw.get("latency", {})},
        retry_after=bool(raw.get("retry_after", defaults.get("retry_after", False))),
        drift=drift,
        fault=raw.get("fault"),
        **{key: _header_key(raw, key, where, value) for key, value in headers.items()},
    )
    try:
        _build_server("check", spec, 0, spec.port, groups)
    except (TypeError, ValueError) as exc:  # a LimiterError names the key
        raise ScenarioError(f"{where}: {exc}") from exc
    return spec


def _build_server(scenario: str, spec: ServerSpec, seed: int, stream_port: int,
                  groups: dict | None = None) -> ServerModel:
    """`stream_port` (the port written in the file) names the random streams, so a shifted
    scenario draws exactly what the unshifted one draws. `groups` holds the limiters shared
    by name in this build."""
    p = spec.success
    if isinstance(p, tuple):
        p = stream(seed, scenario, stream_port, "p").uniform(*p)
    success = SuccessModel(stream(seed, scenario, stream_port, "success"), p, list(spec.drift))
    latency = LatencyModel(stream(seed, scenario, stream_port, "latency"), **spec.latency)
    limiter = build_limiter(spec.limiter, {} if groups is None else groups)
    return ServerModel(spec.port, success, limiter, latency, retry_after=spec.retry_after,
                       fault=spec.fault, rate_limit_headers=spec.rate_limit_headers,
                       rate_limit_headers_on=spec.rate_limit_headers_on)
