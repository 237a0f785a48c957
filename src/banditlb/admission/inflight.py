"""Attempts on their way to each upstream, and how many it takes at once.

Some upstreams limit concurrency, not rate (LLM APIs cap requests in flight): such a
server refuses the next attempt while `k` of ours are still being served, however
slowly we send. So every refusal that comes while others of ours are in flight at
that server caps what we send it at once to that number; an attempt admitted while
we are at the cap raises the cap a little (additive increase), so a server that
takes more is found again. Answer times are learned (an average) so a server at
its cap is expected to take the next attempt when its oldest one should be back.
"""

from __future__ import annotations

import math
from collections import deque

GROWTH = 0.2
"""Cap raised per attempt admitted at the cap: five such admits raise it by one."""
MAX_HITS = 4
LATENCY_WEIGHT = 0.2
"""Weight of the newest answer time in the average."""


class InFlight:
    __slots__ = ("count", "sent_at", "latency", "cap", "refused_at_cap", "hits")

    def __init__(self, n_servers: int):
        self.count = [0] * n_servers
        self.sent_at = [deque() for _ in range(n_servers)]
        self.latency = [0.0] * n_servers
        """Average answer time (seconds), 0 until an answer came."""
        self.cap = [math.inf] * n_servers
        """Attempts the server is believed to take at once; inf until it refuses one while
        others of ours were in flight."""
        self.refused_at_cap = [0] * n_servers
        self.hits = [0] * n_servers
        """Refusals in a row at the same number in flight: each halves the cap's growth."""

    def sent(self, server: int, now: float) -> None:
        self.count[server] += 1
        self.sent_at[server].append(now)

    def answered(self, server: int, now: float, refused: bool) -> bool:
        """One attempt is back (oldest first: close enough for an average); True when it
        was refused while others of ours were in flight there (concurrency explains it)."""
        if self.count[server] == 0:
            return False
        self.count[server] -= 1
        took = now - self.sent_at[server].popleft()
        if not refused:
            old = self.latency[server]
            self.latency[server] = took if old == 0.0 else \
                old + LATENCY_WEIGHT * (took - old)
        others = self.count[server]
        if refused and others >= 1:
            same = others == self.refused_at_cap[server]
            self.hits[server] = min(MAX_HITS, self.hits[server] + 1) if same else 0
            self.refused_at_cap[server] = others
            self.cap[server] = min(self.cap[server], float(others))
            return True
        if not refused and others + 1 >= self.cap[server] - 1.0:
            # it admitted one at (or near) the cap: perhaps it takes more
            self.cap[server] += GROWTH / 2.0 ** self.hits[server]
        return False

    def room(self, server: int) -> bool:
        """Whether one more attempt fits under the cap (inf until the first refusal)."""
        return self.count[server] + 1 <= self.cap[server]

    def back_at(self, server: int, now: float) -> float:
        """When the oldest attempt in flight at `server` is expected back."""
        sent = self.sent_at[server]
        if not sent:
            return now
        return max(now, sent[0] + self.latency[server])

    def snapshot(self) -> dict:
        return {"in_flight": list(self.count),
                "concurrency_cap": [None if c == math.inf else round(c, 2) for c in self.cap]}
