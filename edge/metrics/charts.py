"""A run's series as chart specs for the browser (``edge/platform/static/charts.js`` draws them):
the HTML report draws a whole run's, ``edge serve``'s dashboard the last minutes'.

A spec is plain data, ``{"title", "unit", "series": [{"label", "values"}]}``, over the page's shared
x values (each interval's end); ``None`` is a gap (an interval without a request to measure).

A quantile is drawn only from an interval with the samples it needs (``needed``: a p99 from 100);
below that it is a gap, and each line's label gives its samples per interval. The p99 of ten
answers is their largest at best, and was once drawn below production's for a canary whose p99
was higher.
"""

from __future__ import annotations

from typing import Any

from edge.metrics.series import Series

Chart = dict[str, Any]


def chart(title: str, unit: str, *lines: tuple[str, list[Any]] | dict[str, Any]) -> Chart:
    """A line is (label, values), or a ``quantile`` line's dict, which also carries its samples."""
    return {"title": title, "unit": unit, "series": [line if isinstance(line, dict) else {"label": line[0], "values": line[1]} for line in lines]}


def quantile(label: str, values: list[float], samples: list[int], q: float) -> dict[str, Any]:
    """A quantile's line: in ms, a gap where an interval had fewer samples than ``q`` needs, and
    the samples of every point, which the chart's legend shows with the value ("4.2 ms (n 140)")."""
    return {"label": label, "values": quantile_ms(values, samples, q), "samples": samples, "needs": needed(q)}


def per_second(amounts: list[int] | list[float], series: Series) -> list[float]:
    """Amounts per interval as rates; the last interval may be shorter (the drain)."""
    starts = [series.end_s[0] - series.interval_s, *series.end_s[:-1]] if series.end_s else []
    return [round(n / (end - start), 6) if end > start else 0.0 for n, start, end in zip(amounts, starts, series.end_s)]


def ms(values: list[float]) -> list[float | None]:
    """Milliseconds; None where an interval had no request to measure."""
    return [round(v * 1000, 6) if v > 0 else None for v in values]


def needed(q: float) -> int:
    """The samples a quantile needs to say something of its own: 1 / (1 - q), so 2 for the
    median, 10 for p90, 100 for p99 (fewer, and the p99 is the largest value or an interpolation
    towards it)."""
    return round(1 / (1 - q))


def quantile_ms(values: list[float], samples: list[int], q: float) -> list[float | None]:
    """``ms(values)``, with a gap where an interval had fewer samples than the quantile needs."""
    least = needed(q)
    return [round(v * 1000, 6) if v > 0 and n >= least else None for v, n in zip(values, samples)]


def with_samples(label: str, samples: list[int], q: float) -> str:
    """``label`` and the samples its points were read from: "app@canary, n 8–14 (p99 needs 100)"."""
    seen = [n for n in samples if n]
    if not seen:
        return label
    low, high = min(seen), max(seen)
    counted = f"n {low:,}" if low == high else f"n {low:,}–{high:,}"
    short = f" (p{q * 100:g} needs {needed(q):,})" if low < needed(q) else ""
    return f"{label}, {counted}{short}"


def sections(series: Series, cpu_limit_s: float) -> list[dict[str, Any]]:
    """Traffic, latency, canary (when a service is split) and CPU, as titled groups of charts."""
    c, envs = series.clients, series.environments
    answered, charged = c.latency_samples or c.requests, c.cpu_samples or c.requests  # a report from before samples were kept
    out = [
        {"title": "Traffic", "charts": [
            chart("Client requests per second", "/s", ("requests/s", per_second(c.requests, series)),
                  ("errors/s (5xx, timeouts)", per_second(c.errors, series)), ("timeouts/s", per_second(c.timeouts, series)),
                  ("dropped/s", per_second(c.dropped, series))),
            chart("Answers per second by service environment (attempts)", "/s",
                  *((key, per_second(env.requests, series)) for key, env in envs.items())),
        ]},
        {"title": "Latency", "charts": [
            chart("Top-level latency", "ms", quantile("p50", c.latency_p50_s, answered, 0.5), quantile("p99", c.latency_p99_s, answered, 0.99)),
            chart("Latency p99 by service environment (intervals of 100 answers or more)", "ms",
                  *(quantile(key, env.latency_p99_s, env.requests, 0.99) for key, env in envs.items())),
        ]},
    ]
    if series.weights:
        ratio = {key: [round(100 * e / n, 4) if n else None for e, n in zip(env.errors, env.requests)]
                 for key, env in envs.items() if key in series.weights}
        out.append({"title": "Canary", "charts": [
            chart("Weight by environment", "%", *series.weights.items()),
            chart("5xx per attempt, split services", "%", *ratio.items()),
        ]})
    out.append({"title": "Shared CPU", "charts": [
        chart("CPU per top-level request", "ms", quantile("p50", c.cpu_per_request_p50_s, charged, 0.5),
              quantile("p99", c.cpu_per_request_p99_s, charged, 0.99),
              ("limit", [round(cpu_limit_s * 1000, 6)] * len(series.end_s))),
        chart("Cores busy by service environment", "cores", *((key, per_second(env.cpu_s, series)) for key, env in envs.items())),
    ]})
    return out
