"""The balancer's core, without HTTP: route an id, count it, record it, switch runs.

Everything that changes together on /admin/strategy (strategy, upstream clients,
counters, waiting ids, run id, clock) lives in one `Lane`; a request keeps the lane
it started on, so a switch is a single assignment and in-flight requests finish
where they began. Time as the strategy sees it starts at the lane's start (one
clock for the router, the upstream clients and the waiting ids), never at the
host's uptime.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from banditlb.attempts import OK, UNAVAILABLE, AttemptLoop, RouteResult, run_attempts
from banditlb.balancer.access_log import AccessLog
from banditlb.balancer.config import HTTP, ConfigError, LbConfig, Upstream
from banditlb.balancer.counters import RunCounters
from banditlb.balancer.events import EventHub
from banditlb.balancer.forward import HttpUpstreamClient, tls_context
from banditlb.balancer.holding import Holding
from banditlb.balancer.recorder import Recorder
from banditlb.balancer.upstream import UpstreamClient
from banditlb.outcomes import Attempt, Outcome
from banditlb.retry_budget import RetryBudget
from banditlb.shared import evidence
from banditlb.shared.evidence import Evidence
from banditlb.store import AttemptRow
from banditlb.strategies import Strategy, canonical_name, make_strategy
from banditlb.strategies.carry import carried

AttemptFn = Callable[[object, float, Callable[[], float]], Awaitable[Attempt]]
"""(upstream client, timeout_s, lane clock) -> the finished Attempt (never raises)."""


async def close_clients(clients: list) -> None:
    """Close every upstream client (an http one finishes closing asynchronously)."""
    for client in clients:
        closing = client.close()
        if closing is not None:
            await closing


def _budget_view(budget: RetryBudget | None) -> dict | None:
    if budget is None:
        return None
    c = budget.config
    return {"percent": c.percent, "min_retries": c.min_retries, "window_s": c.window_s,
            "denied": budget.denied}


DRAIN_SLACK_S = 5.0
"""A replaced lane's clients close at most this long after its last possible answer."""


def _restart_only(old: LbConfig, new: LbConfig) -> list[tuple[str, object, object]]:
    """The settings a running balancer cannot change (its listeners, contract, store,
    links), by their config file keys, with their old and new values."""
    return [("listen.host", old.host, new.host), ("listen.port", old.port, new.port),
            ("listen.admin_port", old.forwarding.admin_port, new.forwarding.admin_port),
            ("listen.max_head_bytes", old.max_head_bytes, new.max_head_bytes),
            ("contract", old.contract, new.contract), ("data_dir", old.data_dir, new.data_dir),
            ("shared_state", old.shared, new.shared)]


class ReloadError(ValueError):
    """A configuration that cannot be applied to the running balancer; nothing changed."""


class SwitchError(ValueError):
    """An /admin/strategy request that cannot be applied; the message says why."""


class LaneClock:
    """Seconds since the lane started, and the wall-clock time of such a moment."""

    __slots__ = ("origin", "wall_origin")

    def __init__(self):
        self.origin = time.monotonic()
        self.wall_origin = time.time()

    def __call__(self) -> float:
        return time.monotonic() - self.origin

    def wall(self, t: float) -> float:
        return self.wall_origin + t


