"""Confidence sequences and intervals that cover what they say, however often the tuner looks.

``edge tune`` looks at its estimates after every round and stops as soon as a limit is decided,
so an interval that covers 95% at one fixed n decides wrongly more often than 5% over the looks
(measured: 7.0% at a true P(caught) of exactly 95%). Its probabilities and bounded means are
therefore *confidence sequences*: intervals that hold at every n at once with the stated
confidence (Ville's inequality on a nonnegative martingale), so a decision taken at any look,
after any number of looks, is wrong at most 1 - confidence of the time. At a fixed n they are
intervals of at least that coverage too.

* A probability: a Beta(a, a) mixture of likelihood ratios (Robbins' method of mixtures,
  conjugate for Bernoulli outcomes): the p at which the mixture's evidence against p stays below
  1/alpha. Closed form (``scipy.special.betaln``), solved for its two ends with ``brentq``.
* A mean known to lie in [low, high] (a time within the run, a ratio): Waudby-Smith and Ramdas'
  betting confidence sequence (hedged capital with predictable plug-in bets), read off a grid
  of candidate means. It never has zero width: a sample of equal values bounds the mean only
  as far as that many replications can show.
* A mean of counts, which nothing bounds (errors seen, canary requests): no interval is valid at
  every n without a bound, so these keep the BCa bootstrap (seeded), and it is shown and decided
  on only from ``COUNT_MIN_N`` replications, where its coverage was measured at the nominal level
  on skewed and discrete samples like these (a negative binomial, a Poisson mixture; 68-91% at
  3-40 replications). Such a decision is at that coverage per look, not over the looks.

Below ``MIN_N`` replications there is no interval at all: the table says "too few replications".
``more_for_*`` answer "about how many replications would put this interval on one side of that
line", for an answer that is not decided yet.
"""

from __future__ import annotations

import functools
import math
import warnings

import msgspec

MIN_N = 3
"""Fewer replications than this give a point estimate but no interval."""
COUNT_MIN_N = 80
"""A mean of counts gets its (bootstrap) interval from this many replications: at 80, BCa
covered 96-97% of the time on the skewed samples of ``tests/test_intervals.py``, at 40 only 92%."""
_PRIOR = 0.1
"""The Beta(a, a) mixing prior of the probabilities' confidence sequence, its mass near 0 and 1
where limits such as caught >= 95% or false rollback <= 5% lie: all of 82 replications caught
decide caught >= 95% (Jeffreys' a = 0.5 takes 116; with a miss or two, a matters little)."""
_GRID = 2001
"""Candidate means the betting sequence is read off, across [low, high]."""

_FAR = 10**6
"""More replications than anyone would run: the search for a proportion's need stops here."""


class Estimate(msgspec.Struct):
    value: float | None
    """The point estimate; None without data."""
    low: float | None
    high: float | None
    """The confidence interval; None with too few replications to give one."""
    n: int
    """Replications it is estimated from."""

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None


def rounded(x: float) -> float:
    """Six significant digits: the JSON shows figures, not float noise."""
    return float(f"{x:.6g}")


def proportion(successes: int, n: int, confidence: float) -> Estimate:
    """The confidence sequence of a probability at ``successes`` of ``n``."""
    if n == 0:
        return Estimate(None, None, None, 0)
    if n < MIN_N:
        return Estimate(rounded(successes / n), None, None, n)
    low, high = _sequence(successes, n, confidence)
    return Estimate(rounded(successes / n), rounded(low), rounded(high), n)


