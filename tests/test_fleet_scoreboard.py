"""The scoreboard against scores computed by hand for scripted attempts."""

from __future__ import annotations

import pytest

from banditlb.fleet.scoreboard import Scoreboard

SCRIPT = [  # (id, port, status, now)
    ("A" * 24, 4000, 200, 0.0),
    ("B" * 24, 4001, 500, 1.0), ("B" * 24, 4002, 500, 1.1), ("B" * 24, 4003, 429, 1.2),
    ("B" * 24, 4003, 200, 1.3), ("B" * 24, 4003, 500, 1.4),
    ("C" * 24, 4001, 429, 2.0), ("C" * 24, 4001, 429, 2.1), ("C" * 24, 4001, 429, 2.2),
    ("C" * 24, 4001, 429, 2.3),
    ("D" * 24, 4000, 503, 3.0),
]


def scripted(ttl_s: float = 600.0) -> Scoreboard:
    board = Scoreboard(ttl_s=ttl_s)
    for request_id, port, status, now in SCRIPT:
        board.record(request_id, port, status, now)
    return board


@pytest.mark.parametrize(("penalty_weight", "free_attempts", "penalized", "score"), [
    (1.0, 3, 2 + 1, 2 - 3),          # B: 5 attempts -> 2 beyond 3; C: 4 -> 1
    (0.5, 3, 3, 2 - 1.5),
    (0.5, 2, 3 + 2, 2 - 2.5),        # B: 3 beyond 2; C: 2
    (1.0, 0, 11, 2 - 11),            # every attempt costs
    (0.0, 1, 4 + 3, 2),
])
def test_score_matches_hand_computation(penalty_weight, free_attempts, penalized, score):
    summary = scripted().summary(penalty_weight, free_attempts)
    assert summary["penalized_attempts"] == penalized
    assert summary["score"] == pytest.approx(score)
    assert summary["ids_seen"] == 4
    assert summary["ids_accepted"] == 2
    assert summary["attempts"] == 11
    assert summary["rate_limited"] == 5
    assert summary["failed"] == 4
    assert summary["per_server"]["4001"] == {"accepted": 0, "failed": 1, "rate_limited": 4}
    assert summary["per_server"]["4003"] == {"accepted": 1, "failed": 1, "rate_limited": 1}


def test_expired_ids_are_forgotten_but_still_counted():
    board = scripted(ttl_s=10.0)
    assert board.id_record("B" * 24, 5.0) == {"attempts": 5, "accepted": True}
    assert board.id_record("B" * 24, 11.4) is None  # 10 s after its last attempt
    assert board.id_record("Z" * 24, 5.0) is None
    board.record("A" * 24, 4000, 200, 20.0)  # A expired: it comes back as a new id
    assert board.ids_expired == 4
    assert board.ids_seen == 5
    assert board.ids_accepted == 3
    assert board.score(1.0, 3) == 3 - 3  # the histogram of expired ids is kept
    assert board.id_record("A" * 24, 20.0) == {"attempts": 1, "accepted": True}


def test_an_id_seen_again_within_the_ttl_keeps_its_count():
    board = Scoreboard(ttl_s=10.0)
    for t in (0.0, 8.0, 16.0, 24.0):  # each attempt within 10 s of the previous one
        board.record("E" * 24, 4000, 500, t)
    assert board.id_record("E" * 24, 24.0) == {"attempts": 4, "accepted": False}
    assert board.penalized_attempts(3) == 1
    assert board.ids_expired == 0
