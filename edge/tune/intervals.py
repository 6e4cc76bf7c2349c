"""Confidence intervals that stay where the quantity can be, from scipy's own methods.

A probability's interval is Clopper and Pearson's exact one (``binomtest(...).proportion_ci``):
inside [0, 1] at 0/n and n/n, where the normal one runs past the ends, and covering at least its
confidence at every n and p (Wilson's covers less at a handful of trials near 0 or 1, and a
schedule dropped on an interval is not given another chance). A mean of counts or times is skewed (a few bad
replications carry most of the errors), so its interval is the BCa bootstrap's
(``scipy.stats.bootstrap``), which stays inside the range of the data and so never below zero.
Below ``MIN_N`` replications, or when the bootstrap cannot form an interval, there is none: the
table says "too few replications" rather than print a number.

Every bootstrap draws from a generator seeded by the caller: the same replications give the same
bytes. ``more_for_*`` answer "about how many replications would put this interval on one side of
that line", for an answer that is not decided yet.
"""

from __future__ import annotations

import math
import warnings

import msgspec

MIN_N = 3
"""Fewer replications than this give a point estimate but no interval."""

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
    """Clopper and Pearson's interval of a probability."""
    if n == 0:
        return Estimate(None, None, None, 0)
    if n < MIN_N:
        return Estimate(rounded(successes / n), None, None, n)
    low, high = _exact(successes, n, confidence)
    return Estimate(rounded(successes / n), rounded(low), rounded(high), n)


def _exact(successes: int, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def mean(values: list[float], confidence: float, seed: int | tuple[int, ...]) -> Estimate:
    """The BCa bootstrap interval of a mean (``seed`` drives its resampling)."""
    import numpy as np
    from scipy.stats import bootstrap

    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0)
    m = rounded(math.fsum(values) / n)
    if n < MIN_N:
        return Estimate(m, None, None, n)
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
        low, high = _exact(round(p * m), m, confidence)
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
