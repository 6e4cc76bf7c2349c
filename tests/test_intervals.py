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


# -- pinned by mutation testing (docs/mutation.md) -------------------------------------------------
from edge.tune.intervals import MIN_N, Estimate, more_for_gap, more_for_proportion, rounded  # noqa: E402

TIMES = [180.0, 240.0, 180.0, 1830.0, 180.0, 240.0, 180.0, 180.0]  # rollout times, one held to the end


def test_the_figures_tune_reports_for_a_sample_are_pinned():
    """A tune report is the same for the same seed, figures included: a change to how an interval
    is computed (the betting sequence's bets, its grid, the mixture's prior) changes every report,
    so it must show here and be made on purpose. Values outside the bounds are clipped to them."""
    assert bounded_mean(TIMES, 0.95, 60.0, LATEST) == Estimate(401.25, 60.0, 1234.39, 8)
    assert bounded_mean(TIMES, 0.8, 60.0, LATEST) == Estimate(401.25, 105.135, 1040.58, 8)
    assert bounded_mean([50.0, 2000.0, 180.0], 0.95, 60.0, LATEST) == Estimate(743.333, 60.0, LATEST, 3)
    # a value past either bound is judged as the bound (the point estimate is still the values' mean)
    assert bounded_mean([200.0] * 6 + [5000.0], 0.95, 60.0, LATEST) == Estimate(885.714, 60.0, 1313.16, 7)
    assert bounded_mean([1000.0] * 6 + [0.0, -3000.0], 0.95, 60.0, LATEST) == Estimate(375.0, 326.385, 1360.95, 8)
    assert proportion(39, 40, 0.95) == Estimate(0.975, 0.805768, 0.999957, 40)
    assert proportion(2, 3, 0.95) == Estimate(0.666667, 0.0328179, 0.998956, 3)


@pytest.mark.parametrize("n, interval", [(0, False), (MIN_N - 1, False), (MIN_N, True)], ids=["none", "one short", "exactly MIN_N"])
def test_a_probability_and_a_bounded_mean_get_an_interval_from_min_n(n, interval):
    successes = n // 2 + (n % 2)
    p = proportion(successes, n, 0.95)
    m = bounded_mean([100.0 * (k + 1) for k in range(n)], 0.95, 60.0, LATEST)
    assert (p.n, m.n) == (n, n) and p.bounded is interval and m.bounded is interval
    assert p.value == (None if n == 0 else rounded(successes / n))
    assert m.value == (None if n == 0 else 100.0 * (n + 1) / 2)


def test_a_mean_of_counts_gets_an_interval_from_count_min_n():
    assert mean([1.0, 2.0] * 39 + [1.0], 0.95, 0) == Estimate(rounded(118 / 79), None, None, COUNT_MIN_N - 1)
    assert mean([], 0.95, 0) == Estimate(None, None, None, 0)
    assert mean([3.0] * COUNT_MIN_N, 0.95, 0) == Estimate(3.0, 3.0, 3.0, COUNT_MIN_N)  # every resample the same


def test_a_mean_of_counts_whose_bootstrap_degenerates_gets_no_interval_rather_than_nan():
    """Values that differ by less than their sum's rounding: every resample and every jackknife
    mean is the same float, so BCa's acceleration is 0/0 and scipy answers NaN. The estimate
    keeps its value and says there is no interval (the table's "too few replications"), never
    NaN bounds, which compare false with every limit and would decide nothing silently."""
    values = [1.0] * (COUNT_MIN_N - 1) + [1.0000000000000002]
    assert min(values) != max(values)
    assert mean(values, 0.95, 0) == Estimate(1.0, None, None, COUNT_MIN_N)


