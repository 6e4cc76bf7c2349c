"""The files ``edge run`` writes once a run is over: the JSON report, the OpenMetrics scrapes,
the HTML page and the plots.

The plots are drawn aside (``edge.platform.aside``: a forked child, on the second core) while
this process writes the others: drawing four figures costs about a second whatever the run's
length, writing a simulated hour's scrapes about as much, and neither needs the other. Asked for
alone, the plots are drawn here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.platform.aside import Aside
from edge.report.build import Report, write_json

if TYPE_CHECKING:
    from edge.metrics.openmetrics import OpenMetricsRecorder


def write_outputs(report: Report, *, json: str | Path | None = None, openmetrics: tuple[OpenMetricsRecorder, str | Path] | None = None,
                  html: str | Path | None = None, plots: str | Path | None = None) -> list[Path]:
    """Write each output asked for; returns the plots written. The first output that cannot be
    written raises its ``OutputError``, once the plots being drawn aside are finished with."""
    if plots is None:
        _write_others(report, json, openmetrics, html)
        return []
    plots_dir = plots
    if openmetrics is None and html is None:  # nothing worth a second process
        if json is not None:
            write_json(report, json)
        return _draw(report, plots_dir)
    with Aside(lambda: _draw(report, plots_dir)) as drawn:
        _write_others(report, json, openmetrics, html)
        return drawn.result()


def _write_others(report: Report, json: str | Path | None, openmetrics: tuple[OpenMetricsRecorder, str | Path] | None,
                  html: str | Path | None) -> None:
    if json is not None:
        write_json(report, json)
    if openmetrics is not None:
        recorder, path = openmetrics
        recorder.write(path)
    if html is not None:
        from edge.report.page import write_html

        write_html(report, html)


def _draw(report: Report, directory: str | Path) -> list[Path]:
    from edge.report.plots import write_plots  # matplotlib: only when plots are asked for

    return write_plots(report, directory)
