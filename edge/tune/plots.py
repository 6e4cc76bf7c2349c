"""``edge tune``'s PNGs: the schedules' trade-offs (``--plot``) and the power curves (``--power``),
labelled in the table's words (``edge.tune.wording``). matplotlib is imported only when a plot is
asked for: it costs half a second to import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.report.plots import save_png
from edge.tune.wording import answer, interval, value, verdict


def _bar(estimate: Any, scale: float) -> list[list[float]] | None:
    """An error bar from the interval's own bounds (asymmetric: a skewed mean's interval is), or
    none when there were too few replications for an interval."""
    if estimate.low is None or estimate.high is None:
        return None
    return [[(estimate.value - estimate.low) * scale], [(estimate.high - estimate.value) * scale]]


VERDICT_COLOURS = {"lead": "C2", "passes": "C0", "open": "C0", "paused": "C7", "fails": "C3", "dropped": "C3"}
HOLLOW = "a hollow point: too few replications for an interval, so no bar"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _points(ax: Any, xs: list[float], estimates: list[Any], scale: float, colour: str, **line: Any) -> None:
    """A line through the estimates, each with its interval's bar; a point without an interval is
    hollow, rather than drawn as sure as its neighbours."""
    ys = [e.value * scale for e in estimates]
    ax.plot(xs, ys, "-", color=colour, **line)
    for x, y, e in zip(xs, ys, estimates):
        bar = _bar(e, scale)
        ax.errorbar([x], [y], yerr=bar, fmt="o", color=colour, capsize=3, markerfacecolor=colour if bar else "white")


def write_tune_plot(result: Any, path: str | Path) -> None:
    save_png(tune_figure(result), path)


def tune_figure(result: Any) -> Any:
    """``edge tune``'s trade-offs: how long a good rollout takes against what a bad canary costs
    (errors users saw) and how surely it is caught, one point per schedule with its intervals,
    labelled with its verdict and the answer as the caption, in the table's words."""
    figure, (cost, sureness) = _pyplot().subplots(1, 2, figsize=(14, 5.5))
    figure.suptitle(f"edge tune: {result.scenario}, rollout of {result.service} (up to {result.replications} replications each; "
                    f"bars: {result.confidence:.0%} intervals)")
    for index, c in enumerate(result.candidates):
        if c.rollout_time_s.value is None:
            continue  # never promoted: no place on the time axis
        words, kind = verdict(index, result)
        colour = VERDICT_COLOURS[kind]
        x, xerr = c.rollout_time_s.value / 60, _bar(c.rollout_time_s, 1 / 60)
        for ax, estimate, scale in ((cost, c.errors_seen, 1.0), (sureness, c.caught, 100.0)):
            if estimate.value is None:
                continue
            y, yerr = estimate.value * scale, _bar(estimate, scale)
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color=colour, capsize=3,
                        markerfacecolor=colour if xerr and yerr else "white")
            ax.annotate(f"#{index} {words}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, color=colour)
    cost.set_xlabel("good canary: minutes to promotion")
    cost.set_ylabel("bad canary: requests answered with its errors (after fallback)")
    sureness.set_xlabel("good canary: minutes to promotion")
    sureness.set_ylabel("bad canary: rolled back (%)")
    for ax in (cost, sureness):
        ax.grid(True, alpha=0.3)
    figure.text(0.01, 0.01, f"{answer(result)}.\n#N: the table's rows, with their verdicts; {HOLLOW} on one axis.", fontsize=8)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


def write_power_plot(result: Any, path: str | Path) -> None:
    save_png(power_figure(result), path)


def power_figure(result: Any) -> Any:
    """``edge tune --power``: each schedule's P(caught) and time to rollback as the bug grows, with
    their intervals, the target P(caught) as a line and each schedule's false rollbacks, with
    their interval, in its label."""
    figure, (caught, time) = _pyplot().subplots(1, 2, figsize=(14, 5.5))
    figure.suptitle(f"edge tune --power: {result.scenario}, rollout of {result.service} ({result.replications} replications per point; "
                    f"bars: {result.confidence:.0%} intervals)")
    axis = {"errors": "bad canary's error ratio (%)", "latency": "bad canary's latency factor", "cpu": "bad canary's CPU factor"}[result.kind]
    scale = 100.0 if result.kind == "errors" else 1.0
    sizes = sorted({p.size * scale for curve in result.curves for p in curve.points})
    # A grid is usually geometric (0.2, 0.5, 1, 2%): a log axis spaces it evenly. Schedules that
    # agree at a point would hide one another: each is drawn a little to the side of the point.
    geometric = sizes[0] > 0 and sizes[-1] >= 4 * sizes[0]
    middle = (len(result.curves) - 1) / 2
    for index, curve in enumerate(result.curves):
        false = curve.false_rollback
        label = f"#{index}: false rollback {value(false, as_percent=True)} {interval(false, as_percent=True) or '(too few for an interval)'}"
        side = index - middle
        if geometric:
            xs = [p.size * scale * 1.025 ** side for p in curve.points]
        else:
            xs = [p.size * scale + side * 0.006 * (sizes[-1] - sizes[0]) for p in curve.points]
        _points(caught, xs, [p.caught for p in curve.points], 100.0, f"C{index}", label=label)
        timed = [(x, p.time_to_rollback_s) for x, p in zip(xs, curve.points) if p.time_to_rollback_s.value is not None]
        if timed:
            _points(time, [x for x, _ in timed], [e for _, e in timed], 1.0, f"C{index}", label=f"#{index}")
    caught.axhline(result.target * 100, color="grey", linestyle="--", label=f"target {result.target:.0%}")
    caught.set_ylabel("rolled back (%)")
    time.set_ylabel("seconds to rollback (when caught)")
    for ax in (caught, time):
        if geometric:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(sizes, [f"{size:g}" for size in sizes])
        ax.set_xlabel(axis)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figure.text(0.01, 0.01, f"#N: the table's rows; schedules are drawn slightly apart where they agree; {HOLLOW}.", fontsize=8)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure
