"""Random distributions written as text in scenarios: ``exp(500us)``, ``lognormal(p50=2ms, p99=15ms)``.

A model worker draws its CPU time, latency and response size from these for every request, so
``sample`` is on the simulator's hottest path: each one is a single expression (or a short loop)
over the caller's ``random.Random``, with parameters precomputed at parse time. Runs are
reproducible because every draw comes from the stream passed in; a distribution holds no state.
(Normal and lognormal draws use ``rng.gauss``, which keeps every second deviate in the rng for the
next call; that spare is part of ``rng.getstate()``, so reproducibility holds.)

Parameters are measured values a user has at hand (a mean, a median and a p99, a minimum and a
tail index) rather than textbook parameters, and ``str()`` gives a canonical form in the same
terms for reports. Every sample is non-negative: these are durations, sizes and counts.

The text is read by a small recursive-descent parser (no eval): a distribution is a bare value
or ``NAME(ARGS)``; ARGS are values, positional or ``key=value``, except for ``mix`` whose
arguments are ``WEIGHT: DISTRIBUTION`` pairs and so may nest, and ``empirical`` whose keys are its
knots' percents (``p0=``, ``p99.9=``, ``p100=``).
"""

from __future__ import annotations

import abc
import bisect
import dataclasses
import math
import random
import re
from collections.abc import Callable
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.platform.units import format_duration, format_size, parse_duration, parse_ratio, parse_size, shown

Z_99 = 2.3263478740408408
"""The standard normal 0.99-quantile: how many sigmas p99 lies above p50 on a log scale."""

NAMES = ("const", "exp", "uniform", "normal", "lognormal", "pareto", "gamma", "weibull", "empirical", "mix")
_STANDARD_NORMAL = NormalDist()
_MAX_DEPTH = 8
"""How deeply ``mix`` may nest: deep enough for any real model, shallow enough for the stack."""


