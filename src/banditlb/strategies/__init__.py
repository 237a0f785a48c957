"""The strategy registry: one ordered table, looked up by short name or alias.

`make_strategy("thompson", 10, seed=1, params={"prior_alpha": 2})` is how the
router's callers (balancer, simulator, harness) get a strategy; parameters are
its chooser's and admission rule's constructor keywords (and `hold`), checked
here so a typo is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from importlib import import_module

from banditlb.admission import Admission, Block, Mask, Open, Pacing, TrueCapacity
from banditlb.strategies.base import Chooser, Context
from banditlb.strategies.strategy import Strategy

__all__ = ["Chooser", "Context", "Strategy", "UnknownStrategy", "alias_of", "canonical_name",
           "make_strategy", "parse_params", "strategy_spec", "strategy_names"]


@dataclass(frozen=True)
class Spec:
    """One strategy: its names, its chooser ("module.Class" under banditlb.strategies),
    its admission rule and whether it holds ids for capacity by default."""

    name: str
    alias: str
    chooser: str
    admission: type[Admission] = Open
    hold: bool = False
    needs_truth: bool = False
    """True only for the oracle, which the simulator feeds the fleet's true state."""

    @cached_property
    def chooser_class(self) -> type[Chooser]:
        module, cls = self.chooser.rsplit(".", 1)
        return getattr(import_module(f"banditlb.strategies.{module}"), cls)

    def param_defaults(self) -> dict:
        """Every parameter and its default: the chooser's constructor keywords, the
        admission rule's, and `hold` (so the registry and the CLI never keep a second list)."""
        return {**self.chooser_class.param_defaults(), **self.admission.param_defaults(),
                "hold": self.hold}


STRATEGIES: tuple[Spec, ...] = (
    Spec("auto", "auto", "auto.AutoQuality", Pacing, hold=True),
    Spec("v1", "explore-first", "explore_first.ExploreFirst"),
    Spec("v2", "ucb", "ucb.UCB"),
    Spec("v3", "ucb-modified", "ucb.UCBModified"),
    Spec("v4", "thompson", "thompson.Thompson"),
    Spec("v5", "thompson-modified", "thompson.ThompsonModified"),
    Spec("v6", "thompson-masked", "thompson.ThompsonQuality", Mask),
    Spec("v7", "sliding-window", "windowed.SlidingWindow", Mask),
    Spec("v8", "blocking", "thompson.ThompsonQuality", Block),
    Spec("v9", "balanced-exploration", "knapsack.BalancedExploration"),
    Spec("v10", "primal-dual", "knapsack.PrimalDual"),
    Spec("random", "random", "baselines.RandomChoice"),
    Spec("round-robin", "round-robin", "baselines.RoundRobin"),
    Spec("epsilon-greedy", "epsilon-greedy", "baselines.EpsilonGreedy"),
    Spec("exp3", "exp3", "baselines.Exp3"),
    Spec("oracle", "oracle", "oracle.Oracle", TrueCapacity, hold=True, needs_truth=True),
)
"""Every strategy in display order: our default first, then v1..v10, the baselines and
the oracle last."""


class UnknownStrategy(ValueError):
    """A strategy name that is neither a short name nor an alias."""


@cache
def _by_name() -> dict[str, Spec]:
    table = {}
    for spec in STRATEGIES:
        table[spec.name] = spec
        table[spec.alias] = spec
    return table


def strategy_names(include_oracle: bool = True) -> list[str]:
    """Short names in display order: v1..v10, the baselines, then the oracle."""
    return [s.name for s in STRATEGIES if include_oracle or not s.needs_truth]


def strategy_spec(name: str) -> Spec:
    """The spec for a short name or alias (case-insensitive); UnknownStrategy otherwise."""
    spec = _by_name().get(name.strip().lower())
    if spec is None:
        valid = ", ".join(s.name if s.name == s.alias else f"{s.name} ({s.alias})"
                          for s in STRATEGIES)
        raise UnknownStrategy(f"unknown strategy {name!r}; valid names: {valid}")
    return spec


def canonical_name(name: str) -> str:
    """The short name: "thompson" -> "v4"."""
    return strategy_spec(name).name


def alias_of(name: str) -> str:
    """The readable alias: "v4" -> "thompson"."""
    return strategy_spec(name).alias


def make_strategy(name: str, n_servers: int, *, seed: int = 0, params: dict | None = None,
                  truth=None, free_attempts: int | None = None,
                  max_retry_after_s: float | None = None) -> Strategy:
    """A fresh strategy. `truth` (one object per server with true_success(now),
    available(now) and admits_in(now)) is used by the oracle only and ignored by the
    others. `free_attempts` is the router's rule, handed to choosers that plan around it,
    and `max_retry_after_s` the balancer's cap, handed to admission rules that read
    Retry-After, unless `params` sets them explicitly."""
    spec = strategy_spec(name)
    values = _checked_params(spec, params or {})
    chooser_keys = spec.chooser_class.param_defaults()
    if free_attempts is not None and "free_attempts" in chooser_keys:
        values.setdefault("free_attempts", free_attempts)
    if max_retry_after_s is not None and "max_retry_after_s" in spec.admission.param_defaults():
        values.setdefault("max_retry_after_s", max_retry_after_s)
    hold = values.pop("hold", spec.hold)
    chooser_kwargs = {k: v for k, v in values.items() if k in chooser_keys}
    admission_kwargs = {k: v for k, v in values.items() if k not in chooser_keys}
    if spec.needs_truth:
        chooser_kwargs["truth"] = admission_kwargs["truth"] = truth
    chooser = spec.chooser_class(n_servers, seed=seed, **chooser_kwargs)
    admission = spec.admission(n_servers, **admission_kwargs)
    everything = {**spec.param_defaults(), **values, "hold": hold}
    return Strategy(spec.name, spec.alias, chooser, admission, hold, everything)


def _checked_params(spec: Spec, params: dict) -> dict:
    defaults = spec.param_defaults()
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(f"strategy {spec.name} ({spec.alias}) has no parameter "
                         f"{', '.join(unknown)}; its parameters: {valid}")
    return {key: _as_type_of(defaults[key], key, value) for key, value in params.items()}


def _as_type_of(default: object, key: str, value: object) -> object:
    """`value` converted to the type of the default, or ValueError saying what was expected."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif isinstance(default, int):
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and float(value).is_integer():
            return int(value)
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    else:
        return value
    raise ValueError(f"parameter {key} must be {expected}, got {value!r}")


def parse_params(items: list[str]) -> dict:
    """["window=50", "cooldown_s=1.5", "flag=true"] -> {"window": 50, "cooldown_s": 1.5,
    "flag": True}; ValueError saying what is wrong with a bad item."""
    params: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ValueError(f"bad parameter {item!r}: expected key=value, e.g. window=50")
        if not key.isidentifier():
            raise ValueError(f"bad parameter {item!r}: {key!r} is not a parameter name")
        if not raw:
            raise ValueError(f"bad parameter {item!r}: no value after '='")
        if key in params:
            raise ValueError(f"parameter {key} given twice")
        params[key] = _parse_value(raw)
    return params


def _parse_value(raw: str) -> bool | int | float | str:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    return raw
