"""What a strategy learned about each upstream, carried to a new set of upstreams.

A reload that adds or removes upstreams must not make the balancer forget the ones
that stay. Every chooser and admission rule keeps its per-upstream beliefs as
lists (or arrays) indexed by upstream, so carrying is one rule for all of them,
not one method per class: in a strategy built fresh for the new set, each list
indexed by upstream takes the old entry of an upstream that stays and keeps the
fresh (prior) entry of a new one. Everything else (counts, prices, random streams)
is the old strategy's, but for `n` and tuples, which are derived from the number
of upstreams. Lists shared between two parts (Budgets reads InFlight's counts)
stay shared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from banditlb.strategies.strategy import Strategy

SIZED = ("n",)
"""Attributes that are the number of upstreams: the fresh strategy's."""


def carried(old: Strategy, fresh: Strategy, keep: Sequence[int | None]) -> Strategy:
    """`fresh` (built for the new upstreams, same name and parameters) with what `old`
    learned: keep[i] is new upstream i's index in `old`, or None for a new one."""
    if len(keep) != fresh.n or any(k is not None and not 0 <= k < old.n for k in keep):
        raise ValueError("keep must name, for each new upstream, an old index or None")
    memo: dict[int, object] = {}
    for part in ("chooser", "admission"):
        _carry(getattr(old, part), getattr(fresh, part), keep, old.n, memo)
    return fresh


def _fields(obj) -> list[str]:
    names = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        names += [s for s in getattr(cls, "__slots__", ()) if s not in names]
    return names


def _ours(value) -> bool:
    return type(value).__module__.startswith("banditlb.")


def _carry(old, fresh, keep: Sequence[int | None], n_old: int, memo: dict) -> None:
    for name in _fields(fresh):
        if not hasattr(old, name) or name in SIZED:
            continue
        was, new = getattr(old, name), getattr(fresh, name)
        if id(was) in memo:
            value = memo[id(was)]
        elif isinstance(was, list) and isinstance(new, list) and len(was) == n_old \
                and len(new) == len(keep):
            value = [was[k] if k is not None else new[i] for i, k in enumerate(keep)]
        elif isinstance(was, np.ndarray) and was.ndim and was.shape[0] == n_old \
                and isinstance(new, np.ndarray) and new.shape[0] == len(keep):
            value = new.copy()
            for i, k in enumerate(keep):
                if k is not None:
                    value[i] = was[k]
        elif _ours(was) and type(was) is type(new):
            _carry(was, new, keep, n_old, memo)
            value = new
        elif isinstance(new, tuple):
            continue
        else:
            value = was
        memo[id(was)] = value
        setattr(fresh, name, value)