def _parse_number(value: str | int | float) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a non-negative number, got {shown(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float range
        raise ValueError(f"expected a non-negative number, got {shown(value)}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a non-negative number, got {shown(value)}")
    return number


def _format_number(number: float) -> str:
    """Shortest exact form, without the ".0" that ``repr`` gives whole floats."""
    text = repr(float(number))
    return text.removesuffix(".0")


_UNITS: dict[str, tuple[Callable[[Any], float], Callable[[float], str]]] = {
    "duration": (parse_duration, format_duration),
    "size": (parse_size, lambda size: format_size(round(size))),
    "number": (_parse_number, _format_number),
}


def _check_q(q: float) -> None:
    if not 0 <= q <= 1:
        raise ValueError(f"expected a quantile between 0 and 1, got {q!r}")


class Distribution(abc.ABC):
    """An immutable, stateless description of a random quantity; draws come from the rng passed in."""

    __slots__ = ()

    @abc.abstractmethod
    def sample(self, rng: random.Random) -> float:
        """One draw, using only ``rng`` (the caller's stream decides reproducibility)."""

    @abc.abstractmethod
    def survival(self, x: float) -> float:
        """P(draw > x): how likely a draw passes ``x`` (a CPU budget, a drain), for the batched
        engine's bound on how often requests could meet."""

    @abc.abstractmethod
    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws from numpy's ``gen``: the same distribution as ``sample``, for
        the batched engine (``edge.engine.batched``), which draws a stretch of requests at once."""

    if TYPE_CHECKING:
        @property
        def mean(self) -> float:
            """The exact mean, from the parameters (what a queueing model or a test checks against).

            Declared for the type checker only, not an abstract property: a dataclass field of that
            name would take the property object as its default."""

    def quantile(self, q: float) -> float:
        """The q-quantile, for distributions whose inverse CDF has a closed form."""
        raise NotImplementedError(f"{self} has no closed-form quantile")

    @abc.abstractmethod
    def __str__(self) -> str:
        """The canonical text: ``parse_distribution(str(d))`` describes the same distribution."""

    @abc.abstractmethod
    def scaled(self, factor: float) -> Distribution:
        """The distribution of ``factor`` times a draw, in the same family (so it samples as fast
        and ``str()`` still reads back): a canary "x3" slower than its model (``edge tune``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Const(Distribution):
    """Always ``value``. Consumes no random numbers, so adding or removing a constant does not
    shift the draws of anything else sharing the stream."""

    value: float
    unit: str = "duration"

    def sample(self, rng: random.Random) -> float:
        return self.value

    def survival(self, x: float) -> float:
        return 1.0 if self.value > x else 0.0

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    @property
    def mean(self) -> float:
        return self.value

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.value

    def __str__(self) -> str:
        return _UNITS[self.unit][1](self.value)

    def scaled(self, factor: float) -> Distribution:
        return Const(self.value * factor, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Exponential(Distribution):
    """Memoryless service or think times; one ``rng.random()`` per draw."""

    mean: float
    unit: str = "duration"

    def sample(self, rng: random.Random) -> float:
        # Inlined ``rng.expovariate(1 / mean)``: one call less on the hottest path.
        return -math.log(1.0 - rng.random()) * self.mean

    def survival(self, x: float) -> float:
        return 1.0 if x < 0 else math.exp(-x / self.mean) if self.mean > 0 else 0.0

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return gen.exponential(self.mean, n)

    def quantile(self, q: float) -> float:
        _check_q(q)
        return math.inf if q == 1 else -math.log1p(-q) * self.mean

    def __str__(self) -> str:
        return f"exp({_UNITS[self.unit][1](self.mean)})"

    def scaled(self, factor: float) -> Distribution:
        return Exponential(self.mean * factor, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Uniform(Distribution):
    low: float
    high: float
    unit: str = "duration"

    def sample(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    def survival(self, x: float) -> float:
        if self.high <= self.low:
            return 1.0 if self.low > x else 0.0
        return min(1.0, max(0.0, (self.high - x) / (self.high - self.low)))

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return self.low + (self.high - self.low) * gen.random(n)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.low + (self.high - self.low) * q

    def __str__(self) -> str:
        fmt = _UNITS[self.unit][1]
        return f"uniform({fmt(self.low)}, {fmt(self.high)})"

    def scaled(self, factor: float) -> Distribution:
        return Uniform(self.low * factor, self.high * factor, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Normal(Distribution):
    """A normal with mean ``mu`` and deviation ``sd``, truncated at 0 by resampling.

    Resampling rather than clamping, because clamping piles the negative tail onto exactly 0 (a
    spike of zero-time requests no real service shows). Since ``mu >= 0``, at least half of the
    draws are accepted, so a sample takes at most two tries on average. ``mean`` and ``quantile``
    are those of the truncated distribution, which is what ``sample`` produces.
    """

    mu: float
    sd: float
    unit: str = "duration"

    def sample(self, rng: random.Random) -> float:
        while True:
            x = rng.gauss(self.mu, self.sd)
            if x >= 0:
                return x

    def survival(self, x: float) -> float:
        if x < 0:
            return 1.0
        kept = 1 - _STANDARD_NORMAL.cdf(-self.mu / self.sd)  # the mass truncation keeps
        return (1 - _STANDARD_NORMAL.cdf((x - self.mu) / self.sd)) / kept

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        values = gen.normal(self.mu, self.sd, n)
        negative = np.flatnonzero(values < 0)
        while len(negative):  # resampled, as ``sample`` does: truncated, not clamped
            values[negative] = gen.normal(self.mu, self.sd, len(negative))
            negative = negative[values[negative] < 0]
        return values

    @property
    def mean(self) -> float:
        a = self.mu / self.sd
        return self.mu + self.sd * _STANDARD_NORMAL.pdf(a) / _STANDARD_NORMAL.cdf(a)

    def quantile(self, q: float) -> float:
        _check_q(q)
        if q in (0, 1):
            return 0.0 if q == 0 else math.inf
        below = _STANDARD_NORMAL.cdf(-self.mu / self.sd)  # the mass truncation removes
        p = below + q * (1 - below)
        return math.inf if p >= 1 else max(0.0, self.mu + self.sd * _STANDARD_NORMAL.inv_cdf(p))

    def __str__(self) -> str:
        fmt = _UNITS[self.unit][1]
        return f"normal(mean={fmt(self.mu)}, sd={fmt(self.sd)})"

    def scaled(self, factor: float) -> Distribution:
        return Normal(self.mu * factor, self.sd * factor, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class LogNormal(Distribution):
    """``exp(N(mu, sigma))``: latency with a long right tail, fitted from p50/p99 or mean/sd.

    ``given`` is the pair the scenario gave, kept for ``str()``: reports then show the figures the
    user wrote rather than ones recomputed (and re-rounded) from mu and sigma.
    """

    mu: float
    sigma: float
    given: tuple[str, float, str, float] = dataclasses.field(compare=False)
    unit: str = "duration"

    @classmethod
    def from_quantiles(cls, p50: float, p99: float, unit: str = "duration") -> LogNormal:
        return cls(math.log(p50), (math.log(p99) - math.log(p50)) / Z_99, ("p50", p50, "p99", p99), unit)

    @classmethod
    def from_moments(cls, mean: float, sd: float, unit: str = "duration") -> LogNormal:
        ratio = sd / mean
        variance = math.log1p(ratio * ratio)
        return cls(math.log(mean) - variance / 2, math.sqrt(variance), ("mean", mean, "sd", sd), unit)

    def sample(self, rng: random.Random) -> float:
        # ``rng.gauss`` rather than ``rng.lognormvariate`` (which calls normalvariate): ~15% faster.
        return math.exp(rng.gauss(self.mu, self.sigma))

    def survival(self, x: float) -> float:
        return 1.0 if x <= 0 else 1 - _STANDARD_NORMAL.cdf((math.log(x) - self.mu) / self.sigma)

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(gen.normal(self.mu, self.sigma, n))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def quantile(self, q: float) -> float:
        _check_q(q)
        if q in (0, 1):
            return 0.0 if q == 0 else math.inf
        return math.exp(self.mu + self.sigma * _STANDARD_NORMAL.inv_cdf(q))

    def __str__(self) -> str:
        fmt = _UNITS[self.unit][1]
        first, a, second, b = self.given
        return f"lognormal({first}={fmt(a)}, {second}={fmt(b)})"

    def scaled(self, factor: float) -> Distribution:
        # Refitted from the figures given, scaled (mu moves by log(factor), sigma stays): the
        # same floats as parsing the scaled text would give.
        first, a, _, b = self.given
        fit = LogNormal.from_quantiles if first == "p50" else LogNormal.from_moments
        return fit(a * factor, b * factor, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Pareto(Distribution):
    """A power-law tail above ``minimum``: P(X > x) = (minimum / x) ** alpha.

    ``alpha > 1`` is required so that the mean exists; below 2 the variance does not, and sample
    means converge slowly, which is the point of choosing it.
    """

    minimum: float
    alpha: float
    unit: str = "duration"
    _exponent: float = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_exponent", -1 / self.alpha)

    def sample(self, rng: random.Random) -> float:
        return float(self.minimum * (1.0 - rng.random()) ** self._exponent)

    def survival(self, x: float) -> float:
        return 1.0 if x < self.minimum else (self.minimum / x) ** self.alpha

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return self.minimum * (1.0 - gen.random(n)) ** self._exponent

    @property
    def mean(self) -> float:
        return self.alpha * self.minimum / (self.alpha - 1)

    def quantile(self, q: float) -> float:
        _check_q(q)
        return math.inf if q == 1 else self.minimum * (1 - q) ** self._exponent

    def __str__(self) -> str:
        return f"pareto(min={_UNITS[self.unit][1](self.minimum)}, alpha={_format_number(self.alpha)})"

    def scaled(self, factor: float) -> Distribution:
        return Pareto(self.minimum * factor, self.alpha, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Gamma(Distribution):
    """Given by mean and coefficient of variation (sd / mean): cv 1 is exponential, cv < 1 is
    more regular (cv = 1/sqrt(k) is Erlang-k), cv > 1 burstier. No closed-form quantile."""

    mean: float
    cv: float
    unit: str = "duration"
    _shape: float = dataclasses.field(init=False, repr=False, compare=False)
    _scale: float = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_shape", 1 / self.cv**2)
        object.__setattr__(self, "_scale", self.mean * self.cv**2)

    def sample(self, rng: random.Random) -> float:
        return rng.gammavariate(self._shape, self._scale)

    def survival(self, x: float) -> float:
        from scipy.special import gammaincc  # the regularized upper incomplete gamma

        return 1.0 if x <= 0 else float(gammaincc(self._shape, x / self._scale))

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return gen.gamma(self._shape, self._scale, n)

    def __str__(self) -> str:
        return f"gamma(mean={_UNITS[self.unit][1](self.mean)}, cv={_format_number(self.cv)})"

    def scaled(self, factor: float) -> Distribution:
        return Gamma(self.mean * factor, self.cv, self.unit)


WEIBULL_SHAPES = (0.1, 100.0)
"""Weibull shapes accepted: below 0.1 the mean is a factorial of ten or more and draws overflow in
practice; above 100 the spread is under 1.3% of the mean (a constant says that better)."""
WEIBULL_CVS = (0.02, 400.0)
"""The cvs given for a ``weibull(mean=, cv=)``: inside those of the shapes above."""


def _weibull_cv(shape: float) -> float:
    """The coefficient of variation of a Weibull of this shape: sqrt(Γ(1+2/k) / Γ(1+1/k)² - 1)."""
    return math.sqrt(math.expm1(math.lgamma(1 + 2 / shape) - 2 * math.lgamma(1 + 1 / shape)))


def _weibull_shape(cv: float) -> float:
    """The shape whose cv is ``cv``: the cv falls as the shape grows, so bisection (on log shape,
    a fixed number of steps: the same float for the same cv, on every machine)."""
    low, high = math.log(WEIBULL_SHAPES[0] / 2), math.log(WEIBULL_SHAPES[1] * 2)
    for _ in range(100):
        middle = (low + high) / 2
        if _weibull_cv(math.exp(middle)) > cv:
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


@dataclasses.dataclass(frozen=True, slots=True)
class Weibull(Distribution):
    """P(X > x) = exp(-(x / scale) ** shape): shape 1 is exponential, below 1 a heavier tail (many
    short, a few long), above 1 more regular (times to wear-out, service times with a floor).

    Given by ``shape`` and ``scale`` (the textbook's k and λ; what a fit estimates) or, as
    ``gamma``, by mean and cv. ``given`` is the pair the scenario gave, kept for ``str()`` as
    lognormal's. One ``rng.random()`` a draw (inverse CDF, as ``rng.weibullvariate``).
    """

    shape: float
    scale: float
    given: tuple[str, float, str, float] = dataclasses.field(compare=False)
    unit: str = "duration"
    _exponent: float = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_exponent", 1 / self.shape)

    @classmethod
    def from_shape(cls, shape: float, scale: float, unit: str = "duration") -> Weibull:
        return cls(shape, scale, ("shape", shape, "scale", scale), unit)

    @classmethod
    def from_moments(cls, mean: float, cv: float, unit: str = "duration") -> Weibull:
        shape = _weibull_shape(cv)
        return cls(shape, mean / math.exp(math.lgamma(1 + 1 / shape)), ("mean", mean, "cv", cv), unit)

    def sample(self, rng: random.Random) -> float:
        return float(self.scale * (-math.log(1.0 - rng.random())) ** self._exponent)

    def survival(self, x: float) -> float:
        return 1.0 if x <= 0 else math.exp(-((x / self.scale) ** self.shape))

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * gen.weibull(self.shape, n)

    @property
    def mean(self) -> float:
        return self.scale * math.exp(math.lgamma(1 + self._exponent))

    def quantile(self, q: float) -> float:
        _check_q(q)
        return math.inf if q == 1 else self.scale * (-math.log1p(-q)) ** self._exponent

    def __str__(self) -> str:
        fmt = _UNITS[self.unit][1]
        first, a, second, b = self.given
        if first == "shape":
            return f"weibull(shape={_format_number(a)}, scale={fmt(b)})"
        return f"weibull(mean={fmt(a)}, cv={_format_number(b)})"

    def scaled(self, factor: float) -> Distribution:
        first, a, _, b = self.given
        if first == "shape":
            return Weibull.from_shape(a, b * factor, self.unit)
        return Weibull.from_moments(a * factor, b, self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Empirical(Distribution):
    """A distribution given by its quantiles, ``empirical(p0=0.4ms, p50=2ms, p99=15ms, p100=40ms)``:
    what was measured, with no family assumed (``edge fit`` writes it when no family fits).

    Between two knots the CDF is a straight line (a draw is uniform between their values, with
    the probability between their levels); two knots of one value are an atom there. Knots run
    from p0 (the least value) to p100 (the greatest): nothing is drawn outside them. One
    ``rng.random()`` a draw (inverse CDF). ``percents`` are kept as written (99.9, not 0.999),
    so ``str()`` gives them back exactly.
    """

    percents: tuple[float, ...]
    values: tuple[float, ...]
    unit: str = "duration"
    _levels: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_levels", tuple(p / 100 for p in self.percents))

    def sample(self, rng: random.Random) -> float:
        return self._at(rng.random())

    def _at(self, u: float) -> float:
        levels, values = self._levels, self.values
        i = min(bisect.bisect_right(levels, u), len(levels) - 1)  # the knot above u (u < 1, so never past the last)
        low, high = levels[i - 1], levels[i]
        return values[i - 1] + (values[i] - values[i - 1]) * (u - low) / (high - low)

    def survival(self, x: float) -> float:
        values, levels = self.values, self._levels
        j = bisect.bisect_right(values, x)  # knots at or below x: the last of them has the highest level at x
        if j == 0:
            return 1.0
        if j == len(values):
            return 0.0
        below = levels[j - 1] + (levels[j] - levels[j - 1]) * (x - values[j - 1]) / (values[j] - values[j - 1])
        return 1.0 - below

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return np.interp(gen.random(n), self._levels, self.values)

    @property
    def mean(self) -> float:
        levels, values = self._levels, self.values
        return math.fsum((levels[i + 1] - levels[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(levels) - 1))

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.values[-1] if q == 1 else self._at(q)

    def __str__(self) -> str:
        fmt = _UNITS[self.unit][1]
        return "empirical(" + ", ".join(f"p{_format_number(p)}={fmt(v)}" for p, v in zip(self.percents, self.values)) + ")"

    def scaled(self, factor: float) -> Distribution:
        return Empirical(self.percents, tuple(v * factor for v in self.values), self.unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Mixture(Distribution):
    """With probability ``weights[i]`` a draw from ``components[i]``: bimodal latency (cache hit
    or miss), or a rare slow path. One ``rng.random()`` picks the component, then it draws."""

    weights: tuple[float, ...]
    components: tuple[Distribution, ...]
    _thresholds: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Cumulative weights without the last: ``bisect`` then lands on the last component for any
        # u above them, so rounding in the sum can never pick past the end.
        cumulative = tuple(sum(self.weights[: i + 1]) for i in range(len(self.weights) - 1))
        object.__setattr__(self, "_thresholds", cumulative)

    def sample(self, rng: random.Random) -> float:
        return self.components[bisect.bisect_right(self._thresholds, rng.random())].sample(rng)

    def survival(self, x: float) -> float:
        return sum(w * c.survival(x) for w, c in zip(self.weights, self.components))

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        chosen = np.searchsorted(np.asarray(self._thresholds), gen.random(n), side="right")
        values = np.empty(n)
        for index, component in enumerate(self.components):
            where = np.flatnonzero(chosen == index)
            values[where] = component.draw(gen, len(where))
        return values

    @property
    def mean(self) -> float:
        return sum(w * c.mean for w, c in zip(self.weights, self.components))

    def __str__(self) -> str:
        return "mix(" + ", ".join(f"{_format_number(w)}: {c}" for w, c in zip(self.weights, self.components)) + ")"

    def scaled(self, factor: float) -> Distribution:
        return Mixture(self.weights, tuple(c.scaled(factor) for c in self.components))


@dataclasses.dataclass(frozen=True, slots=True)
class Rounded(Distribution):
    """Sizes: ``inner`` rounded to whole bytes. The mean is ``inner``'s (rounding moves it by less
    than half a byte), and ``str()`` too, since rounding is implied by the unit."""

    inner: Distribution

    def sample(self, rng: random.Random) -> float:
        return round(self.inner.sample(rng))

    def survival(self, x: float) -> float:
        return self.inner.survival(x - 0.5)  # an upper bound: a draw rounded above x was above x - 0.5

    def draw(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return np.round(self.inner.draw(gen, n))  # half to even, as ``round``

    @property
    def mean(self) -> float:
        return self.inner.mean

    def quantile(self, q: float) -> float:
        x = self.inner.quantile(q)
        return round(x) if math.isfinite(x) else x

    def __str__(self) -> str:
        return str(self.inner)

    def scaled(self, factor: float) -> Distribution:
        return Rounded(self.inner.scaled(factor))


# Each form: the argument names it takes, in positional order. Positional arguments are accepted
# only where a name has one form; lognormal's two forms are told apart by their keywords.
_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "const": (("value",),),
    "exp": (("mean",),),
    "uniform": (("low", "high"),),
    "normal": (("mean", "sd"),),
    "lognormal": (("p50", "p99"), ("mean", "sd")),
    "pareto": (("min", "alpha"),),
    "gamma": (("mean", "cv"),),
    "weibull": (("shape", "scale"), ("mean", "cv")),
}
_USAGE = {
    "const": "const(value)",
    "exp": "exp(mean)",
    "uniform": "uniform(low, high)",
    "normal": "normal(mean=..., sd=...)",
    "lognormal": "lognormal(p50=..., p99=...) or lognormal(mean=..., sd=...)",
    "pareto": "pareto(min=..., alpha=...)",
    "gamma": "gamma(mean=..., cv=...)",
    "weibull": "weibull(shape=..., scale=...) or weibull(mean=..., cv=...)",
    "empirical": "empirical(p0=..., p50=..., ..., p100=...)",
}
_PLAIN_NUMBERS = frozenset({"alpha", "cv", "shape"})
_TOKEN = re.compile(r"[(),:=]|[^(),:=]+")
_PUNCTUATION = frozenset("(),:=")


class _Parser:
    """Recursive descent over tokens: punctuation characters and the trimmed text between them."""

    def __init__(self, text: str, unit: str) -> None:
        self.text = text
        self.tokens = [t.strip() for t in _TOKEN.findall(text) if t.strip()]
        self.pos = 0
        self.unit = unit

    def fail(self, expected: str) -> ValueError:
        found = shown(self.tokens[self.pos]) if self.pos < len(self.tokens) else "end of text"
        return ValueError(f"expected {expected}, got {found} in {shown(self.text)}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, punctuation: str) -> None:
        if self.peek() != punctuation:
            raise self.fail(f'"{punctuation}"')
        self.pos += 1

    def atom(self, expected: str) -> str:
        token = self.peek()
        if token is None or token in _PUNCTUATION:
            raise self.fail(expected)
        self.pos += 1
        return token

    def whole(self) -> Distribution:
        distribution = self.distribution(0)
        if self.pos < len(self.tokens):
            raise self.fail("end of text")
        return distribution

    def distribution(self, depth: int) -> Distribution:
        word = self.atom(f"a value or a distribution ({', '.join(NAMES)})")
        if self.peek() != "(":
            return self.constant(word)
        if word not in NAMES:
            raise ValueError(f"expected one of {', '.join(NAMES)}, got {shown(word)}")
        self.take("(")
        if word == "mix":
            if depth >= _MAX_DEPTH:
                raise ValueError(f"expected mix nested at most {_MAX_DEPTH} deep, got {shown(self.text)}")
            distribution = self.mixture(depth)
        elif word == "empirical":
            distribution = _empirical(self.arguments(word), self.unit)
        else:
            distribution = _build(word, self.arguments(word), self.unit)
        self.take(")")
        return distribution

    def constant(self, word: str) -> Distribution:
        if word[:1].isalpha():  # a name without "(...)": say which names exist, not "not a duration"
            raise ValueError(f"expected a value or one of {', '.join(NAMES)} with arguments in (...), got {shown(word)}")
        return Const(_UNITS[self.unit][0](word), self.unit)

    def arguments(self, name: str) -> list[tuple[str | None, str]]:
        arguments: list[tuple[str | None, str]] = []
        while self.peek() != ")":
            if arguments:
                self.take(",")
            first = self.atom(f"an argument of {_USAGE[name]}")
            if self.peek() == "=":
                self.pos += 1
                arguments.append((first, self.atom(f"a value for {first}")))
            else:
                arguments.append((None, first))
            if self.peek() not in (",", ")"):
                raise self.fail('"," or ")"')
        return arguments

    def mixture(self, depth: int) -> Distribution:
        weights: list[float] = []
        components: list[Distribution] = []
        while self.peek() != ")" or not components:
            if components:
                self.take(",")
            weight = self.atom('a weight like "0.9" or "90%"')
            try:
                weights.append(parse_ratio(weight))
            except ValueError as exc:
                raise ValueError(f"mix weight: {exc}") from None
            self.take(":")
            components.append(self.distribution(depth + 1))
        if len(components) < 2:
            expected = "mix(WEIGHT: DISTRIBUTION, WEIGHT: DISTRIBUTION, ...) with at least two parts"
            raise ValueError(f"expected {expected}, got {shown(self.text)}")
        if not math.isclose(sum(weights), 1.0, rel_tol=0, abs_tol=1e-9):
            raise ValueError(f"expected mix weights summing to 1, got {' + '.join(map(_format_number, weights))} = {sum(weights):g}")
        return Mixture(tuple(weights), tuple(components))


def _bind(name: str, arguments: list[tuple[str | None, str]]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Match arguments, positional ones first, to one of ``name``'s forms: the form and its values."""
    forms = _FORMS[name]
    count = next((i for i, (key, _) in enumerate(arguments) if key is not None), len(arguments))
    keys = tuple(key for key, _ in arguments[count:] if key is not None)
    if count + len(keys) == len(arguments) and (count == 0 or len(forms) == 1):  # no positional after a keyword
        for form in forms:
            names = form[:count] + keys
            if len(names) == len(arguments) and sorted(names) == sorted(form):  # not too many positional
                return form, dict(zip(names, (value for _, value in arguments)))
    given = ", ".join(value if key is None else f"{key}={value}" for key, value in arguments)
    raise ValueError(f"expected {_USAGE[name]}, got {shown(f'{name}({given})')}")


def _build(name: str, arguments: list[tuple[str | None, str]], unit: str) -> Distribution:
    form, texts = _bind(name, arguments)
    parse_value = _UNITS[unit][0]
    values: dict[str, float] = {}
    for arg in form:
        try:
            values[arg] = _parse_number(texts[arg]) if arg in _PLAIN_NUMBERS else parse_value(texts[arg])
        except ValueError as exc:
            raise ValueError(f"{name} {arg}: {exc}") from None

    def require(ok: bool, arg: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"{name} {arg}: expected {expected}, got {shown(texts[arg])}")

    if name == "const":
        return Const(values["value"], unit)
    if name == "exp":
        require(values["mean"] > 0, "mean", "a positive mean")
        return Exponential(values["mean"], unit)
    if name == "uniform":
        require(values["low"] <= values["high"], "high", f"high >= low ({texts['low']})")
        return Uniform(values["low"], values["high"], unit)
    if name == "normal":
        require(values["sd"] > 0, "sd", "a positive sd (for no spread, use a constant)")
        return Normal(values["mean"], values["sd"], unit)
    if name == "lognormal" and form == ("p50", "p99"):
        require(values["p50"] > 0, "p50", "a positive p50")
        require(values["p99"] >= values["p50"], "p99", f"p99 >= p50 ({texts['p50']})")
        return LogNormal.from_quantiles(values["p50"], values["p99"], unit)
    if name == "lognormal":
        require(values["mean"] > 0, "mean", "a positive mean")
        return LogNormal.from_moments(values["mean"], values["sd"], unit)
    if name == "pareto":
        require(values["min"] > 0, "min", "a positive minimum")
        require(values["alpha"] > 1, "alpha", "alpha > 1 (so that the mean exists)")
        return Pareto(values["min"], values["alpha"], unit)
    if name == "weibull" and form == ("shape", "scale"):
        low, high = WEIBULL_SHAPES
        require(low <= values["shape"] <= high, "shape", f"a shape between {low:g} and {high:g}")
        require(values["scale"] > 0, "scale", "a positive scale")
        return Weibull.from_shape(values["shape"], values["scale"], unit)
    if name == "weibull":
        low, high = WEIBULL_CVS
        require(values["mean"] > 0, "mean", "a positive mean")
        require(low <= values["cv"] <= high, "cv", f"a cv between {low:g} and {high:g}")
        return Weibull.from_moments(values["mean"], values["cv"], unit)
    require(values["mean"] > 0, "mean", "a positive mean")
    # Outside this range shape = 1/cv² or scale = mean·cv² can under- or overflow a float; for no
    # spread at all there is the constant.
    require(0.001 <= values["cv"] <= 1000, "cv", "a cv between 0.001 and 1000")
    return Gamma(values["mean"], values["cv"], unit)


_KNOT = re.compile(r"p(\d+(?:\.\d+)?)")
_MAX_KNOTS = 1000


def _empirical(arguments: list[tuple[str | None, str]], unit: str) -> Distribution:
    """``empirical(p0=..., ..., p100=...)``: knots named by their percent, in increasing order, from
    p0 to p100, their values never decreasing."""
    usage = _USAGE["empirical"]
    given = ", ".join(value if key is None else f"{key}={value}" for key, value in arguments)
    percents: list[float] = []
    values: list[float] = []
    if len(arguments) > _MAX_KNOTS:
        raise ValueError(f"expected at most {_MAX_KNOTS} knots in {usage}, got {len(arguments)}")
    for key, text in arguments:
        match = _KNOT.fullmatch(key or "")
        if match is None or float(match[1]) > 100:
            raise ValueError(f"empirical: expected knots like p50=2ms (a percent from 0 to 100 and a value), got {shown(key or text)}")
        percent = float(match[1])
        try:
            value = _UNITS[unit][0](text)
        except ValueError as exc:
            raise ValueError(f"empirical {key}: {exc}") from None
        if percents and percent <= percents[-1]:
            raise ValueError(f"empirical {key}: expected knots in increasing order, after p{_format_number(percents[-1])}, got {shown(key)}")
        if values and value < values[-1]:
            raise ValueError(f"empirical {key}: expected {key} >= p{_format_number(percents[-1])} ({_UNITS[unit][1](values[-1])}), "
                             f"got {shown(text)}")
        percents.append(percent)
        values.append(value)
    if not percents or percents[0] != 0 or percents[-1] != 100:
        raise ValueError(f"expected {usage}: knots from p0 (the least value) to p100 (the greatest), got {shown(f'empirical({given})')}")
    return Empirical(tuple(percents), tuple(values), unit)


def parse_distribution(value: str | int | float, *, unit: str = "duration") -> Distribution:
    """A distribution from scenario text: a bare value ("2ms", 3) is a constant, otherwise one of
    const(v), exp(mean), uniform(low, high), normal(mean=, sd=), lognormal(p50=, p99=),
    lognormal(mean=, sd=), pareto(min=, alpha=), gamma(mean=, cv=), weibull(shape=, scale=),
    weibull(mean=, cv=), empirical(p0=, ..., p100=) or mix(w: dist, w: dist, ...).

    ``unit`` says how values read: "duration" (``parse_duration``; samples in seconds), "size"
    (``parse_size``; samples rounded to whole bytes) or "number" (plain non-negative floats).
    ``alpha``, ``cv``, ``shape``, mix weights and empirical's percents are always plain numbers.
    """
    if unit not in _UNITS:
        raise ValueError(f"expected unit one of {', '.join(_UNITS)}, got {shown(unit)}")
    if not isinstance(value, str):
        return Const(_UNITS[unit][0](value), unit)
    distribution = _Parser(value, unit).whole()
    try:
        finite = math.isfinite(distribution.mean)
    except OverflowError:
        finite = False
    if not finite:  # only parameters hundreds of digits long get here, but a report must not crash on them
        raise ValueError(f"expected parameters giving a finite mean, got {shown(value)}")
    if unit == "size" and not isinstance(distribution, Const):
        return Rounded(distribution)
    return distribution
