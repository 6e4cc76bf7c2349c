"""A service's model and arrivals fitted from what it logged: latency, size and error
distributions, its arrival rate (and a daily curve when the log spans a day), each with the figures
that say how well it is known; and all of it as scenario text in edge's own syntax.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from edge.fit.families import Choice, FitError, fit_raw
from edge.fit.logs import Record, Rule
from edge.platform.units import format_duration

CONFIDENCE = 0.95
DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def error_ratio(errors: int, total: int) -> Interval:
    """The share of errors, with its exact (Clopper-Pearson) interval."""
    ci = stats.binomtest(errors, total).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Interval(errors / total, float(ci.low), float(ci.high))


def poisson_rate(count: int, span: float) -> Interval:
    """``count`` events in ``span`` seconds: the rate, with its exact (Garwood) interval."""
    alpha = 1 - CONFIDENCE
    low = stats.chi2.ppf(alpha / 2, 2 * count) / 2 / span if count else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2 / span
    return Interval(count / span, float(low), float(high))


@dataclasses.dataclass(frozen=True)
class Daily:
    """``diurnal = { period = "24h", trough, peak }``: the rate swings between trough x and 1 x its peak rate."""

    peak_rate: float
    trough: float
    peak: float
    """Seconds after the log's first request, within the day."""


@dataclasses.dataclass(frozen=True)
class Arrivals:
    count: int
    span: float
    rate: Interval
    dispersion: float
    """The variance over the mean of the counts per second: 1 for Poisson arrivals, above for
    bursty ones (counts, not gaps: a log stamped to the second has no gaps to measure)."""
    daily: Daily | None
    note: str | None = None


def fit_arrivals(times: Sequence[float]) -> Arrivals:
    at = np.sort(np.asarray(times, dtype=float))
    span = float(at[-1] - at[0]) if len(at) > 1 else 0.0
    if len(at) < 2 or span <= 0:
        raise FitError(f"expected requests spread over time to fit a rate, got {len(at)} at one instant")
    seconds = np.bincount((at - at[0]).astype(int))[: max(int(span), 1)]  # whole seconds only
    dispersion = float(seconds.var(ddof=1) / seconds.mean()) if len(seconds) > 1 and seconds.mean() > 0 else math.nan
    rate = poisson_rate(len(at) - 1, span)  # n - 1 gaps in the span: the rate's MLE from the gaps
    if span < DAY:
        return Arrivals(len(at), span, rate, dispersion, None,
                        f"the log spans {format_duration(span)}, less than a day: no daily profile (a constant rate)")
    return Arrivals(len(at), span, rate, dispersion, _daily(at - at[0]))


def _daily(at: np.ndarray) -> Daily:
    """Least squares of hourly counts against edge's daily curve (``edge.scenario.arrivals``)."""
    hours = int(at[-1] // 3600) + 1
    counts = np.bincount((at // 3600).astype(int), minlength=hours)[: max(hours - 1, 1)]  # the last hour is partial
    middle = (np.arange(len(counts)) + 0.5) * 3600

    def curve(t: np.ndarray, peak_rate: float, trough: float, peak: float) -> np.ndarray:
        return 3600 * peak_rate * (trough + (1 - trough) * (1 + np.cos(2 * np.pi * (t - peak) / DAY)) / 2)

    start_peak = float(middle[np.argmax(counts[:24])]) if len(counts) else 0.0
    (peak_rate, trough, peak), _ = optimize.curve_fit(
        curve, middle, counts, p0=[max(counts.max(), 1) / 3600, 0.5, start_peak],
        bounds=([0, 0.001, -DAY], [np.inf, 1, 2 * DAY]))
    return Daily(float(peak_rate), float(trough), float(peak % DAY))


@dataclasses.dataclass(frozen=True)
class ServiceFit:
    name: str
    rule: Rule | None
    requests: int
    latency: Choice | None
    size: Choice | None
    errors: Interval | None
    error_status: int | None
    """The commonest 5xx logged (None: no status logged)."""
    arrivals: Arrivals | None
    notes: tuple[str, ...] = ()


def fit_service(name: str, rule: Rule | None, records: Sequence[Record]) -> ServiceFit:
    notes: list[str] = []
    if not records:
        return ServiceFit(name, rule, 0, None, None, None, None, None, ("no request of the log matches it",))

    def attempt(what: str, values: list[float], unit: str) -> Choice | None:
        if not values:
            notes.append(f"{what}: the log records none")
            return None
        try:
            return fit_raw(values, unit=unit)
        except FitError as exc:
            notes.append(f"{what}: not fitted: {exc}")
            return None

    latency = attempt("latency", [r.time for r in records if r.time is not None], "duration")
    size = attempt("size", [float(r.bytes) for r in records if r.bytes is not None], "size")
    statuses = [r.status for r in records if r.status is not None]
    errors = error_status = None
    if statuses:
        failed = [s for s in statuses if s >= 500]
        errors = error_ratio(len(failed), len(statuses))
        error_status = Counter(failed).most_common(1)[0][0] if failed else 500
    else:
        notes.append("errors: the log records no status")
    arrivals = None
    try:
        arrivals = fit_arrivals([r.at for r in records])
    except FitError as exc:
        notes.append(f"arrivals: not fitted: {exc}")
    return ServiceFit(name, rule, len(records), latency, size, errors, error_status, arrivals, tuple(notes))
