"""The pools one listener serves, and the routes that pick a pool for each request.

Each pool is a `Balancer` of its own (its upstreams, strategy, rules, run in the
store, shared-state namespace); they share the listener, the admin API and the
event stream. With one pool (every command-line start) every request goes to it.
"""

from __future__ import annotations

import asyncio

from banditlb.balancer.config import LbConfig, PoolRoute
from banditlb.balancer.core import Balancer, ReloadError
from banditlb.balancer.events import EventHub


class UnknownPool(LookupError):
    """?pool= names no pool of this balancer."""


class Pools:
    def __init__(self, config: LbConfig, events: EventHub):
        self.by_name = {c.name: Balancer(c, events) for c in config.all_pools}
        self.main = self.by_name[config.name]
        self.routes: tuple[PoolRoute, ...] = config.routes

    def __iter__(self):
        return iter(self.by_name.values())

    def pick(self, host: str | None, path: str) -> Balancer | None:
        """The pool of the first route that matches (the only pool when there are no
        routes); None when none does."""
        if not self.routes:
            return self.main
        for route in self.routes:
            if route.matches(host, path):
                return self.by_name[route.pool]
        return None

    def named(self, name: str | None) -> Balancer:
        if name is None:
            return self.main
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownPool(f"no pool {name!r}; pools: {', '.join(self.by_name)}") from None

    async def start(self) -> None:
        for balancer in self:
            await balancer.start()

    async def stop(self) -> None:
        await asyncio.gather(*(balancer.stop() for balancer in self))

    async def reload(self, new: LbConfig) -> dict:
        """Every pool reloaded with its part of `new`; adding or removing pools needs a
        restart (ReloadError, nothing changed)."""
        configs = {c.name: c for c in new.all_pools}
        if list(configs) != list(self.by_name):
            raise ReloadError(f"the pools changed ({', '.join(self.by_name)} -> "
                              f"{', '.join(configs)}): that needs a restart (the running "
                              f"configuration stays)")
        for name, balancer in self.by_name.items():
            balancer.check_reload(configs[name])
        done = {name: await balancer.reload(configs[name])
                for name, balancer in self.by_name.items()}
        self.routes = new.routes
        main = done[self.main.config.name]
        return {**main, "pools": done}

    def summary(self) -> list[dict]:
        """Each pool in a line: its routes, upstreams and run so far (for the live page)."""
        out = []
        for name, balancer in self.by_name.items():
            lane, counters = balancer.lane, balancer.lane.counters
            routes = [{"path_prefix": r.path_prefix, "host": r.host}
                      for r in self.routes if r.pool == name]
            out.append({"name": name, "contract": balancer.config.contract,
                        "strategy": lane.name, "upstreams": [u.name for u in lane.upstreams],
                        "routes": routes or [{"path_prefix": "/", "host": None}],
                        "requests": counters.requests, "accepted": counters.accepted,
                        "score": counters.score, "waiting": lane.holding.waiting})
        return out

    def snapshot(self, name: str | None = None) -> dict:
        """One pool's SNAPSHOT (the main one's by default), with every pool's summary."""
        return {**self.named(name).snapshot(), "pool": self.named(name).config.name,
                "pools": self.summary()}
