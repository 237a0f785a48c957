"""`auto`: quality and availability learned apart, retries to the best bet.

Why each part (the ablations are in docs/strategies.md):
- Quality is a Beta posterior over the whole history of admitted attempts
  (accepted vs failed; timeouts and refusals count as failures). A 429 says
  nothing about quality, so it never touches the posterior.
- Availability is learned separately, per server, as a token bucket we cannot
  see: the first 429 sets its rate to what the server admitted lately, every
  later 429 cuts it (multiplicative decrease) and empties our copy of the
  bucket, every admitted attempt raises it a little (additive increase). A
  server whose bucket copy is empty is left alone until it refills, so we pace
  each server near its real capacity instead of learning it by hitting 429s,
  and we stay out of penalty boxes that punish hammering. A Retry-After, when
  given, is believed.
- Drift: the quality posterior is reset to the recent window only when that
  window's success count is implausible under the long-run estimate (a z-test
  at `drift_z` standard deviations), so stationary fleets keep their history.
- Selection is Thompson sampling over quality among servers that should
  admit now, without the "skip what was tried" habit: attempts are independent
  draws, so the best server stays the best bet after one of its failures.
- Stopping: `estimate` is quality times the chance the server admits now, so
  past the free attempts the router goes on only when success is likely enough.
"""

from __future__ import annotations

import math
from collections import deque

from banditlb.outcomes import ACCEPTED, CONN_ERROR, RATE_LIMITED, Outcome
from banditlb.strategies.base import Context, Policy
from banditlb.strategies.posterior import BetaPosteriors

MAX_DOUBLINGS = 30.0
"""Regrowth stops here (a billion times the refused rate: unpaced in practice), so a
long quiet spell, or a clock that starts far from zero, cannot overflow the float."""


class Auto(Policy):
    name = "auto"
    alias = "auto"

    def __init__(self, n_servers: int, *, seed: int = 0, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0, decrease: float = 0.75, recover_s: float = 2.0,
                 doubling_s: float = 10.0,
                 rate_window_s: float = 5.0, min_rate: float = 0.05, backoff_s: float = 0.5,
                 backoff_max_s: float = 8.0, drift_window: int = 40,
                 drift_z: float = 4.0, reserve: float = 1.0, free_attempts: int = 3,
                 pace: bool = True, skip_tried: bool = False):
        super().__init__(n_servers, seed=seed)
        self.prior_alpha, self.prior_beta = prior_alpha, prior_beta
        self.decrease, self.recover_s, self.doubling_s = decrease, recover_s, doubling_s
        self.rate_window_s, self.min_rate = rate_window_s, min_rate
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.drift_window, self.drift_z = drift_window, drift_z
        self.reserve, self.free_attempts = reserve, free_attempts
        self.pace, self.skip_tried = pace, skip_tried
        """Switches for the ablations in docs/strategies.md (drift_z=inf turns drift off)."""
        self.posterior = BetaPosteriors(n_servers, seed, prior_alpha, prior_beta)
        self.recent = [deque(maxlen=drift_window) for _ in range(n_servers)]
        self.admitted_at = [deque() for _ in range(n_servers)]
        self.rate = [math.inf] * n_servers
        """Estimated refill rate (admits/s); inf until the server first refuses."""
        self.refused_at = [0.0] * n_servers
        self.tokens = [1.0] * n_servers
        self.refilled_at = [0.0] * n_servers
        self.blocked_until = [-math.inf] * n_servers
        self.rate_limited = [0] * n_servers
        self.streak = [0] * n_servers
        """Refusals in a row: a collapse or a penalty box, not a slower steady rate."""
        self.resets = [0] * n_servers

    def _rate(self, server: int, now: float) -> float:
        """The pacing rate: cut to `decrease` of the rate that was refused, back to it
        within `recover_s`, then growing beyond it (doubling every `doubling_s`) so
        capacity that comes back is found without waiting for luck."""
        since = now - self.refused_at[server]
        if since < self.recover_s:
            cut = self.decrease
            return self.rate[server] * (cut + (1.0 - cut) * since / self.recover_s)
        doublings = min(MAX_DOUBLINGS, (since - self.recover_s) / self.doubling_s)
        return self.rate[server] * 2.0 ** doublings

    def _tokens(self, server: int, now: float) -> float:
        if now < self.blocked_until[server]:
            return 0.0
        rate = self._rate(server, now)
        if rate == math.inf or not self.pace:
            return math.inf
        elapsed = max(0.0, now - self.refilled_at[server])
        return min(1.0 + self.reserve, self.tokens[server] + rate * elapsed)

    def _spend(self, server: int, now: float) -> None:
        self.tokens[server] = max(0.0, self._tokens(server, now) - 1.0)
        self.refilled_at[server] = now

    def select(self, ctx: Context) -> int | None:
        now = ctx.now
        if self.skip_tried:
            usable = self.untried_candidates(ctx)
        else:
            usable = [s for s in range(self.n) if s not in ctx.unavailable]
        if not usable:
            return None
        # Trunk reservation: a scarce server's last token is kept for an id's last
        # free attempt, where a success is worth the most (no second chance after it).
        need = 1.0 if ctx.attempt >= self.free_attempts - 1 else 1.0 + self.reserve
        ready = [s for s in usable if self._tokens(s, now) >= need]
        if not ready:
            # Nothing should admit yet: probe the likeliest server that is not
            # backing off (a refusal within the free attempts costs nothing).
            waiting = [s for s in usable if now >= self.blocked_until[s]]
            return max(waiting, key=lambda s: (self.estimate(s, now), self.posterior.mean(s)),
                       default=None)
        return self.posterior.best_of(ready)

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float,
                retry_after_s: float | None = None) -> None:
        if outcome is RATE_LIMITED:
            self._refused(server, now, retry_after_s)
            return
        if outcome is CONN_ERROR:
            self._refused(server, now, None)
        else:
            self._admitted(server, now)
        won = outcome is ACCEPTED
        self.posterior.add(server, won)
        self.recent[server].append(won)
        self._check_drift(server)

    def _admitted(self, server: int, now: float) -> None:
        self.streak[server] = 0
        stamps = self.admitted_at[server]
        stamps.append(now)
        while stamps and now - stamps[0] > self.rate_window_s:
            stamps.popleft()
        if self.rate[server] != math.inf:
            self._spend(server, now)

    def _refused(self, server: int, now: float, retry_after_s: float | None) -> None:
        self.rate_limited[server] += 1
        self.streak[server] += 1
        if self.streak[server] == 1 or self.rate[server] == math.inf:
            # The refused rate is at most what the server really admitted lately:
            # the pacing allowance may have grown far past what was ever tried.
            stamps = self.admitted_at[server]
            admitted = sum(1 for t in stamps if now - t <= self.rate_window_s)
            self.rate[server] = max(self.min_rate, min(self._rate(server, now),
                                                       admitted / self.rate_window_s))
            self.refused_at[server] = now
        self.tokens[server] = 0.0
        self.refilled_at[server] = now
        if retry_after_s is None:
            retry_after_s = min(self.backoff_max_s,
                                self.backoff_s * 2.0 ** (self.streak[server] - 1))
        self.blocked_until[server] = now + retry_after_s

    def _check_drift(self, server: int) -> None:
        window = self.recent[server]
        if len(window) < self.drift_window:
            return
        p = self.posterior.mean(server)
        n = len(window)
        wins = sum(window)
        if abs(wins - p * n) > self.drift_z * math.sqrt(max(p * (1 - p), 1e-6) * n):
            self.posterior.set(server, self.prior_alpha + wins, self.prior_beta + n - wins)
            window.clear()
            self.resets[server] += 1

    def estimate(self, server: int, now: float) -> float:
        return self.posterior.mean(server) * min(1.0, self._tokens(server, now))

    def snapshot(self, now: float) -> dict:
        return {
            "estimates": [round(self.estimate(s, now), 4) for s in range(self.n)],
            "quality": [round(self.posterior.mean(s), 4) for s in range(self.n)],
            "rate": [None if r == math.inf else round(r, 3) for r in self.rate],
            "rate_limited": self.rate_limited,
            "drift_resets": self.resets,
        }
