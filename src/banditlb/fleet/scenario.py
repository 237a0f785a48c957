"""Scenarios: a TOML file per fleet configuration, turned into server models for a seed."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from banditlb.fleet.models import (
    LatencyModel,
    MovingLimit,
    NoLimit,
    PenaltyBox,
    ServerModel,
    SuccessModel,
    TokenBucket,
)
from banditlb.fleet.streams import stream

PRESET_DIR = "scenarios"


class ScenarioError(ValueError):
    """A scenario name or file that cannot be used; the message says why."""


@dataclass(frozen=True)
class ServerSpec:
    """One server's settings as written in the scenario file (defaults merged in)."""

    port: int
    success: float | tuple[float, float]
    limiter: dict
    latency: dict
    retry_after: bool = False
    drift: tuple[tuple[float, float], ...] = ()
    fault: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    servers: tuple[ServerSpec, ...]
    port_offset: int = 0
    """How far the servers were shifted from the ports written in the file."""

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def shifted(self, offset: int) -> Scenario:
        """The same scenario on other ports (tests run side by side without clashing)."""
        servers = tuple(dataclasses.replace(s, port=s.port + offset) for s in self.servers)
        return dataclasses.replace(self, servers=servers, port_offset=self.port_offset + offset)

    def build(self, seed: int = 0) -> list[ServerModel]:
        """Fresh models for every server; same seed, same draws, whatever the port offset."""
        return [_build_server(self.name, spec, seed, spec.port - self.port_offset)
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
    servers = tuple(_parse_server(i, raw, defaults) for i, raw in enumerate(raw_servers))
    ports = [s.port for s in servers]
    if len(set(ports)) != len(ports):
        raise ScenarioError("two servers share a port")
    return Scenario(doc.get("name", default_name), doc.get("description", ""), servers)


def _parse_server(index: int, raw: dict, defaults: dict) -> ServerSpec:
    where = f"servers[{index}]"
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
        limiter={**defaults.get("limiter", {"kind": "none"}), **raw.get("limiter", {})},
        latency={**defaults.get("latency", {}), **raw.get("latency", {})},
        retry_after=bool(raw.get("retry_after", defaults.get("retry_after", False))),
        drift=drift,
        fault=raw.get("fault"),
    )
    try:
        _build_server("check", spec, 0, spec.port)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    return spec


def _build_limiter(cfg: dict):
    cfg = dict(cfg)
    kind = cfg.pop("kind", "none")
    if kind == "none":
        return NoLimit()
    if kind == "token_bucket":
        return TokenBucket(**cfg)
    if kind == "moving":
        box = PenaltyBox(**cfg.pop("box", {}))
        return MovingLimit(box=box, **cfg)
    raise ValueError(f"unknown limiter kind {kind!r} (none, token_bucket, moving)")


def _build_server(scenario: str, spec: ServerSpec, seed: int, stream_port: int) -> ServerModel:
    """`stream_port` (the port written in the file) names the random streams, so a shifted
    scenario draws exactly what the unshifted one draws."""
    p = spec.success
    if isinstance(p, tuple):
        p = stream(seed, scenario, stream_port, "p").uniform(*p)
    success = SuccessModel(stream(seed, scenario, stream_port, "success"), p, list(spec.drift))
    latency = LatencyModel(stream(seed, scenario, stream_port, "latency"), **spec.latency)
    return ServerModel(spec.port, success, _build_limiter(spec.limiter), latency,
                       retry_after=spec.retry_after, fault=spec.fault)
