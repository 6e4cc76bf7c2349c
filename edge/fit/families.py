"""Maximum-likelihood fits of the families edge simulates, to raw values or to binned counts.

Raw values (a log's request times, its response sizes) are fitted by their density; binned counts
(a Prometheus histogram's buckets, or a log whose values are rounded to its resolution, with some
logged as 0) by the probability of each bin, F(upper) - F(lower): interval censoring, every
observation known only to lie in its bin. Each family's parameters are fitted on a log scale where
they must be positive (so the optimiser cannot leave the domain), and their standard errors come
from the observed information: the inverse of the Hessian of the negative log-likelihood at the
maximum, taken by central differences, made robust by the sandwich H⁻¹ J H⁻¹ (J: the sum of the
outer products of each observation's score), and carried back to the natural parameters by the
delta method. Robust because the family is chosen as the best of four, not known to be the data's:
when it is the data's, J ≈ H and the sandwich is the observed information's figure; when it is not
(a Weibull fitted to lognormal times), the inverse information alone understates how much the
estimate would vary from one sample to the next, and the sandwich does not.

The families are chosen between by AIC (2k - 2 log L); the best is then tested against the data:
Kolmogorov-Smirnov for raw values, Pearson's chi-square for bins (adjacent bins pooled until each
expects at least 5). The parameters were fitted to the same data, so the KS p-value is optimistic
(Lilliefors): a family it rejects is certainly wrong. When the best is rejected (p < ``ALPHA``) no
family fits, and the empirical distribution (quantile knots) is chosen, with a warning.

Every fit carries its text in edge's language (``Fit.text``) and the distribution parsed from that
text (``Fit.distribution``), so what is written reads back to exactly what was reported.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from edge.platform.distributions import Z_99, Distribution, Empirical, Exponential, Gamma, LogNormal, Weibull, parse_distribution

ALPHA = 0.01
"""A family is rejected when its goodness-of-fit p-value is below this."""
FAMILIES = ("lognormal", "gamma", "weibull", "exponential")
MAX_KNOTS = 40
"""The most knots an empirical fit to raw values writes."""
MIN_VALUES = 10
"""Fewer values than this are not fitted: every family would pass, and the figures would mean nothing."""


class FitError(ValueError):
    """Data that cannot be fitted (too few values, all equal, no positive value)."""


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    value: float
    se: float
    """The robust standard error (the sandwich: see the module's docstring); nan when the
    information matrix is singular."""


@dataclasses.dataclass(frozen=True)
class Fit:
    family: str
    """lognormal, gamma, weibull, exponential or empirical."""
    parameters: tuple[Parameter, ...]
    """The family's own parameters (mu and sigma of log X; shape and scale; the mean), each ± its standard error."""
    n: int
    """Observations: values, or counts in the bins."""
    loglik: float
    aic: float
    test: str
    """"KS" (raw values) or "chi-square" (bins)."""
    statistic: float
    pvalue: float
    df: int | None
    """The chi-square's degrees of freedom (None for KS)."""
    text: str
    """In edge's language: ``lognormal(p50=2.1ms, p99=15ms)``."""
    distribution: Distribution
    """``parse_distribution(text)``: what a scenario with this text simulates."""
    cdf: Callable[[np.ndarray], np.ndarray] = dataclasses.field(repr=False, compare=False)
    """The fitted CDF at full precision (for the figures and the plots)."""
    pdf: Callable[[np.ndarray], np.ndarray] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def passes(self) -> bool:
        return not self.pvalue < ALPHA  # nan (too few bins to test) is not a rejection

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


@dataclasses.dataclass(frozen=True)
class Choice:
    """What was fitted to one quantity: every family by AIC, and the one chosen."""

    fits: tuple[Fit, ...]
    """The families, best AIC first."""
    chosen: Fit
    """The best by AIC, or the empirical fit when the best fails its test."""
    warning: str | None
    """Why the empirical distribution was chosen (None: a family fits)."""
    binned: bool
    """Fitted to bins (interval-censored) rather than to raw values."""


@dataclasses.dataclass(frozen=True)
class Bins:
    """Counts of observations in (lower[i], upper[i]]; ``upper[-1]`` may be inf (Prometheus' +Inf bucket)."""

    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray
    resolution: float | None = None
    """Set for a quantised log (``quantised``): the bins are the data's own, so the chi-square
    test is taken over bins of its own (``regrid``)."""

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def bins_from_buckets(edges: Sequence[float], cumulative: Sequence[float]) -> Bins:
    """Prometheus' cumulative ``le`` buckets (edges ascending, +Inf last) as counts per bin: the
    first bin is (0, edges[0]]. Counts may be fractional (``increase()`` extrapolates)."""
    upper = np.asarray(edges, dtype=float)
    totals = np.maximum.accumulate(np.maximum(np.asarray(cumulative, dtype=float), 0))  # a counter reset can make one dip
    counts = np.diff(totals, prepend=0.0)
    lower = np.concatenate([[0.0], upper[:-1]])
    return Bins(lower, upper, counts)


def quantised(values: np.ndarray) -> Bins | None:
    """Values logged to a resolution, some of them 0 (nginx's ``0.000``, an empty body) or most of
    them tied (milliseconds of 20 ms requests), as bins; None when every value is positive and most
    are distinct (they are fitted as they are).

    A density cannot be evaluated at 0 for lognormal, Weibull or gamma: the logged 0 means "below
    half the resolution", and interval censoring says exactly that. Each distinct value stands for
    the interval from halfway to the one below to halfway to the one above (0 for (0, r/2], r the
    least gap: the resolution), so the bins tile the range and the chi-square test counts every
    stretch of it."""
    unique, counts = np.unique(values, return_counts=True)
    if values.min() > 0 and len(unique) > len(values) / 2:
        return None
    gaps = np.diff(unique)
    resolution = float(gaps.min()) if len(gaps) else 1.0
    middles = (unique[:-1] + unique[1:]) / 2
    lower = np.concatenate([[0.0], middles])
    upper = np.concatenate([[resolution / 2] if len(unique) > 1 else [unique[0] + resolution / 2], middles[1:], [unique[-1] + resolution / 2]])
    if len(unique) > 1:
        lower[1] = resolution / 2
    return Bins(lower, upper, counts.astype(float), resolution)


def regrid(values: np.ndarray, resolution: float, cdf: Callable[[np.ndarray], np.ndarray],
           ppf: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins for the chi-square test of quantised values: about equally likely under the fit
    (2 n^0.4 of them, 5 to 100), their edges moved to the nearest half-step of the resolution so
    that no logged value sits on one."""
    m = int(min(max(2 * len(values) ** 0.4, 5), 100))
    with np.errstate(all="ignore"):
        inner = np.asarray(ppf(np.arange(1, m) / m), dtype=float)
    inner = inner[np.isfinite(inner)]
    edges = np.unique((np.floor(inner / resolution) + 0.5) * resolution)
    edges = edges[edges > 0]
    lower = np.concatenate([[0.0], edges])
    upper = np.concatenate([edges, [np.inf]])
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(lower)).astype(float)
    return lower, upper, counts


# --- the families -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Family:
    name: str
    names: tuple[str, ...]
    """The natural parameters, in order."""
    logged: tuple[bool, ...]
    """Which are fitted as their log (positive ones)."""
    frozen: Callable[[np.ndarray], Any]
    """Natural parameters -> scipy's frozen distribution."""
    start: Callable[[np.ndarray], np.ndarray]
    """Raw values (positive) -> natural parameters: the MLE, or a start for the optimiser."""
    text: Callable[[np.ndarray, str], Distribution]
    """Natural parameters -> edge's distribution (its ``str`` is the text written)."""
    exact: bool = False
    """``start`` is the raw-data MLE itself (no optimisation needed)."""


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def _lognormal_start(xs: np.ndarray) -> np.ndarray:
    logs = np.log(xs)
    return np.array([logs.mean(), max(logs.std(), 1e-9)])


def _gamma_start(xs: np.ndarray) -> np.ndarray:
    shape, _, scale = stats.gamma.fit(xs, floc=0)
    return np.array([shape, scale])


def _weibull_start(xs: np.ndarray) -> np.ndarray:
    shape, _, scale = stats.weibull_min.fit(xs, floc=0)
    return np.array([shape, scale])


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


_FAMILIES = {
    "lognormal": _Family(
        "lognormal", ("mu", "sigma"), (False, True),
        lambda p: stats.lognorm(p[1], scale=math.exp(p[0])),
        _lognormal_start,
        lambda p, unit: LogNormal.from_quantiles(math.exp(p[0]), math.exp(p[0] + Z_99 * p[1]), unit),
        exact=True,
    ),
    "gamma": _Family(
        "gamma", ("shape", "scale"), (True, True),
        lambda p: stats.gamma(p[0], scale=p[1]),
        _gamma_start,
        lambda p, unit: Gamma(p[0] * p[1], _clip(_sig(1 / math.sqrt(p[0])), 0.001, 1000), unit),
        exact=True,
    ),
    "weibull": _Family(
        "weibull", ("shape", "scale"), (True, True),
        lambda p: stats.weibull_min(p[0], scale=p[1]),
        _weibull_start,
        lambda p, unit: Weibull.from_shape(_clip(_sig(p[0]), 0.1, 100), p[1], unit),
        exact=True,
    ),
    "exponential": _Family(
        "exponential", ("mean",), (True,),
        lambda p: stats.expon(scale=p[0]),
        lambda xs: np.array([xs.mean()]),
        lambda p, unit: Exponential(p[0], unit),
        exact=True,
    ),
}


def _natural(family: _Family, phi: np.ndarray) -> np.ndarray:
    return np.array([math.exp(v) if logged else v for v, logged in zip(phi, family.logged)])


def _working(family: _Family, params: np.ndarray) -> np.ndarray:
    return np.array([math.log(v) if logged else v for v, logged in zip(params, family.logged)])


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central differences, steps relative to each coordinate."""
    k = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1.0)
    hessian = np.empty((k, k))
    f0 = f(x)
    for i in range(k):
        for j in range(i, k):
            if i == j:
                e = np.zeros(k)
                e[i] = h[i]
                hessian[i, i] = (f(x + e) - 2 * f0 + f(x - e)) / h[i] ** 2
            else:
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
                hessian[i, j] = hessian[j, i] = value
    return hessian


def _scores(logliks: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Each observation's (or bin's) score, the gradient of its log-likelihood, by central
    differences: one row per parameter."""
    h = 1e-5 * np.maximum(np.abs(x), 1.0)
    rows = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h[i]
        rows.append((logliks(x + e) - logliks(x - e)) / (2 * h[i]))
    return np.array(rows)


def _standard_errors(family: _Family, logliks: Callable[[np.ndarray], np.ndarray], phi: np.ndarray,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """The natural parameters' robust standard errors: the sandwich H⁻¹ J H⁻¹ in the working
    parameters (``logliks``: each observation's log-likelihood, or each bin's, counted ``weights``
    times), carried back by the delta method (d exp(phi) = exp(phi) d phi)."""
    counts = np.ones(1) if weights is None else weights

    def negloglik(x: np.ndarray) -> float:
        return -float(np.sum(counts * logliks(x)))

    scores = _scores(logliks, phi)
    try:
        bread = np.linalg.inv(_hessian(negloglik, phi))
        variances = np.diag(bread @ ((scores * counts) @ scores.T) @ bread)
    except np.linalg.LinAlgError:
        return np.full(len(phi), math.nan)
    ses = np.sqrt(np.where(variances > 0, variances, math.nan))
    natural = _natural(family, phi)
    return np.array([se * value if logged else se for se, value, logged in zip(ses, natural, family.logged)])


def _text_of(family: _Family, params: np.ndarray, unit: str) -> tuple[str, Distribution]:
    text = str(family.text(params, unit))
    return text, parse_distribution(text, unit=unit)


def fit_raw(values: Sequence[float] | np.ndarray, *, unit: str = "duration") -> Choice:
    """Every family fitted to ``values`` (all positive; see ``quantised`` for zeros), chosen by AIC."""
    xs = np.asarray(values, dtype=float)
    _check_enough(xs)
    if xs.min() == xs.max():
        raise FitError(f"expected values that vary, got {len(xs):,} equal to {xs[0]:g}: a constant")
    bins = quantised(xs)
    if bins is not None:
        return fit_binned(bins, unit=unit, empirical_values=xs)
    fits = []
    for family in _FAMILIES.values():
        params = family.start(xs)
        phi = _working(family, params)

        def logliks(phi: np.ndarray, family: _Family = family) -> np.ndarray:
            return np.asarray(family.frozen(_natural(family, phi)).logpdf(xs), dtype=float)

        loglik = float(np.sum(logliks(phi)))
        frozen = family.frozen(params)
        ks = stats.kstest(xs, frozen.cdf)
        text, distribution = _text_of(family, params, unit)
        ses = _standard_errors(family, logliks, phi)
        fits.append(Fit(
            family.name, tuple(Parameter(n, float(v), float(s)) for n, v, s in zip(family.names, params, ses)), len(xs),
            loglik, 2 * len(params) - 2 * loglik, "KS", float(ks.statistic), float(ks.pvalue), None, text, distribution,
            frozen.cdf, frozen.pdf,
        ))
    return _choose(fits, lambda: empirical_raw(xs, unit), binned=False)


def fit_binned(bins: Bins, *, unit: str = "duration", empirical_values: np.ndarray | None = None) -> Choice:
    """Every family fitted to counts in bins (interval-censored), chosen by AIC; the empirical
    fallback from ``empirical_values`` when given (a quantised log), else from the bins."""
    lower, upper, counts = bins.lower, bins.upper, bins.counts  # empty bins too: the chi-square counts what they lack
    n = float(counts.sum())
    if n < MIN_VALUES:
        raise FitError(f"expected at least {MIN_VALUES} observations to fit, got {n:g}")
    if np.count_nonzero(counts) < 2:
        where = int(np.argmax(counts))
        raise FitError(f"expected observations in at least two bins, got all {n:g} in ({lower[where]:g}, {upper[where]:g}]")
    # a start from the bins' midpoints (the +Inf bin's at twice its lower edge, the first's at half its upper)
    finite_upper = np.where(np.isfinite(upper), upper, 2 * lower)
    middles = np.where(lower > 0, np.sqrt(np.maximum(lower, 1e-300) * finite_upper), finite_upper / 2)
    pseudo = np.repeat(middles, np.round(counts / counts.sum() * 2000).astype(int) + (counts > 0))
    fits = []
    for family in _FAMILIES.values():
        try:
            start = family.start(pseudo)
        except (ValueError, RuntimeError, FloatingPointError):
            continue

        def logliks(phi: np.ndarray, family: _Family = family) -> np.ndarray:
            dist = family.frozen(_natural(family, phi))
            return np.asarray(np.log(np.maximum(dist.cdf(upper) - dist.cdf(lower), 1e-300)), dtype=float)

        def negloglik(phi: np.ndarray) -> float:
            return -float(np.sum(counts * logliks(phi)))

        with np.errstate(all="ignore"):
            result = optimize.minimize(negloglik, _working(family, start), method="Nelder-Mead",
                                       options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000})
            phi = result.x
            params = _natural(family, phi)
            ses = _standard_errors(family, logliks, phi, counts)
        loglik = -float(result.fun)
        frozen = family.frozen(params)
        if bins.resolution is not None and empirical_values is not None:
            statistic, pvalue, df = chi_square(*regrid(empirical_values, bins.resolution, frozen.cdf, frozen.ppf), frozen.cdf, len(params))
        else:
            statistic, pvalue, df = chi_square(lower, upper, counts, frozen.cdf, len(params))
        try:
            text, distribution = _text_of(family, params, unit)
        except ValueError:  # parameters outside what edge simulates (a shape of 0.01): not a candidate
            continue
        fits.append(Fit(
            family.name, tuple(Parameter(n_, float(v), float(s)) for n_, v, s in zip(family.names, params, ses)), int(round(n)),
            loglik, 2 * len(params) - 2 * loglik, "chi-square", statistic, pvalue, df, text, distribution, frozen.cdf, frozen.pdf,
        ))
    if empirical_values is not None:
        values = empirical_values
        if bins.resolution is not None:
            return _choose(fits, lambda: empirical_quantised(bins, values, unit), binned=True)
        return _choose(fits, lambda: empirical_raw(values, unit), binned=True)
    return _choose(fits, lambda: empirical_binned(bins, unit), binned=True)


def chi_square(lower: np.ndarray, upper: np.ndarray, counts: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray],
               k: int) -> tuple[float, float, int | None]:
    """Pearson's chi-square of counts in bins against a fitted CDF: adjacent bins pooled until each
    expects at least 5; the mass outside the bins joins the first and last. (statistic, p, df);
    p is nan when fewer than k + 2 pooled bins are left (nothing to test)."""
    n = counts.sum()
    probability = np.asarray(cdf(upper) - cdf(lower), dtype=float)
    probability[0] += float(cdf(np.array([lower[0]]))[0])
    probability[-1] += 1 - float(cdf(np.array([upper[-1]]))[0]) if np.isfinite(upper[-1]) else 0.0
    expected = n * probability
    pooled_o, pooled_e = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(counts, expected):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= 5:
            pooled_o.append(o_acc)
            pooled_e.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        if pooled_o:
            pooled_o[-1] += o_acc
            pooled_e[-1] += e_acc
        else:
            pooled_o, pooled_e = [o_acc], [e_acc]
    o_arr, e_arr = np.array(pooled_o), np.array(pooled_e)
    statistic = float(np.sum((o_arr - e_arr) ** 2 / np.maximum(e_arr, 1e-300)))
    df = len(o_arr) - 1 - k
    if df < 1:
        return statistic, math.nan, None
    return statistic, float(stats.chi2.sf(statistic, df)), df


def _choose(fits: list[Fit], empirical: Callable[[], Fit], *, binned: bool) -> Choice:
    fits.sort(key=lambda f: f.aic)
    fallback = empirical()
    if not fits:
        return Choice((fallback,), fallback, "no family could be fitted: the empirical distribution is written", binned)
    best = fits[0]
    if best.passes:
        return Choice(tuple(fits) + (fallback,), best, None, binned)
    warning = (f"no family fits (the best by AIC, {best.family}, fails its {best.test} test: "
               f"p = {best.pvalue:.2g} < {ALPHA}): the empirical distribution is written")
    return Choice(tuple(fits) + (fallback,), fallback, warning, binned)


def _check_enough(xs: np.ndarray) -> None:
    if len(xs) < MIN_VALUES:
        raise FitError(f"expected at least {MIN_VALUES} values to fit, got {len(xs)}")
    if not np.all(np.isfinite(xs)) or xs.min() < 0:
        raise FitError("expected finite non-negative values")


# --- the empirical distribution -------------------------------------------------------------

def _empirical_fit(percents: Sequence[float], values: Sequence[float], unit: str, n: int,
                   gof: tuple[str, float, float, int | None]) -> Fit:
    # built through the class, so each value is formatted as the unit formats it, then parsed back
    text = str(Empirical(tuple(float(p) for p in percents), tuple(float(v) for v in values), unit))
    distribution = parse_distribution(text, unit=unit)
    levels = np.asarray(percents, dtype=float) / 100
    knots = np.asarray(values, dtype=float)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(x, knots, levels, left=0.0, right=1.0))

    test, statistic, pvalue, df = gof
    return Fit("empirical", (), n, math.nan, math.nan, test, statistic, pvalue, df, text, distribution, cdf, None)


