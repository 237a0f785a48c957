"""The attempt loop: free attempts, penalty-aware stopping, cap, deadline, outcomes."""

from __future__ import annotations

import pytest

from banditlb.attempts import GAVE_UP, OK, UNAVAILABLE, RequestRoute, Rules, route, score
from banditlb.outcomes import Attempt, Outcome
from banditlb.strategies.base import Context, Policy


class Scripted(Policy):
    """Picks servers in a fixed cycle and claims a fixed success estimate."""

    def __init__(self, n_servers: int, p: float, usable: bool = True):
        super().__init__(n_servers)
        self.p, self.usable = p, usable
        self.seen: list[tuple[int, Outcome]] = []
        self.contexts: list[Context] = []
        self.ended: list[tuple[bool, int]] = []

    def select(self, ctx: Context) -> int | None:
        self.contexts.append(ctx)
        return ctx.attempt % self.n if self.usable else None

    def observe(self, server, outcome, now, latency_s, retry_after_s=None):
        self.seen.append((server, outcome))

    def estimate(self, server, now):
        return self.p

    def end_request(self, now, accepted, attempts):
        self.ended.append((accepted, attempts))


def run(policy: Policy, rules: Rules, outcomes: list[Outcome], step_s: float = 0.01):
    """Drive one id; the k-th attempt gets outcomes[k] (the last one repeats)."""
    state = RequestRoute(policy, rules, started_at=0.0)
    now = 0.0
    while (server := state.next_server(now)) is not None:
        outcome = outcomes[min(len(state.attempts), len(outcomes) - 1)]
        state.record(Attempt(server, outcome, now, step_s))
        now += step_s
    return state.result()


def test_stops_after_free_attempts_with_weight_one():
    policy = Scripted(5, p=0.9)
    result = run(policy, Rules(penalty_weight=1.0), [Outcome.FAILED])
    assert result.status == GAVE_UP
    assert len(result.attempts) == 3
    assert policy.ended == [(False, 3)]


def test_goes_on_with_weight_half_while_estimate_exceeds_it():
    result = run(Scripted(5, p=0.6), Rules(penalty_weight=0.5, max_attempts=10),
                 [Outcome.FAILED])
    assert len(result.attempts) == 10  # only the hard cap stops it
    result = run(Scripted(5, p=0.4), Rules(penalty_weight=0.5), [Outcome.FAILED])
    assert len(result.attempts) == 3


def test_accepted_ends_the_loop_and_reports_the_server():
    policy = Scripted(5, p=0.9)
    result = run(policy, Rules(), [Outcome.FAILED, Outcome.ACCEPTED])
    assert result.status == OK
    assert result.server == 1
    assert [s for s, _ in policy.seen] == [0, 1]
    assert policy.ended == [(True, 2)]


def test_context_carries_attempt_number_and_tried_servers():
    policy = Scripted(5, p=0.9)
    run(policy, Rules(), [Outcome.RATE_LIMITED])
    assert [(c.attempt, c.tried) for c in policy.contexts] == [
        (0, ()), (1, (0,)), (2, (0, 1)), (3, (0, 1, 2))]


def test_no_usable_server_is_unavailable_not_a_failure():
    result = run(Scripted(3, p=0.9, usable=False), Rules(), [Outcome.FAILED])
    assert result.status == UNAVAILABLE
    assert result.attempts == []


def test_deadline_stops_the_loop_and_shortens_the_timeout():
    rules = Rules(free_attempts=10, deadline_s=0.25, attempt_timeout_s=0.2)
    state = RequestRoute(Scripted(3, p=0.9), rules, started_at=0.0)
    assert state.timeout_for_next(0.0) == pytest.approx(0.2)
    assert state.timeout_for_next(0.15) == pytest.approx(0.1)
    result = run(Scripted(3, p=0.9), rules, [Outcome.TIMEOUT], step_s=0.1)
    assert result.status == GAVE_UP
    assert len(result.attempts) == 3  # started at 0.0, 0.1, 0.2; 0.3 is past the deadline


def test_score_counts_accepted_ids_minus_weighted_extra_attempts():
    rules = Rules(penalty_weight=0.5, free_attempts=3)
    results = [run(Scripted(5, p=0.9), Rules(penalty_weight=0.5, max_attempts=5),
                   [Outcome.FAILED] * 4 + [Outcome.ACCEPTED]),
               run(Scripted(5, p=0.9), rules, [Outcome.ACCEPTED])]
    assert [len(r.attempts) for r in results] == [5, 1]
    assert score(results, rules) == pytest.approx(2 - 0.5 * 2)


def test_rules_reject_nonsense():
    with pytest.raises(ValueError):
        Rules(free_attempts=-1)
    with pytest.raises(ValueError):
        Rules(penalty_weight=-0.1)
    with pytest.raises(ValueError):
        Rules(attempt_timeout_s=0)


async def test_async_route_drives_a_transport():
    sent = []

    async def send(server: int, timeout_s: float) -> Attempt:
        sent.append((server, timeout_s))
        outcome = Outcome.ACCEPTED if server == 2 else Outcome.CONN_ERROR
        return Attempt(server, outcome, 0.0, 0.001)

    ticks = iter(range(100))
    result = await route(Scripted(4, p=0.9), Rules(), send, lambda: float(next(ticks)) / 1000)
    assert result.status == OK and result.server == 2
    assert [s for s, _ in sent] == [0, 1, 2]


def test_a_timer_firing_a_hair_before_the_deadline_buys_no_extra_attempt():
    rules = Rules(free_attempts=10, deadline_s=0.3, attempt_timeout_s=30.0)
    state = RequestRoute(Scripted(3, p=0.9), rules, started_at=0.0)
    server = state.next_server(0.0)
    state.record(Attempt(server, Outcome.TIMEOUT, 0.0, 0.2996))  # woke 0.4 ms early
    assert state.next_server(0.2996) is None
    assert state.result().status == GAVE_UP and len(state.result().attempts) == 1
