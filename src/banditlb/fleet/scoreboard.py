"""Ground-truth scoring of whatever load balancer sits in front of the fleet.

The grader's rule: +1 for every id accepted at least once, -w for every attempt
beyond the first `free` on the same id (429s count). Per-id attempt counts are
kept for `ttl_s` after an id was last seen, then forgotten; the aggregate
histogram of attempts per id is kept forever, so scores for any `free` and `w`
stay exact while memory stays bounded (about 250 bytes per live id, measured by
bench/fleet_throughput.py).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

OUTCOME_KEYS = ("accepted", "failed", "rate_limited")


@dataclass(slots=True)
class _IdRecord:
    attempts: int = 0
    accepted: bool = False
    last_seen: float = 0.0


@dataclass
class Scoreboard:
    ttl_s: float = 600.0
    ids_accepted: int = 0
    ids_expired: int = 0
    attempts: int = 0
    outcomes: Counter = field(default_factory=Counter)
    per_server: dict[int, Counter] = field(default_factory=dict)
    attempts_per_id: Counter = field(default_factory=Counter)
    _live: OrderedDict[str, _IdRecord] = field(default_factory=OrderedDict)

    def record(self, request_id: str, server: int, status: int, now: float) -> None:
        """Count one attempt that reached a server and got `status` (200, 429, or a failure)."""
        self._expire(now)
        rec = self._live.pop(request_id, None) or _IdRecord()
        if rec.attempts:
            self.attempts_per_id[rec.attempts] -= 1
        rec.attempts += 1
        rec.last_seen = now
        self.attempts_per_id[rec.attempts] += 1
        self._live[request_id] = rec
        outcome = "accepted" if 200 <= status < 300 else "rate_limited" if status == 429 \
            else "failed"
        if outcome == "accepted" and not rec.accepted:
            rec.accepted = True
            self.ids_accepted += 1
        self.attempts += 1
        self.outcomes[outcome] += 1
        counts = self.per_server.get(server)
        if counts is None:
            counts = self.per_server[server] = Counter()
        counts[outcome] += 1

    def _expire(self, now: float) -> None:
        live = self._live
        while live:
            oldest = next(iter(live.values()))
            if now - oldest.last_seen < self.ttl_s:
                break
            live.popitem(last=False)
            self.ids_expired += 1

    @property
    def ids_seen(self) -> int:
        return sum(n for n in self.attempts_per_id.values())

    def penalized_attempts(self, free_attempts: int = 3) -> int:
        return sum(n * (k - free_attempts) for k, n in self.attempts_per_id.items()
                   if k > free_attempts)

    def score(self, penalty_weight: float = 1.0, free_attempts: int = 3) -> float:
        return self.ids_accepted - penalty_weight * self.penalized_attempts(free_attempts)

    def summary(self, penalty_weight: float = 1.0, free_attempts: int = 3) -> dict:
        return {
            "ids_seen": self.ids_seen,
            "ids_accepted": self.ids_accepted,
            "attempts": self.attempts,
            "rate_limited": self.outcomes["rate_limited"],
            "failed": self.outcomes["failed"],
            "penalized_attempts": self.penalized_attempts(free_attempts),
            "score": self.score(penalty_weight, free_attempts),
            "penalty_weight": penalty_weight,
            "free_attempts": free_attempts,
            "per_server": {str(port): {k: c[k] for k in OUTCOME_KEYS}
                           for port, c in sorted(self.per_server.items())},
        }

    def id_record(self, request_id: str, now: float) -> dict | None:
        """What is remembered of one id ({"attempts", "accepted"}), None if unseen or expired."""
        rec = self._live.get(request_id)
        if rec is None or now - rec.last_seen >= self.ttl_s:
            return None
        return {"attempts": rec.attempts, "accepted": rec.accepted}
