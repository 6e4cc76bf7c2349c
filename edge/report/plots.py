"""PNG plots of a run, drawn from its report alone (``Report.series``), so a JSON report from any
earlier run can be plotted again with ``edge plot``.

Four figures, each answering one question an operator asks of a rollout:

* ``latency.png``: how slow was each environment, interval by interval (p50 and p99)?
* ``traffic.png``: how much did clients send, and how much of it failed, timed out or was dropped?
* ``canary.png``: canary against production, per split service: weight, error ratio, p99.
* ``cpu.png``: CPU per top-level request against the limit, and CPU used per environment.

Timeline events are drawn as labelled vertical lines on every figure: a deploy or a crash and the
change it caused are seen together. A quantile is drawn only where an interval had the samples it
needs (``charts.needed``), and each line's legend gives its samples per interval. matplotlib is imported here only, and only when plots are asked
for: it costs half a second to import.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any, Callable

from edge.platform.files import write_output
from edge.scenario.values import EnvironmentKey
from edge.report.build import Report
from edge.metrics.charts import quantile_ms, with_samples
from edge.metrics.series import Series

QUANTILE_STYLES = (("latency_p50_s", "p50", 0.5, ":"), ("latency_p99_s", "p99", 0.99, "-"))


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Draw every figure the report has data for into ``directory``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, never need a display
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Callable[[Report], Any]]] = [("latency.png", _latency), ("traffic.png", _traffic), ("cpu.png", _cpu)]
    if _splits(report.series):
        figures.insert(2, ("canary.png", _canary))
    written = []
    for name, draw in figures:
        save_png(draw(report), directory / name)
        written.append(directory / name)
    return written


def save_png(figure: Any, path: str | Path) -> None:
    """Write ``figure`` as a PNG, whole or not at all, with no timestamp or version in its metadata
    (the same run draws the same bytes), and free it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    write_output(path, buffer.getvalue())


class _Axis:
    """Simulated time on the x axis: seconds for short runs, minutes or hours for long ones."""

    def __init__(self, series: Series) -> None:
        span = series.end_s[-1] if series.end_s else 0.0
        self.unit, self.scale = ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0) if span > 600 else ("s", 1.0)
        self.x = [t / self.scale for t in series.end_s]

    def label(self) -> str:
        return f"simulated time ({self.unit})"


def _figure(report: Report, rows: int, title: str) -> tuple[Any, list[Any], _Axis]:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, 1, figsize=(13, 1.2 + 3.0 * rows), sharex=True, squeeze=False)
    axes = [row[0] for row in axes]
    figure.suptitle(f"{report.scenario} (seed {report.seed}): {title}")
    axis = _Axis(report.series)
    axes[-1].set_xlabel(axis.label())
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for entry in report.timeline:
            ax.axvline(entry.at_s / axis.scale, color="grey", linestyle="--", linewidth=0.8)
    for entry in report.timeline:
        axes[0].annotate(
            f"{entry.action} {entry.target}", (entry.at_s / axis.scale, 1.0), xycoords=("data", "axes fraction"),
            rotation=90, fontsize=7, va="top", ha="right", color="dimgrey",
        )
    return figure, axes, axis