@dataclass
class Lane:
    """One run of one strategy over one set of upstreams."""

    strategy: Strategy
    seed: int
    scenario: str | None
    upstreams: list[Upstream]
    clients: list
    """UpstreamClient (challenge contract) or HttpUpstreamClient (http) per upstream."""
    counters: RunCounters
    clock: LaneClock
    holding: Holding
    retry_budget: RetryBudget | None = None
    run_id: int | None = None
    session_id: int | None = None
    last_request: int = 0
    in_flight: list[int] = field(default_factory=list)
    """Attempts on their way per upstream (told to the other replicas with a refusal)."""
    index_of: dict[str, int] = field(default_factory=dict)
    """Upstream name -> index, for evidence from other replicas."""
    active: int = 0
    """Requests routed on this lane and not answered yet (a reload drains them)."""

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def params(self) -> dict:
        return self.strategy.params


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client gets for one id."""

    status_code: int
    body: dict
    headers: dict = field(default_factory=dict)


def build_strategy(strategy: str, n_servers: int, seed: int, params: dict,
                   config: LbConfig) -> Strategy:
    """A fresh strategy; SwitchError for names or parameters that do not fit."""
    try:
        name = canonical_name(strategy)
    except ValueError as exc:
        raise SwitchError(str(exc)) from exc
    if name == "oracle":
        raise SwitchError("the oracle exists only in the simulator (it reads the fleet's "
                          "true state); pick a learning strategy")
    try:
        return make_strategy(name, n_servers, seed=seed, params=params,
                             free_attempts=config.rules.free_attempts,
                             max_retry_after_s=config.max_retry_after_s)
    except ValueError as exc:
        raise SwitchError(str(exc)) from exc
    except (TypeError, OverflowError) as exc:  # a value the strategy's arithmetic cannot take
        raise SwitchError(f"strategy {name}: a parameter is out of range ({exc})") from exc


class Balancer:
    def __init__(self, config: LbConfig, events: EventHub):
        self.config = config
        self.rules = config.rules
        self.events = events
        self.recorder: Recorder | None = None
        self.shared = None
        """The link to the other replicas (banditlb.shared.redis_sync), once started."""
        self._switching = asyncio.Lock()
        self._one_attempt = dataclasses.replace(config.rules, max_attempts=1)
        self.access_log = self._open_access_log(config.access_log, ConfigError)
        self.lane = self._new_lane(
            build_strategy(config.strategy, len(config.upstreams), config.seed, config.params,
                           config), config.seed, config.scenario, config.upstreams)

    async def start(self) -> None:
        """Open the store and begin the first run (recording off, loudly, if it cannot)."""
        self.recorder = await asyncio.to_thread(Recorder, self.config.data_dir)
        lane = self.lane
        lane.run_id, lane.session_id = await asyncio.to_thread(
            self.recorder.start_run, lane.name, lane.scenario, lane.params, lane.seed)
        if self.config.shared is not None:
            from banditlb.shared.redis_sync import SharedState  # only where it is used
            self.shared = SharedState(self.config.shared.with_password_from_env(),
                                      self.take_elsewhere)
            await self.shared.start()

    async def stop(self) -> None:
        """End the run and flush every attempt (after the server drained its requests)."""
        lane = self.lane
        if self.shared is not None:
            await self.shared.stop()
        await close_clients(lane.clients)
        if self.access_log is not None:
            self.access_log.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.end_run, lane.run_id, lane.counters.summary())
            await asyncio.to_thread(self.recorder.close)

    async def submit(self, request_id: str) -> Answer:
        """Route one valid id through the lane's strategy; never raises for upstream trouble."""
        lane, result, unreachable = await self.route(
            request_id, lambda client, timeout_s, clock: client.send(request_id, timeout_s, clock))
        return self.answer(lane, result, unreachable)

    async def route(self, request_id: str, attempt: AttemptFn,
                    retry: bool = True) -> tuple[Lane, RouteResult, bool]:
        """Drive one request through the lane's attempt loop, `attempt` making each try at
        an upstream client; count and record it. `retry=False` allows one attempt (a
        request that is not safe to send twice). Returns the lane, the result and whether
        no upstream ever accepted a connection."""
        lane = self.lane
        lane.last_request += 1
        number = lane.last_request
        counters, clients, events, clock = lane.counters, lane.clients, self.events, lane.clock
        sent = 0

        shared = self.shared

        async def send(server: int, timeout_s: float) -> Attempt:
            nonlocal sent
            sent += 1
            if shared is None:
                done = await attempt(clients[server], timeout_s, clock)
            else:
                done = await self._shared_attempt(shared, lane, server, attempt, timeout_s)
            counters.attempt(done)
            if events.listening:
                events.publish("attempt", self._attempt_event(lane, number, sent, request_id,
                                                              done))
            return done

        holding = lane.holding
        started = clock()
        loop = AttemptLoop(lane.strategy, self.rules if retry else self._one_attempt, started,
                           lane.retry_budget)
        lane.active += 1
        try:
            result = await run_attempts(loop, send, clock, holding.hold)
        finally:
            holding.forget(loop)
            lane.active -= 1
        unreachable = result.status != OK and bool(result.attempts) and all(
            a.outcome is Outcome.CONN_ERROR for a in result.attempts)
        counters.finished(result, clock() - started, unreachable)
        self._record(lane, number, request_id, result)
        return lane, result, unreachable

    async def _shared_attempt(self, shared, lane: Lane, server: int, attempt: AttemptFn,
                              timeout_s: float) -> Attempt:
        """One attempt, told to the other replicas as it leaves and as it comes back."""
        name = lane.upstreams[server].name
        shared.publish(evidence.sent(name, time.time()))
        lane.in_flight[server] += 1
        try:
            done = await attempt(lane.clients[server], timeout_s, lane.clock)
        finally:
            lane.in_flight[server] -= 1
        shared.publish(evidence.answered(name, done, time.time(), self.rules,
                                         lane.in_flight[server]))
        return done

    def take_elsewhere(self, batch: list[Evidence]) -> None:
        """Another replica's evidence, fed to the current lane's strategy."""
        lane = self.lane
        now, wall, index_of, strategy = lane.clock(), time.time(), lane.index_of, lane.strategy
        for e in batch:
            server = index_of.get(e.upstream)
            if server is not None:
                evidence.apply(strategy, server, e, now, wall - e.wall)

    def reject(self) -> None:
        """Count a request refused for bad input."""
        self.lane.counters.rejected += 1

    async def switch(self, strategy: str, params: dict | None = None,
                     upstreams: list[Upstream] | None = None, scenario: str | None = None,
                     run_id: int | None = None, session: str | None = None,
                     seed: int | None = None) -> Lane:
        """End the current run and start another with fresh learning and fresh counters."""
        async with self._switching:
            old = self.lane
            changed = upstreams is not None and upstreams != old.upstreams
            seed = self.config.seed if seed is None else seed
            chosen = upstreams if changed else old.upstreams
            lane = self._new_lane(
                build_strategy(strategy, len(chosen), seed, params or {}, self.config), seed,
                scenario if scenario is not None or changed else old.scenario, chosen,
                None if changed else old.clients)
            if self.recorder is not None:
                await asyncio.to_thread(self.recorder.end_run, old.run_id,
                                        old.counters.summary())
                try:
                    lane.run_id, lane.session_id = await asyncio.to_thread(
                        self.recorder.start_run, lane.name, lane.scenario, lane.params,
                        lane.seed, run_id, session)
                except LookupError as exc:
                    raise SwitchError(str(exc)) from exc
            self.lane = lane
            if changed:
                await close_clients(old.clients)
            return lane

    async def reload(self, new: LbConfig) -> dict:
        """Apply a new configuration without dropping a request: requests already routed
        finish on the lane they began on; upstreams that stay keep what was learned
        about them (when the strategy, its parameters and seed are the same); removed
        ones drain, then close. ReloadError (nothing applied) for what needs a restart."""
        async with self._switching:
            self.check_reload(new)
            old_config, old = self.config, self.lane
            access_log = self.access_log
            if new.access_log != old_config.access_log:
                access_log = self._open_access_log(new.access_log, ReloadError)
            same_set = new.upstreams == old.upstreams
            learning = (new.strategy, new.params, new.seed, new.rules.free_attempts,
                        new.max_retry_after_s)
            kept = learning == (old_config.strategy, old_config.params, old_config.seed,
                                old_config.rules.free_attempts, old_config.max_retry_after_s)
            strategy = old.strategy if kept and same_set else build_strategy(
                new.strategy, len(new.upstreams), new.seed, new.params, new)
            if kept and not same_set:
                names = [u.name for u in old.upstreams]
                keep = [names.index(u.name) if u.name in names else None
                        for u in new.upstreams]
                strategy = carried(old.strategy, strategy, keep)
            self.config, self.rules = new, new.rules
            self._one_attempt = dataclasses.replace(new.rules, max_attempts=1)
            lane = self._new_lane(strategy, new.seed, old.scenario, new.upstreams,
                                  old.clients if same_set else None, old.clock)
            lane.holding = old.holding  # ids waiting now keep their turn
            old.holding.waitlist.max_waiting = new.max_waiting
            if same_set and kept and new.rules == old_config.rules:  # the same run goes on
                lane.counters, lane.run_id, lane.session_id = (old.counters, old.run_id,
                                                               old.session_id)
                lane.last_request = old.last_request
            elif self.recorder is not None:
                await asyncio.to_thread(self.recorder.end_run, old.run_id,
                                        old.counters.summary())
                lane.run_id, lane.session_id = await asyncio.to_thread(
                    self.recorder.start_run, lane.name, lane.scenario, lane.params, lane.seed)
            self.lane = lane
            if access_log is not self.access_log:
                old_log, self.access_log = self.access_log, access_log
                if old_log is not None:
                    old_log.close()
            if not same_set:
                asyncio.get_running_loop().create_task(self._drain(old))
            return {"ok": True, "upstreams": [u.name for u in lane.upstreams],
                    "learning": "kept" if kept else "restarted (strategy, parameters, seed "
                                "or free attempts changed)",
                    "run_id": lane.run_id}

    def check_reload(self, new: LbConfig) -> None:
        """ReloadError if `new` cannot be applied (what needs a restart, a strategy that
        cannot be built), before anything changes."""
        fixed = [name for name, then, now in _restart_only(self.config, new) if then != now]
        if fixed:
            raise ReloadError(f"{', '.join(fixed)} changed: that needs a restart (the "
                              f"running configuration stays)")
        try:
            build_strategy(new.strategy, len(new.upstreams), new.seed, new.params, new)
        except SwitchError as exc:
            raise ReloadError(str(exc)) from exc

    async def _drain(self, old: Lane) -> None:
        """Close a replaced lane's upstream clients once its requests are answered."""
        deadline = time.monotonic() + (self.rules.deadline_s or 60.0) + DRAIN_SLACK_S
        while old.active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await close_clients(old.clients)

    def reset(self) -> None:
        """Fresh learning for the current strategy; same run, same counters."""
        lane = self.lane
        lane.strategy = self._weighed(build_strategy(lane.name, len(lane.upstreams),
                                                     lane.seed, lane.params, self.config),
                                      lane.upstreams)

    async def flush(self) -> dict:
        """Wait until every attempt recorded so far is committed to the store."""
        recorder = self.recorder
        if recorder is None:
            return {"ok": True, "recording": False, "dropped": 0}
        ok = await asyncio.to_thread(recorder.flush)
        return {"ok": ok or not recorder.recording, "recording": recorder.recording,
                "dropped": recorder.dropped}

    def snapshot(self) -> dict:
        """The SNAPSHOT of contract B: counters, estimates, latency, waiting ids and the
        strategy's view."""
        lane = self.lane
        now = lane.clock()
        c, strategy = lane.counters, lane.strategy
        weights = strategy.weights or (1.0,) * len(lane.upstreams)
        servers = [{"index": i, "upstream": u.name, "weight": weights[i],
                    "attempts": s.attempts,
                    "accepted": s.accepted, "failed": s.failed, "rate_limited": s.rate_limited,
                    "timeouts": s.timeouts, "conn_errors": s.conn_errors,
                    "estimate": round(strategy.estimate(i, now), 4)}
                   for i, (u, s) in enumerate(zip(lane.upstreams, c.servers, strict=True))]
        recorder = self.recorder
        return {
            "t": time.time(), "strategy": lane.name, "alias": strategy.alias,
            "params": lane.params, "scenario": lane.scenario, "run_id": lane.run_id,
            "session_id": lane.session_id, "requests": c.requests, "accepted": c.accepted,
            "gave_up": c.gave_up, "unavailable": c.unavailable, "rejected": c.rejected,
            "attempts": c.attempts, "penalized": c.penalized, "rate_limited": c.rate_limited,
            "score": c.score, "penalty_weight": self.rules.penalty_weight,
            "free_attempts": self.rules.free_attempts, "servers": servers,
            "latency_ms": c.latency_view(),
            "waiting": c.waiting_view(lane.holding.waiting, self.config.max_waiting),
            "retry_budget": _budget_view(lane.retry_budget),
            "fleet_url": self.config.fleet_url,
            "recording": recorder is not None and recorder.recording,
            "dropped": recorder.dropped if recorder is not None else 0,
            "beliefs": strategy.snapshot(now),
            "shared": None if self.shared is None else self.shared.view(),
        }

    def _new_lane(self, strategy: Strategy, seed: int, scenario: str | None,
                  upstreams: list[Upstream], clients: list | None = None,
                  clock: LaneClock | None = None) -> Lane:
        if clients is None:
            clients = self._clients(upstreams)
        clock = clock or LaneClock()
        budget = self.config.retry_budget
        return Lane(self._weighed(strategy, upstreams), seed, scenario, upstreams, clients,
                    RunCounters(len(upstreams), self.rules), clock,
                    Holding(self.config.max_waiting, clock),
                    None if budget is None else RetryBudget(budget),
                    in_flight=[0] * len(upstreams),
                    index_of={u.name: i for i, u in enumerate(upstreams)})

    def _weighed(self, strategy: Strategy, upstreams: list[Upstream]) -> Strategy:
        """The strategy with the configured weights, when it serves the configured
        upstreams (an /admin/strategy switch to others has none)."""
        strategy.weights = self.config.weights if upstreams == self.config.upstreams else None
        return strategy

    @staticmethod
    def _open_access_log(path, error: type[Exception]) -> AccessLog | None:
        if path is None:
            return None
        try:
            return AccessLog(path)
        except OSError as exc:
            raise error(f"cannot open the access log {path}: {exc.strerror or exc}") from exc

    def _clients(self, upstreams: list[Upstream]) -> list:
        if self.config.contract == HTTP:
            tls = tls_context(self.config.forwarding)
            return [HttpUpstreamClient(i, u, tls) for i, u in enumerate(upstreams)]
        return [UpstreamClient(i, u) for i, u in enumerate(upstreams)]

    def _attempt_event(self, lane: Lane, number: int, attempt_number: int, request_id: str,
                       attempt: Attempt) -> dict:
        return {"run_id": lane.run_id, "request_number": number,
                "attempt_number": attempt_number, "request_id": request_id,
                "upstream": lane.upstreams[attempt.server].name,
                "outcome": attempt.outcome.value, "status": attempt.status,
                "latency_ms": round(attempt.latency_s * 1000.0, 3),
                "t": lane.clock.wall(attempt.started_at)}

    def _record(self, lane: Lane, number: int, request_id: str, result: RouteResult) -> None:
        recorder = self.recorder
        if recorder is None or lane.run_id is None:
            return
        last = len(result.attempts)
        accepted = result.status == OK
        for k, a in enumerate(result.attempts, 1):
            upstream = lane.upstreams[a.server]
            recorder.put(AttemptRow(lane.run_id, number, k, request_id, upstream.name,
                                    upstream.port, a.outcome.value, a.status,
                                    a.latency_s * 1000.0, lane.clock.wall(a.started_at),
                                    k == last, k == last and accepted))

    def answer(self, lane: Lane, result: RouteResult, unreachable: bool) -> Answer:
        """The balancer's own answer for a routed request (the challenge contract's, and the
        http contract's when no upstream answer can be passed on)."""
        n = len(result.attempts)
        if result.status == OK:
            server = lane.upstreams[result.server].name
            return Answer(200, {"status": "ok", "server": server, "attempts": n})
        if result.status == UNAVAILABLE or unreachable:
            if unreachable:
                reason = "no upstream accepted a connection (every attempt was refused)"
            elif result.retry_after_s is not None:
                reason = (f"too many ids already wait for capacity (at most "
                          f"{self.config.max_waiting}); retry after the time given")
            else:
                reason = "no upstream is usable right now (all rate limited or down)"
            wait = result.retry_after_s
            if wait is None:
                wait = self._capacity_in(lane)
            return Answer(503, {"status": "unavailable", "attempts": n, "reason": reason},
                          {"Retry-After": str(max(1, math.ceil(wait)))})
        return Answer(502, {"status": "error", "attempts": n, "last": result.last.outcome.value})


    @staticmethod
    def _capacity_in(lane: Lane) -> float:
        """Seconds until the admission layer expects some upstream to admit again."""
        now, admission = lane.clock(), lane.strategy.admission
        soonest = min(admission.next_admit(s, now, True) for s in range(lane.strategy.n))
        return min(soonest - now, 3600.0) if soonest != math.inf else 60.0
