"""`Pacing`: each upstream's capacity learned as a token bucket we cannot see.

Why each part (the ablations are in docs/strategies.md):
- The first 429 sets the server's rate to what it admitted lately; every later
  429 cuts it (multiplicative decrease) and empties our copy of the bucket; it
  comes back to the refused rate within `recover_s`, then grows beyond it
  (doubling every `doubling_s`), so capacity that returns is found without
  waiting for luck. Ids that wait never probe a server believed empty, so this
  regrowth is the only way more capacity is found: it doubles every 5 s. A
  server whose bucket copy is empty is not ready, so each server is paced near
  its real capacity instead of being learned by hitting 429s, and we stay out of
  penalty boxes that punish hammering.
- An attempt takes its token when it leaves, so ids that arrive together
  (a burst) spread over the servers instead of all taking the same last token.
- Refusals in a row back off exponentially (a collapse or a penalty box, not a
  slower steady rate); a refused connection backs off the same way (quarantine).
- A Retry-After is believed, up to `max_retry_after_s` (a broken or hostile
  upstream must not park a server for a day; Linkerd caps it at 300 s).
- Trunk reservation: a scarce server's last `reserve` tokens are kept for an id's
  last free attempt, where a success is worth the most (no second chance after it).
- An upstream that announces its budget in rate-limit headers, on any answer, is
  paced to the lesser of what it announced (`Budgets`) and our guess: the guess is
  unpaced until a refusal, so it only binds where the announcement promised too
  much (a fixed window regains nothing before its reset; a shared quota is spent
  by others too). `read_headers=false` ignores the fields: an ablation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from banditlb.admission.base import Admission
from banditlb.admission.budget import Budgets
from banditlb.admission.inflight import InFlight
from banditlb.outcomes import CONN_ERROR, RATE_LIMITED, Outcome
from banditlb.quota import Quota

MAX_DOUBLINGS = 30.0
"""Regrowth stops here (a billion times the refused rate: unpaced in practice), so a
long quiet spell cannot overflow the float."""
ROUNDING_S = 1e-9
"""Added to a promised admission time so float rounding cannot make it a hair early."""
CEILING_BAND = 1.2
"""Two refused rates within this factor of each other are the same ceiling."""
MAX_CEILING_HITS = 3
MIN_WAIT_S = 0.001
"""The shortest wait `next_admit` promises: a float that rounds a hair short must not
turn a wait into a busy loop."""


class Pacing(Admission):
    def __init__(self, n_servers: int, *, decrease: float = 0.75, recover_s: float = 2.0,
                 doubling_s: float = 5.0, rate_window_s: float = 5.0, min_rate: float = 0.05,
                 backoff_s: float = 0.5, backoff_max_s: float = 8.0, reserve: float = 1.0,
                 max_retry_after_s: float = 60.0, pace: bool = True,
                 read_headers: bool = True):
        super().__init__(n_servers)
        if not 0 < decrease <= 1 or recover_s <= 0 or doubling_s <= 0 or min_rate <= 0:
            raise ValueError("need 0 < decrease <= 1 and recover_s, doubling_s, min_rate > 0")
        if rate_window_s <= 0 or backoff_s < 0 or backoff_max_s < 0 or reserve < 0:
            raise ValueError("rate_window_s must be > 0; backoffs and reserve >= 0")
        if not max_retry_after_s >= 0:
            raise ValueError("max_retry_after_s must be >= 0")
        self.decrease, self.recover_s, self.doubling_s = decrease, recover_s, doubling_s
        self.rate_window_s, self.min_rate = rate_window_s, min_rate
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.reserve, self.max_retry_after_s, self.pace = reserve, max_retry_after_s, pace
        self.read_headers = read_headers
        """pace=False, read_headers=False: ablation switches (no bucket, only backoff and
        Retry-After; no announced budgets)."""
        self.flight = InFlight(n_servers)
        self.budgets = Budgets(n_servers, self.flight.count)
        self.admitted_at = [deque() for _ in range(n_servers)]
        self.rate = [math.inf] * n_servers
        """Estimated refill rate (admits/s); inf until the server first refuses."""
        self.refused_at = [0.0] * n_servers
        self.tokens = [1.0] * n_servers
        self.refilled_at = [0.0] * n_servers
        self.blocked_until = [-math.inf] * n_servers
        self.rate_limited = [0] * n_servers
        self.ceiling_hits = [0] * n_servers
        """Refusals in a row at about the same rate: each halves the regrowth's pace."""
        self.streak = [0] * n_servers
        """Refusals in a row: a collapse or a penalty box, not a slower steady rate."""
        self.retry_after_capped = 0
        """Retry-After values above max_retry_after_s, cut to it."""

    def _rate(self, server: int, now: float) -> float:
        """The pacing rate: cut to `decrease` of the rate that was refused, back to it
        within `recover_s`, then growing beyond it (doubling every `doubling_s`)."""
        since = now - self.refused_at[server]
        if since < self.recover_s:
            cut = self.decrease
            return self.rate[server] * (cut + (1.0 - cut) * since / self.recover_s)
        doubling_s = self.doubling_s * 2.0 ** self.ceiling_hits[server]
        doublings = min(MAX_DOUBLINGS, (since - self.recover_s) / doubling_s)
        return self.rate[server] * 2.0 ** doublings

    def _tokens(self, server: int, now: float) -> float:
        if now < self.blocked_until[server] or not self.flight.room(server):
            return 0.0
        announced = self.budgets.tokens(server, now)  # inf for one that never said
        if self.rate[server] == math.inf or not self.pace:
            return announced
        return min(announced, self._bucket(server, now))

    def _bucket(self, server: int, now: float) -> float:
        """Our copy of the learned bucket (the server refused at a known rate)."""
        elapsed = max(0.0, now - self.refilled_at[server])
        return min(1.0 + self.reserve, self.tokens[server] + self._rate(server, now) * elapsed)

    def _need(self, server: int, last_chance: bool) -> float:
        """Tokens an attempt needs: the reserve is kept for last chances, except at a
        server whose announced limit is no bigger than it (it could never be used)."""
        if last_chance or self.budgets.limit[server] <= 1.0 + self.reserve:
            return 1.0
        return 1.0 + self.reserve

    def ready(self, now: float, last_chance: bool) -> Sequence[int]:
        tokens, need = self._tokens, self._need
        return [s for s in range(self.n) if tokens(s, now) >= need(s, last_chance)]

    def chance(self, server: int, now: float) -> float:
        return min(1.0, self._tokens(server, now))

    def next_admit(self, server: int, now: float, last_chance: bool) -> float:
        start = max(now, self.blocked_until[server])
        flight = self.flight
        if not flight.room(server):  # at its concurrency cap: when the oldest is back
            start = max(start, flight.back_at(server, now),
                        now + max(MIN_WAIT_S, 0.25 * flight.latency[server]))
        budgets = self.budgets
        if budgets.told[server]:
            need = self._need(server, last_chance)
            at = budgets.ready_at(server, start, need)  # its refill, or its reset
            if at > start:
                start = at + ROUNDING_S
            if budgets.tokens(server, start) < need:
                if budgets.limit[server] < need:  # its announced limit never holds that
                    return math.inf
                # short only by attempts on their way: when the oldest is back
                start = max(start, flight.back_at(server, now), now + MIN_WAIT_S)
        rate = self._rate(server, start)
        if rate == math.inf or not self.pace:
            return max(start, now + MIN_WAIT_S) if start > now else now
        need = self._need(server, last_chance)
        have = min(1.0 + self.reserve,
                   self.tokens[server] + rate * max(0.0, start - self.refilled_at[server]))
        if have >= need:
            return start
        # the rate only grows from here on, so this is at worst a little late; the
        # rounding margin keeps the promise when it does not grow (a float a hair short)
        return max(start + (need - have) / rate + ROUNDING_S, now + MIN_WAIT_S)

    def probes(self, now: float) -> Sequence[int]:
        """Servers not backing off: a refusal within the free attempts costs nothing."""
        blocked = self.blocked_until
        return [s for s in range(self.n) if now >= blocked[s]]

    def sent(self, server: int, now: float) -> None:
        self.flight.sent(server, now)
        self._take(server, now, self._tokens)

    def sent_elsewhere(self, server: int, now: float) -> None:
        # not ours in flight (the concurrency cap is what this replica sends at once)
        self._take(server, now, self._bucket)

    def _take(self, server: int, now: float, level) -> None:
        """An attempt takes its token, from the announced budget and from our copy of
        the bucket, whose `level` it leaves one lower."""
        self.budgets.sent(server, now)
        if self.rate[server] != math.inf:
            self.tokens[server] = max(0.0, level(server, now) - 1.0)
            self.refilled_at[server] = now

    def observe(self, server: int, outcome: Outcome, now: float,
                retry_after_s: float | None, quota: Quota | None = None) -> None:
        crowded = self.flight.answered(server, now, outcome is RATE_LIMITED)
        self._learn(server, outcome, now, retry_after_s, quota, crowded)
        if crowded:
            # refused while others of ours were there: the cap now holds it, and its
            # rate is not what was refused (a concurrency limit, or a burst too big);
            # a Retry-After (whole seconds) is believed only until ours is back
            self.rate_limited[server] += 1
            if retry_after_s is not None and retry_after_s >= 0:
                back = self.flight.back_at(server, now)
                self.blocked_until[server] = max(self.blocked_until[server],
                                                 min(now + retry_after_s, back))

    def observe_elsewhere(self, server: int, outcome: Outcome, now: float,
                          retry_after_s: float | None, quota: Quota | None,
                          crowded: bool) -> None:
        # crowded: that replica's concurrency, not the server's rate
        self._learn(server, outcome, now, retry_after_s, quota, crowded)

    def _learn(self, server: int, outcome: Outcome, now: float, retry_after_s: float | None,
               quota: Quota | None, crowded: bool) -> None:
        """What an answer says of the server's budget and rate, ours or another
        replica's; a refusal `crowded` by attempts in flight says nothing of the rate."""
        if quota is not None and self.read_headers:
            self.budgets.heard(server, now, quota, self.max_retry_after_s)
        if crowded:
            return
        if outcome is RATE_LIMITED:
            self._refused(server, now, retry_after_s)
        elif outcome is CONN_ERROR:
            self._refused(server, now, None)
        else:
            self._admitted(server, now)

    def _admitted(self, server: int, now: float) -> None:
        self.streak[server] = 0
        stamps = self.admitted_at[server]
        stamps.append(now)
        while stamps and now - stamps[0] > self.rate_window_s:
            stamps.popleft()

    def _refused(self, server: int, now: float, retry_after_s: float | None) -> None:
        self.rate_limited[server] += 1
        self.streak[server] += 1
        if self.streak[server] == 1 or self.rate[server] == math.inf:
            # The refused rate is at most what the server really admitted lately:
            # the pacing allowance may have grown far past what was ever tried.
            stamps = self.admitted_at[server]
            admitted = sum(1 for t in stamps if now - t <= self.rate_window_s)
            rate = max(self.min_rate, min(self._rate(server, now),
                                          admitted / self.rate_window_s))
            # Refused again near the same rate: a fixed ceiling, so grow toward it more
            # slowly each time (moving limits are refused at other rates and keep the pace).
            last = self.rate[server]
            near = last != math.inf and last / CEILING_BAND <= rate <= last * CEILING_BAND
            self.ceiling_hits[server] = min(MAX_CEILING_HITS,
                                            self.ceiling_hits[server] + 1) if near else 0
            self.rate[server] = rate
            self.refused_at[server] = now
        self.tokens[server] = 0.0
        self.refilled_at[server] = now
        if retry_after_s is None or not retry_after_s >= 0:
            retry_after_s = min(self.backoff_max_s,
                                self.backoff_s * 2.0 ** (self.streak[server] - 1))
        elif retry_after_s > self.max_retry_after_s:
            self.retry_after_capped += 1
            retry_after_s = self.max_retry_after_s
        self.blocked_until[server] = now + retry_after_s

    def snapshot(self, now: float) -> dict:
        return {"rate": [None if r == math.inf else round(r, 3) for r in self.rate],
                "rate_limited": self.rate_limited,
                "blocked_until": [t if t > now else None for t in self.blocked_until],
                "retry_after_capped": self.retry_after_capped,
                **self.budgets.snapshot(now), **self.flight.snapshot()}