def _legend(ax: Any) -> None:
    """Beside the plot, not on it: lines of a busy run fill the whole plot area."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _per_second(amounts: list[int] | list[float], series: Series) -> list[float]:
    """Amounts per interval as rates; the last interval may be shorter (the drain)."""
    starts = [0.0, *series.end_s[:-1]]
    return [n / (end - start) if end > start else 0.0 for n, start, end in zip(amounts, starts, series.end_s)]


def _latency(report: Report) -> Any:
    figure, (ax,), axis = _figure(report, 1, "latency per environment and interval")
    for index, (key, env) in enumerate(report.series.environments.items()):
        colour = f"C{index % 10}"
        for column, name, q, style in QUANTILE_STYLES:
            ax.plot(axis.x, quantile_ms(getattr(env, column), env.requests, q), linestyle=style, color=colour,
                    label=with_samples(f"{key} {name}", env.requests, q))
    ax.set_ylabel("latency (ms, log)")
    ax.set_yscale("log")
    _legend(ax)
    figure.tight_layout()
    return figure


def _traffic(report: Report) -> Any:
    series = report.series
    c = series.clients
    figure, (rate, failures), axis = _figure(report, 2, "client traffic and failures")
    rate.plot(axis.x, _per_second(c.requests, series), color="C0", linewidth=2.5, zorder=3, label="client requests/s")
    for index, (key, env) in enumerate(series.environments.items()):
        rate.plot(axis.x, _per_second(env.requests, series), linewidth=0.8, color=f"C{(index + 1) % 10}", label=f"{key} attempts/s")
    rate.set_ylabel("per second")
    _legend(rate)
    failures.plot(axis.x, _per_second(c.errors, series), color="C3", label="errors/s (5xx and timeouts)")
    failures.plot(axis.x, _per_second(c.timeouts, series), color="C1", label="timeouts/s")
    failures.plot(axis.x, _per_second(c.dropped, series), color="C4", label="dropped arrivals/s")
    for index, (key, env) in enumerate(series.environments.items()):
        if any(env.shed):
            failures.plot(axis.x, _per_second(env.shed, series), linestyle=":", color=f"C{(index + 5) % 10}", label=f"{key} shed/s")
    failures.set_ylabel("per second")
    _legend(failures)
    figure.tight_layout()
    return figure


def _splits(series: Series) -> dict[str, list[str]]:
    """service -> its split environments (those with a weight)."""
    services: dict[str, list[str]] = {}
    for key in series.weights:
        service, environment = EnvironmentKey.parse(key)
        services.setdefault(service, []).append(environment)
    return services


def _canary(report: Report) -> Any:
    series = report.series
    splits = _splits(series)
    figure, axes, axis = _figure(report, 3, "canary against production, per split service")
    weight, errors, p99 = axes
    for s_index, (service, environments) in enumerate(splits.items()):
        for e_index, environment in enumerate(environments):
            key = str(EnvironmentKey(service, environment))
            colour = f"C{(s_index * 3 + e_index) % 10}"
            weight.step(axis.x, series.weights[key], where="post", color=colour, label=key)
            env = series.environments.get(key)
            if env is None:
                continue
            ratio = [100 * e / n if n else None for e, n in zip(env.errors, env.requests)]
            errors.plot(axis.x, ratio, color=colour, linewidth=0.8, label=f"{key}, per interval")
            so_far = [100 * e / n if n else None for e, n in zip(itertools.accumulate(env.errors), itertools.accumulate(env.requests))]
            errors.plot(axis.x, so_far, color=colour, linestyle="--", linewidth=1.6, label=f"{key}, since the start")
            p99.plot(axis.x, quantile_ms(env.latency_p99_s, env.requests, 0.99), color=colour, label=with_samples(key, env.requests, 0.99))
    weight.set_ylabel("weight (%)")
    errors.set_ylabel("5xx per attempt (%)")
    p99.set_ylabel("p99 latency (ms)")
    for ax in axes:
        _legend(ax)
    figure.tight_layout()
    return figure


def _cpu(report: Report) -> Any:
    series = report.series
    c = series.clients
    figure, (per_request, used), axis = _figure(report, 2, "CPU per request and per environment")
    charged = c.cpu_samples or c.requests  # a report from before samples were kept
    per_request.plot(axis.x, quantile_ms(c.cpu_per_request_p50_s, charged, 0.5), linestyle=":", color="C0",
                     label=with_samples("p50 per top-level request", charged, 0.5))
    per_request.plot(axis.x, quantile_ms(c.cpu_per_request_p99_s, charged, 0.99), color="C0",
                     label=with_samples("p99 per top-level request", charged, 0.99))
    per_request.axhline(report.cpu_limit_s * 1000, color="C3", linestyle="--", label="CPU limit")
    per_request.set_yscale("log")  # a request's CPU and the limit are often decades apart
    per_request.set_ylabel("CPU (ms, log)")
    _legend(per_request)
    for index, (key, env) in enumerate(series.environments.items()):
        used.plot(axis.x, _per_second(env.cpu_s, series), color=f"C{index % 10}", label=key)
    used.set_ylabel(f"cores busy (of {report.node.cores})")
    _legend(used)
    figure.tight_layout()
    return figure
