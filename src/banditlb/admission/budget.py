"""What each upstream said it has left: the budget its rate-limit headers announce.

An answer that carries a quota (X-RateLimit-*, the IETF RateLimit fields, an LLM
API's x-ratelimit-*-requests) says how many requests the upstream still admits
and when that count is back to its limit. That is better evidence than anything
learned from 429s, so an upstream that announces its budget is paced to it: at
most `remaining` attempts (less those already on their way) until the reset,
then the announced limit. Values are capped (a reset at most `max_reset_s`
away), and an answer without a quota changes nothing.
"""

from __future__ import annotations

import math

from banditlb.quota import Quota


class Budgets:
    __slots__ = ("left", "until", "limit", "in_flight", "told")

    def __init__(self, n_servers: int, in_flight: list[int]):
        self.left = [math.inf] * n_servers
        """Attempts the upstream still admits before `until` (what it said, less what we
        sent since)."""
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
        self.until[server] = now + min(reset_s, max_reset_s)
        if quota.limit is not None:
            self.limit[server] = quota.limit
        return True

    def tokens(self, server: int, now: float) -> float:
        """Attempts it is expected to admit now; inf for an upstream that never said."""
        if now < self.until[server]:
            return self.left[server]
        return self.limit[server] - self.in_flight[server]

    def sent(self, server: int, now: float) -> None:
        if now < self.until[server]:
            self.left[server] -= 1

    def snapshot(self, now: float) -> dict:
        left = (self.tokens(s, now) if told else math.inf for s, told in enumerate(self.told))
        return {"budget_left": [None if b == math.inf else b for b in left],
                "budget_reset_at": [u if u > now else None for u in self.until]}
