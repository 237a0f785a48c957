"""The challenge score recomputed from stored attempts, to check a run against the fleet."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from banditlb.rules import Rules


def score_attempts(attempts: Iterable[dict], penalty_weight: float = 1.0,
                   free_attempts: int = 3) -> dict:
    """ids accepted, penalized attempts and score from attempt rows (dicts from Store.attempts).

    The grader's rule (`Rules`): +1 per id accepted at least once, -penalty_weight per
    attempt beyond `free_attempts` on the same id.
    """
    rules = Rules(free_attempts=free_attempts, penalty_weight=penalty_weight)
    per_id: Counter[str] = Counter()
    accepted: set[str] = set()
    for attempt in attempts:
        per_id[attempt["request_id"]] += 1
        if attempt["outcome"] == "accepted":
            accepted.add(attempt["request_id"])
    penalized = sum(map(rules.penalized, per_id.values()))
    return {"ids_seen": len(per_id), "ids_accepted": len(accepted),
            "attempts": sum(per_id.values()), "penalized_attempts": penalized,
            "score": rules.score(len(accepted), penalized)}
