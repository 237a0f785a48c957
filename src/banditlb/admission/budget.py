"""What each upstream said it has left: the budget its rate-limit headers announce.

An answer that carries a quota (X-RateLimit-*, the IETF RateLimit fields, an LLM
API's x-ratelimit-*-requests) says how many requests the upstream still admits
and when that count is back to its limit. That is better evidence than anything
learned from 429s, so it bounds what we send: `remaining` (less the attempts
already on their way), regained evenly until the reset, then the limit. Even
regain is what a token bucket, GCRA and (roughly) a sliding log do; waiting for
the whole reset instead cost 1-2 points on those (docs/strategies.md). A fixed
window, or a quota others spend too, gives back less than that: the refusal it
answers is what `Pacing`'s learned bucket, which bounds this one, learns from.
Values are capped (a reset at most `max_reset_s` away), and an answer without a
quota changes nothing.
"""

from __future__ import annotations

import math

from banditlb.quota import Quota


class Budgets:
    __slots__ = ("left", "heard_at", "refill", "until", "limit", "in_flight", "told")

    def __init__(self, n_servers: int, in_flight: list[int]):
        self.left = [math.inf] * n_servers
        """Attempts the upstream admitted, as of `heard_at`, before `until` (what it said,
        less what we sent since)."""
        self.heard_at = [-math.inf] * n_servers
        self.refill = [0.0] * n_servers
        """Admits per second it regains if it refills evenly up to its limit at `until`
        (a token bucket, GCRA; a sliding log roughly)."""
        self.until = [-math.inf] * n_servers
        self.limit = [math.inf] * n_servers
        """Its announced limit, the budget after `until`; inf when it never said."""
        self.in_flight = in_flight
        """Attempts on their way, per server (shared with the caller, who counts them)."""
        self.told = [False] * n_servers
        """Whether the upstream ever announced a budget (then it, not our guess, paces it)."""

    def heard(self, server: int, now: float, quota: Quota, max_reset_s: float) -> bool:
        """Believe an answer's quota; False when it holds too little to act on."""
        remaining, reset_s = quota.remaining, quota.reset_s
        if remaining is None or reset_s is None:
            return False
        self.told[server] = True
        self.left[server] = remaining - self.in_flight[server]
        self.heard_at[server] = now
        reset_s = min(reset_s, max_reset_s)
        self.until[server] = now + reset_s
        if quota.limit is not None:
            self.limit[server] = quota.limit
        gap = self.limit[server] - remaining
        self.refill[server] = gap / reset_s if reset_s > 0 and 0 < gap < math.inf else 0.0
        return True

    def tokens(self, server: int, now: float) -> float:
        """Attempts it is expected to admit now; inf for an upstream that never said."""
        if now < self.until[server]:
            gained = self.refill[server] * (now - self.heard_at[server])
            return min(self.left[server] + gained, self.limit[server] - self.in_flight[server])
        return self.limit[server] - self.in_flight[server]

    def ready_at(self, server: int, start: float, need: float) -> float:
        """The first time from `start` on when it holds `need` (by its refill or at its
        reset); what attempts in flight still hold back is the caller's to wait for."""
        if start >= self.until[server] or self.tokens(server, start) >= need:
            return start
        refill = self.refill[server]
        if refill > 0:
            at = self.heard_at[server] + (need - self.left[server]) / refill
            if at < self.until[server]:
                return max(start, at)
        return self.until[server]

    def sent(self, server: int, now: float) -> None:
        if now < self.until[server]:
            self.left[server] -= 1

    def snapshot(self, now: float) -> dict:
        left = (self.tokens(s, now) if told else math.inf for s, told in enumerate(self.told))
        return {"budget_left": [None if b == math.inf else round(b, 3) for b in left],
                "budget_reset_at": [u if u > now else None for u in self.until],
                "budget_refill": [round(r, 3) for r in self.refill]}
