"""``edge tune``'s intervals cover what they say: at every n it decides on, on skewed and discrete
samples like the tuner's, and under its own repeated looks (``edge.tune.intervals``)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from edge.tune import decide, tuner
from edge.tune.budget import Budget
from edge.tune.intervals import COUNT_MIN_N, bounded_mean, mean, proportion

LATEST = 1830.0  # the worked example's 30 minutes and drain


@functools.lru_cache(maxsize=None)
def _estimate(successes: int, n: int):
    return proportion(successes, n, 0.95)


def _first_decision(rng: np.random.Generator, p: float, line: float, at_least: bool, budget: int) -> str:
    """Run the tuner's own rule on Bernoulli outcomes: look after every round (sized as a
    one-schedule tune sizes them), stop at the first look that passes or fails the limit."""
    outcomes = rng.random(budget) < p
    n, more = 0, None
    while n < budget:
        n += tuner._round_size(Budget(replications=budget), n, 1, 0.0, [], more)
        n = min(n, budget)
        check = decide._proportion("limit", _estimate(int(outcomes[:n].sum()), n), line, 0.95, at_least=at_least)
        if check.status != "undecided":
            return check.status
        more = check.more
    return "undecided"


@pytest.mark.parametrize(("p", "at_least", "wrong"), [
    (0.95, True, "fails"),  # caught >= 95% holds at exactly 95%: "fails" is the wrong answer
    (0.94, True, "passes"),  # just under the limit: "passes" is
    (0.96, True, "fails"),  # just over
    (0.05, False, "fails"),  # false rollback <= 5% holds at exactly 5%
    (0.06, False, "passes"),
])
def test_looking_after_every_round_is_wrong_at_most_one_minus_confidence_of_the_time(p, at_least, wrong):
    # With an interval valid at one n, looking after every round said "fails" 7.0% of the time
    # at a true P(caught) of exactly 95% (4,000 runs). A confidence sequence holds at every look.
    rng = np.random.default_rng(25)
    line = 0.95 if at_least else 0.05
    decisions = [_first_decision(rng, p, line, at_least, 400) for _ in range(4000)]
    rate = decisions.count(wrong) / len(decisions)
    assert rate <= 0.05, rate


def _geometric_times(rng, n):
    return 60.0 * rng.geometric(0.6, n)  # time to rollback: a rollback at the k-th minute's analysis


def _rare_slow(rng, n):
    return np.where(rng.random(n) < 0.05, LATEST, 180.0)  # a rollout time: 180 s, now and then held to the end


def _two_values(rng, n):
    return np.where(rng.random(n) < 0.3, 240.0, 180.0)


@pytest.mark.parametrize("sample", [_geometric_times, _rare_slow, _two_values])
@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_a_bounded_mean_covers_at_least_its_confidence_at_small_n(sample, n):
    # BCa covered 54-92% here (time to rollback 75% at n = 3); a confidence sequence cannot undercover.
    rng = np.random.default_rng(n)
    truth = float(np.mean(sample(np.random.default_rng(0), 2_000_000)))
    covered = 0
    for _ in range(1000):
        e = bounded_mean(sample(rng, n).tolist(), 0.95, 60.0, LATEST)
        covered += e.low <= truth <= e.high
    assert covered / 1000 >= 0.95, (n, covered)


def _negative_binomial(rng, n):
    return rng.negative_binomial(0.5, 0.5 / 2.5, n)  # errors seen: mean 2, most runs 0, a few many


def _poisson_mixture(rng, n):
    return rng.poisson(rng.choice([0.5, 25.0], n, p=[0.9, 0.1]))  # a bad run now and then


@pytest.mark.parametrize(("sample", "truth"), [(_negative_binomial, 2.0), (_poisson_mixture, 0.9 * 0.5 + 0.1 * 25.0)])
def test_a_mean_of_counts_covers_its_confidence_from_count_min_n(sample, truth):
    # BCa on these covered 30-92% at 3-40 replications; from COUNT_MIN_N it covers 95%.
    rng = np.random.default_rng(80)
    covered = sum(
        (e := mean(sample(rng, COUNT_MIN_N).astype(float).tolist(), 0.95, k)).low <= truth <= e.high for k in range(300)
    )
    assert covered / 300 >= 0.95, covered
    assert mean([1.0] * (COUNT_MIN_N - 1), 0.95, 0).low is None


def test_probabilities_at_the_edges_need_the_replications_the_limits_take():
    # caught >= 95% with every bad canary caught: decided at 82, not at 81; 0 false rollbacks
    # likewise for <= 5%. One miss in 171 is enough, one in 170 is not.
    assert proportion(82, 82, 0.95).low > 0.95 > proportion(81, 81, 0.95).low
    assert proportion(0, 82, 0.95).high < 0.05 < proportion(0, 81, 0.95).high
    assert proportion(170, 171, 0.95).low > 0.95 > proportion(169, 170, 0.95).low
    assert math.isclose(proportion(5, 10, 0.95).low, 1 - proportion(5, 10, 0.95).high, abs_tol=1e-6)  # symmetric
