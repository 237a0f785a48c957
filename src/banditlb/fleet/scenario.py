"""Scenarios: a TOML file per fleet configuration, turned into server models for a seed."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from banditlb.fleet.limiters import PenaltyBox, build_limiter
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
    capacity_scale: float = 1.0
    """How many times the capacity written in the file its limits have (scale_capacity)."""

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


def scale_capacity(scenario: Scenario, factor: float) -> Scenario:
    """The same fleet with `factor` times the capacity: every rate, burst, window limit,
    concurrency cap and penalty-box strike count multiplied (schedules too: a sinusoid's
    base, each step's value), every time (windows, periods, collapses, cooldowns) and
    everything else (success, latency, faults) kept, random draws included (the name
    names the streams). So R balancers at R times a rate find it as scarce as one
    finds `scenario` at that rate. Whole-number fields are rounded, and a factor below 1
    stops at each field's minimum (a burst, a window's limit or a cap of 1). Servers
    sharing a limiter group still share one."""
    if isinstance(factor, bool) or not isinstance(factor, int | float) or \
            not 0 < factor < math.inf:
        raise ScenarioError(f"capacity scale must be a number > 0 (got {factor!r})")
    if factor == 1:
        return scenario
    servers = tuple(dataclasses.replace(s, limiter=_scaled(s.limiter, factor, "limiter"))
                    for s in scenario.servers)
    groups: dict = {}
    for spec in servers:  # still valid (the scaled values go through the same checks)
        try:
            _build_server("check", spec, 0, spec.port, groups)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{scenario.name} scaled by {factor}: {exc}") from exc
    return dataclasses.replace(scenario, servers=servers,
                               capacity_scale=scenario.capacity_scale * factor)


SCALED_FIELDS = {
    "token_bucket": {"rate", "burst"}, "fixed_window": {"limit"},
    "sliding_window": {"limit"}, "gcra": {"rate", "burst"}, "leaky_bucket": {"rate", "burst"},
    "concurrency": {"max_in_flight"}, "penalty_box": {"strikes_to_box"}, "collapse": set(),
    "slow_start": {"rate"}, "moving": {"base_rate", "burst"}, "none": set(),
}
"""Per limiter kind, the fields that are capacity (scaled by scale_capacity); `inner`
and a `box` table are scaled by their own rules."""
WHOLE = {"max_in_flight", "strikes_to_box"}
"""Scaled fields that stay whole numbers (and a GCRA's burst)."""
AT_LEAST_1 = {"burst", "limit"}
"""Scaled numbers that stop at 1 (a window limit given as a schedule may go lower)."""
SCALED_SHAPES = {"constant": "value", "sinusoid": "base", "daily": "base", "steps": "steps"}


def _scaled(cfg: object, factor: float, key: str) -> object:
    if isinstance(cfg, list):
        return [_scaled(c, factor, f"{key}[{i}]") for i, c in enumerate(cfg)]
    if not isinstance(cfg, dict):
        return cfg  # not a limiter table: left for the checks to name
    kind = cfg.get("kind")
    fields = SCALED_FIELDS.get(kind)
    if fields is None:
        raise ScenarioError(f"{key}: no rule to scale the capacity of a {kind!r} limiter")
    out = dict(cfg)
    for name, value in cfg.items():
        if name == "inner":
            out[name] = _scaled(value, factor, f"{key}.inner")
        elif name == "box" and isinstance(value, dict):
            out[name] = _scaled_box(value, factor)
        elif name in fields:
            whole = name in WHOLE or (kind in ("gcra", "leaky_bucket") and name == "burst")
            out[name] = _times(value, factor, whole, 1.0 if name in AT_LEAST_1 else 0.0)
    if kind == "moving":
        out["box"] = _scaled_box(cfg.get("box", {}), factor)  # its default box too
    elif kind == "penalty_box" and "strikes_to_box" not in cfg:
        out["strikes_to_box"] = _times(PenaltyBox.strikes_to_box, factor, True)
    return out


def _scaled_box(box: dict, factor: float) -> dict:
    return {**box, "strikes_to_box": _times(box.get("strikes_to_box",
                                                    PenaltyBox.strikes_to_box), factor, True)}


def _times(value: object, factor: float, whole: bool, least: float = 0.0) -> object:
    if isinstance(value, dict):  # a rate schedule {shape = ...}
        field = SCALED_SHAPES.get(value.get("shape"))
        if field is None or field not in value:
            return value  # not one we know: the checks name what is wrong
        if field == "steps":
            return {**value, "steps": [[t, v * factor] for t, v in value["steps"]]}
        return {**value, field: value[field] * factor}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if whole:
        return max(1, round(value * factor))
    return max(least, value * factor)


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
