"""The scoring rules and the limits of one id's attempts: the one place they are written.

The simulator, the balancer's counters, the store and the dashboard all score
through `Rules`, so "+1 per accepted id, -penalty_weight per attempt beyond the
free ones" cannot drift apart between them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rules:
    """+1 per accepted id, -penalty_weight per attempt beyond `free_attempts`; and the
    router's limits: at most `max_attempts`, a deadline per id (which also bounds how
    long an id may wait for capacity), a timeout per attempt."""

    free_attempts: int = 3
    penalty_weight: float = 1.0
    max_attempts: int = 10
    deadline_s: float | None = None
    attempt_timeout_s: float = 1.0

    def __post_init__(self):
        if self.free_attempts < 0 or self.max_attempts < 1:
            raise ValueError("free_attempts must be >= 0 and max_attempts >= 1")
        if self.penalty_weight < 0:
            raise ValueError("penalty_weight must be >= 0")
        if self.attempt_timeout_s <= 0 or (self.deadline_s is not None and self.deadline_s <= 0):
            raise ValueError("timeouts must be positive")

    def penalized(self, attempts: int) -> int:
        """Attempts of one id that cost a penalty."""
        free = self.free_attempts
        return attempts - free if attempts > free else 0

    def score(self, accepted: int, penalized: int) -> float:
        """The grader's score for `accepted` ids and `penalized` attempts in all."""
        return accepted - self.penalty_weight * penalized

    def id_score(self, accepted: bool, attempts: int) -> float:
        """One id's contribution to the score."""
        return accepted - self.penalty_weight * self.penalized(attempts)
