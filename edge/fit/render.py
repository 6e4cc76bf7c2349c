"""What ``edge fit`` prints: the figures as TOML comments, then the scenario text, so the whole of
it can be pasted into a scenario (or written as one with ``-o``) and still be read by ``edge check``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from edge.fit.families import Choice, Fit
from edge.fit.model import Arrivals, Interval, ServiceFit
from edge.platform.units import format_duration


def _number(x: float, digits: int = 4) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


def rate_text(per_second: float) -> str:
    """A rate as a scenario reads it, three significant digits, in a unit that avoids exponents."""
    for per, unit in ((1.0, "s"), (60.0, "m"), (3600.0, "h")):
        value = per_second * per
        if value >= 0.1 or unit == "h":
            return f"{float(f'{value:.3g}'):g}/{unit}" if value >= 1e-4 else f"{value:.6f}/h"
    raise AssertionError  # pragma: no cover


def _ratio(x: float) -> str:
    return f"{100 * x:.3g}%"


def _interval(i: Interval, show: Callable[[float], str]) -> str:
    return f"{show(i.value)} ({round(100 * 0.95)}% CI {show(i.low)} to {show(i.high)})"


def _parameters(fit: Fit) -> str:
    return "  ".join(f"{p.name}={_number(p.value)} ± {_number(p.se, 2)}" for p in fit.parameters) or "(knots)"


def choice_lines(what: str, choice: Choice) -> list[str]:
    chosen = choice.chosen
    how = "interval-censored bins" if choice.binned else "raw values"
    lines = [f"{what}: n={chosen.n:,} ({how}): {chosen.family}" + (" (no family fits)" if choice.warning else ", by AIC")]
    best_aic = min((f.aic for f in choice.fits if math.isfinite(f.aic)), default=math.nan)
    lines.append(f"  {'family':<12}{'dAIC':>9}  {'parameters ± standard error':<44} goodness of fit")
    for fit in choice.fits:
        delta = "" if not math.isfinite(fit.aic) else f"{fit.aic - best_aic:.1f}"
        test = (f"KS D={_number(fit.statistic, 3)} p={_number(fit.pvalue, 2)}" if fit.test == "KS"
                else f"chi2={_number(fit.statistic, 4)} df={fit.df if fit.df is not None else '-'} p={_number(fit.pvalue, 2)}")
        mark = "  <- written" if fit is chosen else ""
        lines.append(f"  {fit.family:<12}{delta:>9}  {_parameters(fit):<44} {test}{mark}")
    if choice.warning:
        lines.append(f"  warning: {choice.warning}")
    lines.append(f"  written: {chosen.text}")
    return lines


def arrival_lines(arrivals: Arrivals) -> list[str]:
    dispersion = (f", counts per second: variance/mean {_number(arrivals.dispersion, 3)} (1 for Poisson arrivals)"
                  if math.isfinite(arrivals.dispersion) else "")
    lines = [f"arrivals: {arrivals.count:,} requests over {format_duration(arrivals.span)}: "
             f"{_interval(arrivals.rate, lambda r: rate_text(r))}{dispersion}"]
    if arrivals.daily is not None:
        d = arrivals.daily
        lines.append(f"  daily: peak {rate_text(d.peak_rate)} at {format_duration(d.peak)} after the first request, "
                     f"trough {d.trough:.2f} x the peak")
    if arrivals.note:
        lines.append(f"  {arrivals.note}")
    return lines


def service_lines(fit: ServiceFit) -> list[str]:
    lines = [f"{fit.name}: {fit.requests:,} requests" + (f" matching {fit.rule}" if fit.rule else "")]
    body: list[str] = []
    if fit.arrivals is not None:
        body += arrival_lines(fit.arrivals)
    if fit.latency is not None:
        body += choice_lines("latency", fit.latency)
    if fit.size is not None:
        body += choice_lines("size", fit.size)
    if fit.errors is not None:
        body.append(f"errors (5xx): {_interval(fit.errors, _ratio)}; status {fit.error_status}")
    body += fit.notes
    return lines + ["  " + line for line in body]


def _url(fit: ServiceFit) -> str:
    if fit.rule is None:
        return "https://example.com/"
    pattern = fit.rule.pattern
    host = ("www." + pattern.host) if pattern.wildcard_host else pattern.host
    if fit.rule.any_host:
        host = "example.com"
    return f"https://{host}{pattern.path}"


def _route(fit: ServiceFit) -> str:
    return "example.com/*" if fit.rule is None else fit.rule.route


def toml_fragment(fits: Sequence[ServiceFit]) -> str:
    out: list[str] = []
    for fit in fits:
        if fit.requests == 0:
            continue
        model = []
        if fit.latency is not None:
            model.append(f'latency = "{fit.latency.chosen.text}"')
        if fit.errors is not None:
            model.append(f"errors = {float(f'{fit.errors.value:.3g}')!r}")
            if fit.error_status is not None and fit.error_status != 500:
                model.append(f"error_status = {fit.error_status}")
        if fit.size is not None:
            model.append(f'size = "{fit.size.chosen.text}"')
        out += ["[[services]]", f'name = "{fit.name}"', f'routes = ["{_route(fit)}"]', "model = { " + ", ".join(model) + " }", ""]
    for fit in fits:
        if fit.arrivals is None:
            continue
        a = fit.arrivals
        out += ["[[traffic]]", f'name = "{fit.name}"']
        if a.daily is not None:
            out.append(f'arrivals = "poisson({rate_text(a.daily.peak_rate)})"')
            out.append(f'diurnal = {{ period = "24h", trough = {a.daily.trough:.3g}, peak = "{format_duration(a.daily.peak)}" }}')
        else:
            out.append(f'arrivals = "poisson({rate_text(a.rate.value)})"')
        out += [f'requests = [{{ url = "{_url(fit)}" }}]', ""]
    return "\n".join(out)


def scenario_text(header: Sequence[str], fits: Sequence[ServiceFit], *, name: str = "fitted") -> str:
    """A whole scenario: the figures as comments, a ``[scenario]`` table, then the fragment."""
    spans = [f.arrivals.span for f in fits if f.arrivals is not None]
    duration = format_duration(min(max(spans, default=60.0), 3600.0))
    return "\n".join([*("# " + line if line else "#" for line in header), "",
                      "[scenario]", f'name = "{name}"', f'duration = "{duration}"', "seed = 1", "", toml_fragment(fits)])
