"""The strategy registry: one ordered table, looked up by short name or alias.

`make_policy("thompson", 10, seed=1, params={"prior_alpha": 2})` is how the
router's callers (balancer, simulator, harness) get a policy; parameters are
the strategy's constructor keywords, checked here so a typo is an error.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from banditlb.strategies.base import Context, Policy

__all__ = ["Context", "Policy", "UnknownStrategy", "alias_of", "canonical_name", "make_policy",
           "parse_params", "strategy_class", "strategy_names"]

STRATEGIES: tuple[str, ...] = (
    "auto.Auto",
    "explore_first.ExploreFirst",
    "ucb.UCB",
    "ucb.UCBModified",
    "thompson.Thompson",
    "thompson.ThompsonModified",
    "thompson.ThompsonMasked",
    "windowed.SlidingWindow",
    "blocking.Blocking",
    "knapsack.BalancedExploration",
    "knapsack.PrimalDual",
    "baselines.RandomChoice",
    "baselines.RoundRobin",
    "baselines.EpsilonGreedy",
    "baselines.Exp3",
    "oracle.Oracle",
)
"""Every strategy as "module.Class" under banditlb.strategies, in display order: our default
first, then v1..v10, the baselines and the oracle last."""


class UnknownStrategy(ValueError):
    """A strategy name that is neither a short name nor an alias."""


@cache
def _classes() -> tuple[type[Policy], ...]:
    found = []
    for entry in STRATEGIES:
        module, cls = entry.rsplit(".", 1)
        found.append(getattr(import_module(f"banditlb.strategies.{module}"), cls))
    return tuple(found)


@cache
def _by_name() -> dict[str, type[Policy]]:
    table = {}
    for cls in _classes():
        table[cls.name] = cls
        table[cls.alias] = cls
    return table


def strategy_names(include_oracle: bool = True) -> list[str]:
    """Short names in display order: v1..v10, the baselines, then the oracle."""
    return [c.name for c in _classes() if include_oracle or not c.needs_truth]


def strategy_class(name: str) -> type[Policy]:
    """The class for a short name or alias (case-insensitive); UnknownStrategy otherwise."""
    cls = _by_name().get(name.strip().lower())
    if cls is None:
        valid = ", ".join(c.name if c.name == c.alias else f"{c.name} ({c.alias})"
                          for c in _classes())
        raise UnknownStrategy(f"unknown strategy {name!r}; valid names: {valid}")
    return cls


def canonical_name(name: str) -> str:
    """The short name: "thompson" -> "v4"."""
    return strategy_class(name).name


def alias_of(name: str) -> str:
    """The readable alias: "v4" -> "thompson"."""
    return strategy_class(name).alias


def make_policy(name: str, n_servers: int, *, seed: int = 0, params: dict | None = None,
                truth=None, free_attempts: int | None = None) -> Policy:
    """A fresh policy. `truth` (one object per server with true_success(now) and
    available(now)) is used by the oracle only and ignored by the others.
    `free_attempts` is the router's rule, handed to strategies that plan around it
    unless `params` sets it explicitly."""
    cls = strategy_class(name)
    kwargs = _checked_params(cls, params or {})
    if free_attempts is not None and "free_attempts" in cls.param_defaults():
        kwargs.setdefault("free_attempts", free_attempts)
    if cls.needs_truth:
        kwargs["truth"] = truth
    return cls(n_servers, seed=seed, **kwargs)


def _checked_params(cls: type[Policy], params: dict) -> dict:
    defaults = cls.param_defaults()
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(f"strategy {cls.name} ({cls.alias}) has no parameter "
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
