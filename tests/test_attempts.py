"""The attempt loop: free attempts, penalty-aware stopping, cap, deadline, outcomes, and
waiting for capacity (send / wait / stop)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from banditlb.admission import Admission, Mask, Open
from banditlb.attempts import (
    GAVE_UP,
    OK,
    STOP,
    UNAVAILABLE,
    AttemptLoop,
    Send,
    Wait,
    run_attempts,
)
from banditlb.outcomes import Attempt, Outcome
from banditlb.rules import Rules
from banditlb.strategies import Strategy, make_strategy
from banditlb.strategies.base import Chooser, Context


class Scripted(Chooser):
    """Picks servers in a fixed cycle among the ready ones and claims a fixed quality
    (one for all, or one per server)."""

    def __init__(self, n_servers: int, p: float | Sequence[float]):
        super().__init__(n_servers)
        self.p = p
        self.seen: list[tuple[int, Outcome]] = []
        self.contexts: list[Context] = []
        self.readies: list[list[int]] = []
        self.ended: list[tuple[bool, int]] = []

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        self.contexts.append(ctx)
        self.readies.append(list(ready))
        return ready[ctx.attempt % len(ready)]

    def observe(self, server, outcome, now, latency_s):
        self.seen.append((server, outcome))

    def quality(self, server, now):
        return self.p if isinstance(self.p, float) else self.p[server]

    def end_request(self, now, accepted, attempts):
        self.ended.append((accepted, attempts))


class Fixed(Admission):
    """Nothing is ready; each server has a fixed chance and admits at a fixed time."""

    def __init__(self, chances: Sequence[float], admits_at: float, probes=None):
        super().__init__(len(chances))
        self.chances, self.admits_at = list(chances), admits_at
        self.probe_list = list(range(len(chances))) if probes is None else probes
        self.sent_to: list[int] = []

    def ready(self, now, last_chance):
        return [] if now < self.admits_at else list(range(self.n))

    def chance(self, server, now):
        return 1.0 if now >= self.admits_at else self.chances[server]

    def next_admit(self, server, now, last_chance):
        return max(now, self.admits_at)

    def probes(self, now):
        return self.probe_list

    def sent(self, server, now):
        self.sent_to.append(server)


def scripted(n: int = 5, p: float | Sequence[float] = 0.9, admission: Admission | None = None,
             hold: bool = False) -> Strategy:
    return Strategy("scripted", "scripted", Scripted(n, p), admission or Open(n), hold, {})


def run(strategy: Strategy, rules: Rules, outcomes: list[Outcome], step_s: float = 0.01):
    """Drive one id; the k-th attempt gets outcomes[k] (the last one repeats). Waits jump
    the clock to the time named."""
    loop = AttemptLoop(strategy, rules, started_at=0.0)
    now = 0.0
    while (decision := loop.decide(now)) is not STOP:
        if type(decision) is Wait:
            now = decision.until
            continue
        outcome = outcomes[min(len(loop.attempts), len(outcomes) - 1)]
        loop.record(Attempt(decision.server, outcome, now, step_s))
        now += step_s
    return loop.result()


def test_stops_after_free_attempts_with_weight_one():
    strategy = scripted(p=0.9)
    result = run(strategy, Rules(penalty_weight=1.0), [Outcome.FAILED])
    assert result.status == GAVE_UP
    assert len(result.attempts) == 3
    assert strategy.chooser.ended == [(False, 3)]


def test_goes_on_with_weight_half_while_estimate_exceeds_it():
    result = run(scripted(p=0.6), Rules(penalty_weight=0.5, max_attempts=10), [Outcome.FAILED])
    assert len(result.attempts) == 10  # only the hard cap stops it
    result = run(scripted(p=0.4), Rules(penalty_weight=0.5), [Outcome.FAILED])
    assert len(result.attempts) == 3


def test_past_the_free_attempts_the_estimate_is_quality_times_the_chance_of_admission():
    class HalfOpen(Open):
        def chance(self, server, now):
            return 0.5

    # quality 0.9, but every server is expected to admit only half the time: 0.45 < 0.5
    result = run(scripted(p=0.9, admission=HalfOpen(5)), Rules(penalty_weight=0.5),
                 [Outcome.FAILED])
    assert len(result.attempts) == 3
    result = run(scripted(p=0.9, admission=HalfOpen(5)), Rules(penalty_weight=0.4),
                 [Outcome.FAILED])
    assert len(result.attempts) == 10  # 0.45 > 0.4: worth it up to the cap


def test_accepted_ends_the_loop_and_reports_the_server():
    strategy = scripted(p=0.9)
    result = run(strategy, Rules(), [Outcome.FAILED, Outcome.ACCEPTED])
    assert result.status == OK
    assert result.server == 1 and result.last.server == 1
    assert [s for s, _ in strategy.chooser.seen] == [0, 1]
    assert strategy.chooser.ended == [(True, 2)]


def test_context_carries_attempt_number_and_tried_servers():
    strategy = scripted(p=0.9)
    run(strategy, Rules(), [Outcome.RATE_LIMITED])
    assert [(c.attempt, c.tried) for c in strategy.chooser.contexts] == [
        (0, ()), (1, (0,)), (2, (0, 1)), (3, (0, 1, 2))]


def test_the_chooser_only_sees_the_servers_the_admission_rule_says_are_ready():
    mask = Mask(4, cooldown_s=5.0)
    mask.observe(1, Outcome.RATE_LIMITED, 0.0, None)
    mask.observe(3, Outcome.RATE_LIMITED, 0.0, None)
    strategy = scripted(4, admission=mask)
    run(strategy, Rules(), [Outcome.FAILED])
    # the 4th choice is made, then not sent: past the free attempts 0.9 is not > 1.0
    assert strategy.chooser.readies == [[0, 2]] * 4


def test_no_usable_server_is_unavailable_not_a_failure():
    nothing = Fixed([0.0] * 3, admits_at=float("inf"), probes=[])
    for hold in (False, True):
        strategy = scripted(3, admission=nothing, hold=hold)
        result = run(strategy, Rules(), [Outcome.FAILED])
        assert result.status == UNAVAILABLE
        assert result.attempts == [] and result.server is None and result.last is None
        assert strategy.chooser.ended == [(False, 0)]
    assert nothing.sent_to == []


def test_deadline_stops_the_loop_and_shortens_the_timeout():
    rules = Rules(free_attempts=10, deadline_s=0.25, attempt_timeout_s=0.2)
    loop = AttemptLoop(scripted(3), rules, started_at=0.0)
    assert loop.timeout_for_next(0.0) == pytest.approx(0.2)
    assert loop.timeout_for_next(0.15) == pytest.approx(0.1)
    assert loop.timeout_for_next(0.3) == 0.0
    result = run(scripted(3), rules, [Outcome.TIMEOUT], step_s=0.1)
    assert result.status == GAVE_UP
    assert len(result.attempts) == 3  # started at 0.0, 0.1, 0.2; 0.3 is past the deadline


def test_score_counts_accepted_ids_minus_weighted_extra_attempts():
    rules = Rules(penalty_weight=0.5, free_attempts=3)
    results = [run(scripted(), Rules(penalty_weight=0.5, max_attempts=5),
                   [Outcome.FAILED] * 4 + [Outcome.ACCEPTED]),
               run(scripted(), rules, [Outcome.ACCEPTED]),
               run(scripted(p=0.4), rules, [Outcome.FAILED])]
    assert [len(r.attempts) for r in results] == [5, 1, 3]
    accepted = sum(r.status == OK for r in results)
    penalized = sum(rules.penalized(len(r.attempts)) for r in results)
    assert (accepted, penalized) == (2, 2)
    assert rules.score(accepted, penalized) == pytest.approx(2 - 0.5 * 2)
    assert sum(rules.id_score(r.status == OK, len(r.attempts)) for r in results) == \
        pytest.approx(1.0)
    assert [rules.id_score(r.status == OK, len(r.attempts)) for r in results] == [0.0, 1.0, 0.0]


def test_rules_reject_nonsense():
    for bad in ({"free_attempts": -1}, {"penalty_weight": -0.1}, {"attempt_timeout_s": 0},
                {"max_attempts": 0}, {"deadline_s": 0}):
        with pytest.raises(ValueError):
            Rules(**bad)


async def test_run_attempts_drives_a_transport():
    sent = []

    async def send(server: int, timeout_s: float) -> Attempt:
        sent.append((server, timeout_s))
        outcome = Outcome.ACCEPTED if server == 2 else Outcome.CONN_ERROR
        return Attempt(server, outcome, 0.0, 0.001)

    async def never_waits(loop, until):
        raise AssertionError("an open strategy never waits")

    ticks = iter(range(100))
    loop = AttemptLoop(scripted(4), Rules(), 0.0)
    result = await run_attempts(loop, send, lambda: float(next(ticks)) / 1000, never_waits)
    assert result.status == OK and result.server == 2
    assert [s for s, _ in sent] == [0, 1, 2]
    assert all(timeout == 1.0 for _, timeout in sent)


def test_a_timer_firing_a_hair_before_the_deadline_buys_no_extra_attempt():
    rules = Rules(free_attempts=10, deadline_s=0.3, attempt_timeout_s=30.0)
    loop = AttemptLoop(scripted(3), rules, started_at=0.0)
    decision = loop.decide(0.0)
    loop.record(Attempt(decision.server, Outcome.TIMEOUT, 0.0, 0.2996))  # woke 0.4 ms early
    assert loop.decide(0.2996) is STOP
    assert loop.result().status == GAVE_UP and len(loop.result().attempts) == 1
    assert loop.decide(0.2996) is STOP  # a finished loop stays finished


# waiting for capacity ------------------------------------------------------------------

def all_masked(strategy: Strategy, at: float, servers: Sequence[int]) -> None:
    """A 429 from each server in `servers`, in that order, 0.1 s apart from `at`."""
    for k, server in enumerate(servers):
        strategy.observe(server, Outcome.RATE_LIMITED, at + 0.1 * k, 0.0003)


def test_a_holding_strategy_waits_for_the_earliest_admission_before_the_deadline():
    v6 = make_strategy("v6", 3, params={"hold": True, "cooldown_s": 1.0})
    all_masked(v6, 0.0, [1, 0, 2])  # released at 1.0, 1.1, 1.2
    loop = AttemptLoop(v6, Rules(deadline_s=5.0), started_at=0.3)
    assert loop.decide(0.3) == Wait(1.0)
    assert loop.decide(1.0) == Send(1)  # woken when server 1 is released
    assert loop.result().waited_s == pytest.approx(0.7)


def test_a_wait_is_never_past_the_deadline_and_the_loop_stops_at_it():
    auto = make_strategy("auto", 3)
    for server in range(3):  # 2 admits per second each, then refused until 11, 12 and 13
        for k in range(10):
            auto.observe(server, Outcome.ACCEPTED, 5.0 + 0.5 * k, 0.002)
        auto.observe(server, Outcome.RATE_LIMITED, 10.0, 0.0003, retry_after_s=1.0 + server)
    loop = AttemptLoop(auto, Rules(deadline_s=5.0, attempt_timeout_s=0.5), started_at=10.0)
    now, waits, sent = 10.0, [], []
    while (decision := loop.decide(now)) is not STOP:
        if type(decision) is Wait:
            assert now < decision.until < loop.deadline_at
            waits.append(decision.until)
            now = decision.until
        else:  # refused each time, told to come back long after the deadline
            sent.append(decision.server)
            loop.record(Attempt(decision.server, Outcome.RATE_LIMITED, now, 0.0003, 429,
                                retry_after_s=10.0))
            now += 0.0003
    assert len(waits) == 3 and waits[0] >= 11.0  # the Retry-After was believed
    assert sent == [0, 1, 2]
    assert now < loop.deadline_at  # it stopped rather than wait for capacity after it
    result = loop.result()
    assert result.status == GAVE_UP and result.retry_after_s is None
    assert result.waited_s == pytest.approx(waits[-1] - 10.0 - 2 * 0.0003)


def test_the_loop_stops_at_the_deadline_while_waiting():
    v6 = make_strategy("v6", 2, params={"hold": True, "cooldown_s": 1.0})
    all_masked(v6, 0.0, [0, 1])
    loop = AttemptLoop(v6, Rules(deadline_s=1.5), started_at=0.2)
    assert loop.decide(0.2) == Wait(1.0)
    assert loop.decide(1.7) is STOP  # woke (late) at the deadline: too late to send
    result = loop.result()
    assert result.status == UNAVAILABLE and result.attempts == []
    assert result.waited_s == pytest.approx(1.5)
    assert v6.chooser.requests == 1


def test_capacity_expected_after_the_deadline_is_not_waited_for():
    v6 = make_strategy("v6", 2, params={"hold": True, "cooldown_s": 10.0})
    all_masked(v6, 0.0, [0, 1])
    loop = AttemptLoop(v6, Rules(deadline_s=5.0), started_at=0.0)
    assert loop.decide(0.0) is STOP  # both masked, nothing with a chance: give up now
    assert loop.result().status == UNAVAILABLE and loop.result().waited_s == 0.0


def test_v6_does_not_hold_it_sends_to_the_server_released_soonest():
    v6 = make_strategy("v6", 3, params={"cooldown_s": 2.0})
    assert v6.hold is False
    all_masked(v6, 1.0, [1, 0, 2])  # released at 3.0, 3.1, 3.2
    loop = AttemptLoop(v6, Rules(deadline_s=5.0), started_at=2.5)
    assert loop.decide(2.5) == Send(1)  # the one limited longest ago, no wait
    v8 = make_strategy("v8", 3)
    all_masked(v8, 0.0, [2, 0, 1])
    assert AttemptLoop(v8, Rules(), 1.0).decide(1.0) == Send(2)


def test_a_holding_strategy_at_the_deadline_only_probes_a_server_with_a_chance():
    # nothing ready, capacity only after the deadline; server 2 might still admit now
    def loop_for(hold: bool, chances):
        admission = Fixed(chances, admits_at=100.0)
        strategy = scripted(3, p=(0.5, 0.9, 0.7), admission=admission, hold=hold)
        return AttemptLoop(strategy, Rules(deadline_s=5.0), 0.0), admission

    loop, admission = loop_for(True, [0.0, 0.0, 0.3])
    assert loop.decide(0.0) == Send(2)
    assert admission.sent_to == [2]
    loop, _ = loop_for(True, [0.0, 0.0, 0.0])
    assert loop.decide(0.0) is STOP and loop.result().status == UNAVAILABLE
    # a strategy that does not hold probes the best estimate, ties broken by quality
    loop, _ = loop_for(False, [0.0, 0.0, 0.0])
    assert loop.decide(0.0) == Send(1)


def test_turn_away_ends_the_id_unavailable_and_says_when_capacity_is_expected():
    v6 = make_strategy("v6", 2, params={"hold": True, "cooldown_s": 1.0})
    all_masked(v6, 0.0, [0, 1])
    loop = AttemptLoop(v6, Rules(deadline_s=5.0), started_at=0.25)
    decision = loop.decide(0.25)
    assert decision == Wait(1.0)
    loop.turn_away(0.25, decision.until)  # the waitlist is full
    result = loop.result()
    assert result.status == UNAVAILABLE and result.attempts == []
    assert result.retry_after_s == pytest.approx(0.75)
    assert loop.decide(0.3) is STOP


def test_turn_away_after_an_attempt_gave_up_and_the_refused_wait_is_not_counted():
    v6 = make_strategy("v6", 2, params={"hold": True, "cooldown_s": 1.0})
    v6.observe(1, Outcome.RATE_LIMITED, 0.0, 0.0003)
    loop = AttemptLoop(v6, Rules(deadline_s=5.0), started_at=0.0)
    assert loop.decide(0.0) == Send(0)
    loop.record(Attempt(0, Outcome.RATE_LIMITED, 0.0, 0.0003, 429))
    assert loop.decide(0.0003) == Wait(1.0)
    loop.turn_away(0.5, 1.0)
    result = loop.result()
    assert result.status == GAVE_UP and len(result.attempts) == 1
    assert result.retry_after_s == pytest.approx(0.5)
    assert result.waited_s == 0.0  # the wait it asked for was refused: it never waited


async def test_run_attempts_waits_through_its_hold_and_turns_away_when_it_says_no():
    clock = [0.0]

    async def send(server: int, timeout_s: float) -> Attempt:
        return Attempt(server, Outcome.ACCEPTED, clock[0], 0.002)

    async def hold_until(loop: AttemptLoop, until: float) -> bool:
        clock[0] = until
        return True

    async def no_room(loop: AttemptLoop, until: float) -> bool:
        return False

    v6 = make_strategy("v6", 2, params={"hold": True, "cooldown_s": 1.0})
    all_masked(v6, 0.0, [0, 1])
    result = await run_attempts(AttemptLoop(v6, Rules(deadline_s=5.0), 0.0), send,
                                lambda: clock[0], hold_until)
    assert result.status == OK and result.server == 0
    assert result.waited_s == pytest.approx(1.0)
    clock[0] = 1.05  # server 1 is masked until 1.1, server 0 is now free again ...
    v6.observe(0, Outcome.RATE_LIMITED, 1.05, 0.0003)  # ... and refused again
    result = await run_attempts(AttemptLoop(v6, Rules(deadline_s=5.0), 1.05), send,
                                lambda: clock[0], no_room)
    assert result.status == UNAVAILABLE and result.attempts == []
    assert result.retry_after_s == pytest.approx(0.05)