def test_a_mean_of_counts_is_scipys_bca_interval_from_2000_resamples_drawn_by_its_seed():
    """The documented resampling: scipy's BCa bootstrap, 2000 resamples from numpy's generator
    seeded with ``seed``. The reference is computed here with the installed scipy, so the test
    pins the call, not scipy's Monte Carlo digits (2001 or 9999 resamples move a bound here)."""
    from scipy.stats import bootstrap

    values = [float((i * 7) % 11) for i in range(COUNT_MIN_N)]
    seed = (7, 1)
    ci = bootstrap((np.asarray(values),), np.mean, confidence_level=0.95, method="BCa", n_resamples=2000,
                   rng=np.random.default_rng(seed)).confidence_interval
    estimate = mean(values, 0.95, seed)
    assert (estimate.low, estimate.high) == (rounded(float(ci.low)), rounded(float(ci.high)))
    assert estimate.value == rounded(sum(values) / COUNT_MIN_N) and estimate.n == COUNT_MIN_N


def test_a_bounded_mean_that_rejects_every_candidate_spans_the_whole_range():
    """A sample whose mean moved mid-way (22 values at the middle of the span, then 86 at its top):
    the bettors win against every candidate mean, so none is kept. The interval is then the whole
    span, as with no evidence, not an empty or inverted one."""
    values = [15.0] * 22 + [20.0] * 86
    assert bounded_mean(values, 0.95, 10.0, 20.0) == Estimate(rounded(sum(values) / len(values)), 10.0, 20.0, len(values))


def _counts() -> list[float]:
    return np.random.default_rng(3).negative_binomial(0.5, 0.2, COUNT_MIN_N).astype(float).tolist()


def test_a_mean_of_counts_is_the_same_for_a_seed_and_narrower_at_a_lower_confidence():
    counts = _counts()
    at95 = mean(counts, 0.95, 7)
    assert at95 == mean(counts, 0.95, 7) and (at95.value, at95.n) == (rounded(sum(counts) / COUNT_MIN_N), COUNT_MIN_N)
    assert at95 != mean(counts, 0.95, 8)  # the seed drives the resampling
    at90 = mean(counts, 0.90, 7)
    assert at95.low < at90.low < at90.high < at95.high


def test_a_bounded_mean_over_a_span_of_one_or_none():
    assert bounded_mean([0.0, 1.0, 1.0, 0.0], 0.95, 0.0, 1.0) == Estimate(0.5, 0.0, 1.0, 4)  # a span of exactly 1 is a span
    assert bounded_mean([5.0, 5.0, 5.0], 0.95, 5.0, 5.0) == Estimate(5.0, 5.0, 5.0, 3)  # no span: the bound itself


@pytest.mark.parametrize("n, half, gap, more", [
    (80, 4.0, 2.0, 240), (80, 1.0, 2.0, 1),  # already narrow enough: one more at least
    (1, 1.0, 0.5, 3), (80, 1.0, 0.0, None), (0, 1.0, 0.5, None),
], ids=["wider", "narrower", "one replication", "no gap", "no replications"])
def test_the_replications_a_gap_needs(n, half, gap, more):
    """Widths shrink like 1/sqrt(n): from n, a half-width h under a gap g takes n (h/g)^2 in all."""
    assert more_for_gap(n, half, gap) == more


def test_more_for_a_proportion_is_the_least_count_that_decides_it():
    for successes, n, limit, above in ((39, 40, 0.9, True), (1, 40, 0.1, False), (81, 81, 0.95, True)):
        more = more_for_proportion(successes, n, 0.95, limit, above)
        p = successes / n

        def decided(m: int) -> bool:
            e = proportion(round(p * m), m, 0.95)
            return e.low > limit if above else e.high < limit

        assert decided(n + more) and not decided(n + more - 1), (successes, n, more)
    assert more_for_proportion(81, 81, 0.95, 0.95, True) == 1  # all of 82 caught decide caught >= 95%


@pytest.mark.parametrize("successes, n, limit, above, more", [
    (20, 40, 0.5, True, None), (20, 40, 0.5, False, None),  # exactly on the limit: never
    (21, 40, 0.5, False, None), (19, 40, 0.5, True, None),  # on the wrong side
    (0, 0, 0.5, True, None),  # no trials: the estimate 0 is below the limit
])
def test_more_for_a_proportion_on_or_past_its_limit_is_none(successes, n, limit, above, more):
    assert more_for_proportion(successes, n, 0.95, limit, above) is more
