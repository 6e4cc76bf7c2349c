"""A run's series as chart specs for the browser (``edge/platform/static/charts.js`` draws them):
the HTML report draws a whole run's, ``edge serve``'s dashboard the last minutes'.

A spec is plain data, ``{"title", "unit", "series": [{"label", "values"}]}``, over the page's shared
x values (each interval's end); ``None`` is a gap (an interval without a request to measure).
"""

from __future__ import annotations

from typing import Any

from edge.metrics.series import Series

Chart = dict[str, Any]


def chart(title: str, unit: str, *lines: tuple[str, list[Any]]) -> Chart:
    return {"title": title, "unit": unit, "series": [{"label": label, "values": values} for label, values in lines]}


def per_second(amounts: list[int] | list[float], series: Series) -> list[float]:
    """Amounts per interval as rates; the last interval may be shorter (the drain)."""
    starts = [series.end_s[0] - series.interval_s, *series.end_s[:-1]] if series.end_s else []
    return [round(n / (end - start), 6) if end > start else 0.0 for n, start, end in zip(amounts, starts, series.end_s)]


def ms(values: list[float]) -> list[float | None]:
    """Milliseconds; None where an interval had no request to measure."""
    return [round(v * 1000, 6) if v > 0 else None for v in values]


def sections(series: Series, cpu_limit_s: float) -> list[dict[str, Any]]:
    """Traffic, latency, canary (when a service is split) and CPU, as titled groups of charts."""
    c, envs = series.clients, series.environments
    out = [
        {"title": "Traffic", "charts": [
            chart("Client requests per second", "/s", ("requests/s", per_second(c.requests, series)),
                  ("errors/s (5xx, timeouts)", per_second(c.errors, series)), ("timeouts/s", per_second(c.timeouts, series)),
                  ("dropped/s", per_second(c.dropped, series))),
            chart("Answers per second by service environment (attempts)", "/s",
                  *((key, per_second(env.requests, series)) for key, env in envs.items())),
        ]},
        {"title": "Latency", "charts": [
            chart("Top-level latency", "ms", ("p50", ms(c.latency_p50_s)), ("p99", ms(c.latency_p99_s))),
            chart("Latency p99 by service environment", "ms", *((key, ms(env.latency_p99_s)) for key, env in envs.items())),
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
        chart("CPU per top-level request", "ms", ("p50", ms(c.cpu_per_request_p50_s)), ("p99", ms(c.cpu_per_request_p99_s)),
              ("limit", [round(cpu_limit_s * 1000, 6)] * len(series.end_s))),
        chart("Cores busy by service environment", "cores", *((key, per_second(env.cpu_s, series)) for key, env in envs.items())),
    ]})
    return out
