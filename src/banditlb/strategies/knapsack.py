"""v9 `balanced-exploration` and v10 `primal-dual`, after Badanidiyuru, Kleinberg
and Slivkins, "Bandits with Knapsacks" (FOCS 2013; J. ACM 2018).

Our reading of the paper for this problem:
- A round is one attempt, an arm is a server. Reward: the attempt is accepted.
  Resources, each with a budget: attempts (every attempt consumes one; an id's
  budget is its free attempts, spending beyond it is what the score penalizes)
  and capacity (a 429 consumes a unit of a server's rate limit and buys nothing).
- Estimates use the paper's confidence radius rad(v, N) = sqrt(C v / N) + C / N
  with C = confidence * ln(2 + t), t the attempts observed so far (the paper's
  C_rad = Theta(log(n T d))): upper bounds for rewards, lower bounds for costs.
- v9 ranks servers by the paper's optimistic "bang per buck", UCB(reward) /
  LCB(cost), cost = 1 attempt + capacity_weight * P(429). The paper's
  BalancedExploration solves an LP over the whole confidence region each
  round, far too slow for a request path; what we keep is its balance between
  exploring and spending: the radius is weighted by the share of the id's
  attempt budget still left, so an id's first attempt explores fully and
  attempts at or past `budget` use the plain estimates.
- v10 is the Lagrangian (primal-dual) side of the paper: maximize
  UCB(reward) - lambda * LCB(P(429)), where the price lambda of capacity is
  updated multiplicatively after every attempt toward a target consumption
  rate (lambda *= exp(eta * (consumed - target_rate))): it rises while 429s
  come faster than the target and decays when capacity is plentiful.
- Both try every server once first (an empty confidence interval is infinite).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from banditlb.outcomes import RATE_LIMITED, Outcome
from banditlb.strategies.base import Context
from banditlb.strategies.counts import CountingChooser


class KnapsackChooser(CountingChooser):
    """Shared counts and confidence bounds; subclasses define `scores`."""

    def __init__(self, n_servers: int, *, seed: int, confidence: float):
        super().__init__(n_servers, seed=seed)
        if confidence < 0:
            raise ValueError("confidence must be >= 0")
        self.confidence = confidence

    def bounds(self, servers: Sequence[int], weight: float,
               c_rad: float) -> tuple[list[float], list[float]]:
        """Per server (all tried): UCB of the acceptance rate and LCB of the 429 rate,
        with the paper's radius rad(v, N) = sqrt(C v / N) + C / N times `weight`.
        One loop for all servers: a decision needs every server's bounds."""
        successes, failures, limited = self.tally.successes, self.tally.failures, \
            self.tally.rate_limited
        sqrt = math.sqrt
        reward_ucb, cost_lcb = [], []
        for s in servers:
            wins = successes[s]
            n = wins + failures[s]
            reward = wins / n
            spread = c_rad / n
            high = reward + weight * (sqrt(c_rad * reward / n) + spread)
            reward_ucb.append(high if high < 1.0 else 1.0)
            if limited[s]:
                cost = limited[s] / n
                low = cost - weight * (sqrt(c_rad * cost / n) + spread)
                cost_lcb.append(low if low > 0.0 else 0.0)
            else:  # no 429 yet: the bound is 0 - weight * radius, clipped to 0
                cost_lcb.append(0.0)
        return reward_ucb, cost_lcb

    def choose(self, ready: Sequence[int], ctx: Context) -> int:
        usable = ready
        successes, failures = self.tally.successes, self.tally.failures
        for s in usable:
            if successes[s] + failures[s] == 0:
                return s
        c_rad = self.confidence * math.log(2 + self.tally.total)
        values = self.scores(usable, ctx, c_rad)
        return usable[values.index(max(values))]  # the first best, as max(key=...) would

    def scores(self, servers: Sequence[int], ctx: Context, c_rad: float) -> list[float]:
        """How good each server looks for this attempt, given the radius constant C."""
        raise NotImplementedError

class BalancedExploration(KnapsackChooser):
    """v9: UCB(reward) / LCB(cost), exploration weighted by the id's budget left."""

    def __init__(self, n_servers: int, *, seed: int = 0, budget: float = 3.0,
                 capacity_weight: float = 1.0, confidence: float = 1.0):
        super().__init__(n_servers, seed=seed, confidence=confidence)
        if budget <= 0 or capacity_weight < 0:
            raise ValueError("budget must be > 0 and capacity_weight >= 0")
        self.budget, self.capacity_weight = budget, capacity_weight

    def scores(self, servers: Sequence[int], ctx: Context, c_rad: float) -> list[float]:
        left = max(0.0, self.budget - ctx.attempt) / self.budget
        weight = self.capacity_weight
        reward_ucb, cost_lcb = self.bounds(servers, left, c_rad)
        return [r / (1.0 + weight * c) for r, c in zip(reward_ucb, cost_lcb, strict=True)]


class PrimalDual(KnapsackChooser):
    """v10: UCB(reward) - lambda * LCB(429 rate), lambda priced multiplicatively."""

    def __init__(self, n_servers: int, *, seed: int = 0, target_rate: float = 0.05,
                 learning_rate: float = 0.1, lambda_init: float = 1.0,
                 lambda_min: float = 0.001, lambda_max: float = 100.0,
                 confidence: float = 1.0):
        super().__init__(n_servers, seed=seed, confidence=confidence)
        if not 0 <= target_rate <= 1:
            raise ValueError("target_rate must be within [0, 1]")
        if not 0 < lambda_min <= lambda_init <= lambda_max:
            raise ValueError("need 0 < lambda_min <= lambda_init <= lambda_max")
        if learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        self.target_rate, self.learning_rate = target_rate, learning_rate
        self.lambda_init, self.lambda_min, self.lambda_max = lambda_init, lambda_min, lambda_max
        self.price = lambda_init

    def scores(self, servers: Sequence[int], ctx: Context, c_rad: float) -> list[float]:
        price = self.price
        reward_ucb, cost_lcb = self.bounds(servers, 1.0, c_rad)
        return [r - price * c for r, c in zip(reward_ucb, cost_lcb, strict=True)]

    def observe(self, server: int, outcome: Outcome, now: float, latency_s: float) -> None:
        super().observe(server, outcome, now, latency_s)
        consumed = 1.0 if outcome is RATE_LIMITED else 0.0
        step = math.exp(self.learning_rate * (consumed - self.target_rate))
        self.price = min(self.lambda_max, max(self.lambda_min, self.price * step))

    def snapshot(self, now: float) -> dict:
        return {**super().snapshot(now), "lambda": self.price}