def _monotone(percents: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """Strictly increasing percents (rounded to 3 decimals), non-decreasing values, p0 and p100 kept."""
    kept_p: list[float] = []
    kept_v: list[float] = []
    for p, v in zip(percents, values):
        p = round(p, 3)
        if kept_p and p <= kept_p[-1]:
            if p == 100.0:  # p100 wins over a knot rounded onto it
                kept_p.pop()
                kept_v.pop()
            else:
                continue
        kept_p.append(p)
        kept_v.append(max(v, kept_v[-1]) if kept_v else v)
    return kept_p, kept_v


def empirical_raw(values: np.ndarray, unit: str) -> Fit:
    """``_knots``, tested by Kolmogorov-Smirnov."""
    xs = np.sort(np.asarray(values, dtype=float))
    fit = _knots(xs, unit)
    ks = stats.kstest(xs, fit.cdf)
    return dataclasses.replace(fit, statistic=float(ks.statistic), pvalue=float(ks.pvalue))


def _knots(xs: np.ndarray, unit: str) -> Fit:
    """Quantile knots chosen where they are needed: from p0, p1, p50, p99 (p99.9 from 1,000
    values on) and p100, the knot is added where the interpolated CDF strays furthest from the
    data's (``xs``, sorted), until it strays by less than half the KS test's 1% critical distance
    (or ``MAX_KNOTS`` knots): a bimodal sample gets its knots around the gap. Not yet tested."""
    n = len(xs)
    ecdf_low, ecdf_high = np.arange(n) / n, np.arange(1, n + 1) / n
    tolerance = 0.8 / math.sqrt(n)
    percents = sorted({0.0, 1.0, 50.0, 99.0, 100.0} | ({99.9} if n >= 1000 else set()))
    while True:
        p, v = _monotone(percents, [float(q) for q in np.quantile(xs, np.asarray(percents) / 100)])
        fit = _empirical_fit(p, v, unit, n, ("KS", math.nan, math.nan, None))
        cdf = fit.cdf(xs)
        gaps = np.maximum(np.abs(cdf - ecdf_low), np.abs(cdf - ecdf_high))
        worst = int(np.argmax(gaps))
        level = round(float(ecdf_high[worst]) * 100, 1)
        if gaps[worst] <= tolerance or len(percents) >= MAX_KNOTS or level in percents:
            break
        percents = sorted(set(percents) | {level})
    return fit


def empirical_quantised(bins: Bins, values: np.ndarray, unit: str) -> Fit:
    """A quantised log's empirical distribution (``quantised``: values logged to a resolution).

    Its knots are placed on the logged values spread evenly over the interval each stands for (the
    ``bins``): read as they are, tied values put each value's whole share at the value itself,
    half a resolution from where most of its requests fell, and leave the knot search nothing
    between ties to work with (milliseconds of a 2 ms service: 8 knots, 0s up to p5.4 and a mean 16%
    high). It is tested as the families are on such a log: chi-square over ``regrid``'s bins of
    the logged values, not Kolmogorov-Smirnov, which ties make meaningless."""
    counts = bins.counts.astype(int)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    share = (offsets + 0.5) / np.repeat(counts, counts)
    spread = np.repeat(bins.lower, counts) + np.repeat(bins.upper - bins.lower, counts) * share  # sorted, as the bins are
    fit = _knots(spread, unit)

    def ppf(q: np.ndarray) -> np.ndarray:  # the knots follow the spread values' quantiles (``empirical_raw``)
        return np.asarray(np.quantile(spread, q))

    assert bins.resolution is not None
    statistic, pvalue, df = chi_square(*regrid(values, bins.resolution, fit.cdf, ppf), fit.cdf, 0)
    return dataclasses.replace(fit, test="chi-square", statistic=statistic, pvalue=pvalue, df=df)


def empirical_binned(bins: Bins, unit: str) -> Fit:
    """Knots at the bins' edges, at the share of observations below each. Above the last finite
    edge nothing is known: when the +Inf bin holds observations, p100 is put at twice that edge."""
    n = bins.counts.sum()
    cumulative = np.cumsum(bins.counts) / n * 100
    percents, values = [0.0], [float(bins.lower[0]) if bins.counts[0] == 0 else 0.0]
    for edge, level in zip(bins.upper, cumulative):
        if not np.isfinite(edge):
            edge = 2 * float(bins.lower[-1])
        percents.append(min(float(level), 100.0))
        values.append(float(edge))
    percents[-1] = 100.0
    p, v = _monotone(percents, values)
    if len(p) < 2:
        p, v = [0.0, 100.0], [v[0], v[0]]
    fit = _empirical_fit(p, v, unit, int(round(n)), ("chi-square", math.nan, math.nan, None))
    statistic, pvalue, df = chi_square(bins.lower, bins.upper, bins.counts, fit.cdf, 0)
    return dataclasses.replace(fit, statistic=statistic, pvalue=pvalue, df=df)