@functools.lru_cache(maxsize=65536)  # the tuner asks again every round, and its searches ask many times
def _sequence(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """The ends of {p : the mixture's likelihood ratio against p < 1 / alpha}: an interval
    around successes / n, since its logarithm is convex in p."""
    from scipy.optimize import brentq
    from scipy.special import betaln

    threshold = math.log(1 / (1 - confidence))
    mixed = betaln(_PRIOR + successes, _PRIOR + n - successes) - betaln(_PRIOR, _PRIOR)

    def evidence(p: float) -> float:  # log of the mixture's likelihood ratio against p, minus the threshold
        hits = successes * math.log(p) if successes else 0.0
        misses = (n - successes) * math.log1p(-p) if successes < n else 0.0
        return mixed - hits - misses - threshold

    centre = successes / n
    low = 0.0 if successes == 0 else brentq(evidence, 1e-300, centre, xtol=1e-14)
    high = 1.0 if successes == n else brentq(evidence, centre, 1 - 1e-16, xtol=1e-14)
    return float(low), float(high)


def _without_interval(values: list[float], needs: int) -> Estimate | None:
    """The estimate of fewer values than an interval ``needs`` (none at all without values)."""
    if not values:
        return Estimate(None, None, None, 0)
    return Estimate(_average(values), None, None, len(values)) if len(values) < needs else None


def _average(values: list[float]) -> float:
    return rounded(math.fsum(values) / len(values))


def bounded_mean(values: list[float], confidence: float, low: float, high: float) -> Estimate:
    """The betting confidence sequence of a mean of values known to lie in [low, high]."""
    import numpy as np

    short = _without_interval(values, MIN_N)
    if short is not None:
        return short
    n, m = len(values), _average(values)
    span = high - low
    if span <= 0:
        return Estimate(m, low, low, n)
    x = np.clip((np.asarray(values, dtype=float) - low) / span, 0.0, 1.0)
    a, b = _betting(x, 1 - confidence)
    return Estimate(m, rounded(low + a * span), rounded(low + b * span), n)


def _betting(x, alpha: float) -> tuple[float, float]:
    """Waudby-Smith and Ramdas (2023), hedged capital with predictable plug-in bets: for each
    candidate mean c, a bettor wagering on x above c and one wagering below, each with a bet sized
    from the values before (so the wealth is a martingale when c is the mean); c is kept while half
    their joint wealth stays below 1 / alpha. Returns the kept range, widened by a grid step."""
    import numpy as np

    n = len(x)
    i = np.arange(1, n + 1)
    centre = (0.5 + np.cumsum(x)) / (i + 1)
    spread = (0.25 + np.cumsum((x - centre) ** 2)) / (i + 1)
    before = np.concatenate(([0.25], spread[:-1]))  # predictable: the spread of the values before each
    bet = np.sqrt(2 * math.log(2 / alpha) / (before * i * np.log(i + 1)))
    grid = np.linspace(0.0, 1.0, _GRID)
    c = grid[None, :]
    up = np.minimum(bet[:, None], 0.5 / np.maximum(c, 1e-12))
    down = np.minimum(bet[:, None], 0.5 / np.maximum(1 - c, 1e-12))
    wealth = np.logaddexp(np.log1p(up * (x[:, None] - c)).sum(axis=0), np.log1p(-down * (x[:, None] - c)).sum(axis=0)) - math.log(2)
    kept = np.flatnonzero(wealth < math.log(1 / alpha))
    if not len(kept):  # every candidate rejected (rare: bets that won wherever they stood): say nothing
        return 0.0, 1.0
    return float(grid[max(kept[0] - 1, 0)]), float(grid[min(kept[-1] + 1, _GRID - 1)])


def mean(values: list[float], confidence: float, seed: int | tuple[int, ...]) -> Estimate:
    """The BCa bootstrap interval of a mean of counts (``seed`` drives its resampling), from
    ``COUNT_MIN_N`` replications."""
    import numpy as np
    from scipy.stats import bootstrap

    short = _without_interval(values, COUNT_MIN_N)
    if short is not None:
        return short
    n, m = len(values), _average(values)
    if min(values) == max(values):
        # Every resample has the same mean: the percentile bootstrap's interval is that point, and
        # BCa's acceleration is 0/0 (scipy warns and answers NaN).
        return Estimate(m, m, m, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resampling is answered below, not warned about
        ci = bootstrap((np.asarray(values, dtype=float),), np.mean, confidence_level=confidence, method="BCa",
                       n_resamples=2000, rng=np.random.default_rng(seed)).confidence_interval
    low, high = float(ci.low), float(ci.high)
    if math.isnan(low) or math.isnan(high):
        return Estimate(m, None, None, n)
    return Estimate(m, rounded(low), rounded(high), n)


def more_for_proportion(successes: int, n: int, confidence: float, limit: float, above: bool) -> int | None:
    """About how many more trials would put the interval wholly above ``limit`` (or wholly
    below it, ``above=False``), if the observed proportion held: None when it never would (the
    estimate is on the limit or on its wrong side)."""
    p = successes / n if n else 0.0
    if (above and p <= limit) or (not above and p >= limit):
        return None

    def decided(m: int) -> bool:
        low, high = _sequence(round(p * m), m, confidence)
        return low > limit if above else high < limit

    lo, hi = n, max(n, MIN_N)
    while not decided(hi):
        lo, hi = hi, hi * 2
        if hi > _FAR:
            return None
    while hi - lo > 1:  # the bound moves with m nearly monotonically: bisection finds the edge
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decided(mid) else (mid, hi)
    return max(hi - n, 1)


def more_for_gap(n: int, half_width: float, gap: float) -> int | None:
    """About how many more replications would shrink an interval of ``half_width`` (from ``n``
    replications) below ``gap``, as widths shrink like 1/sqrt(n): None when the gap is zero."""
    if gap <= 0 or n == 0:
        return None
    needed = math.ceil(n * (half_width / gap) ** 2)
    return max(needed - n, 1)
