"""The HTML report (``edge run --html``, ``edge plot --html``): one self-contained file.

Tables (summary, thresholds, environments, bindings, routers, timeline, rollouts) are written here
as HTML, so they read without JavaScript; the charts of the run's series are drawn in the browser by
uPlot, inlined with the data (``edge.platform.pages``), with the timeline's events and the rollouts'
decisions marked. Nothing is fetched: the file opens offline. Everything comes from the report, so
a JSON report from an earlier run gives the same page.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any, Iterable

from edge.engine.rollout import MARKED_EVENTS
from edge.metrics.charts import sections
from edge.platform.files import write_output
from edge.platform.pages import head, script_json
from edge.platform.units import format_duration
from edge.report.build import Report


def write_html(report: Report, path: str | Path) -> None:
    write_output(path, render(report).encode())


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head_row = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head_row}</tr>{body}</table>" if body else '<p class="muted">none</p>'


def _summary(report: Report) -> str:
    c = report.clients
    rows = [
        ("scenario", escape(report.scenario)), ("seed", report.seed),
        ("simulated", format_duration(report.simulated_s) + f" (traffic {format_duration(report.duration_s)})"),
        ("top-level requests", f"{c.requests:,}"), ("error ratio (what users saw)", f"{c.error_ratio:.3%}"),
        ("latency p50 / p99 / max", f"{_ms(c.latency_s.p50)} / {_ms(c.latency_s.p99)} / {_ms(c.latency_s.max)}"),
        ("timeouts / dropped / unanswered", f"{c.timeouts:,} / {sum(c.dropped.values()):,} / {c.unanswered:,}"),
        ("fallbacks (retries)", f"{c.retries:,}"),
        ("CPU per request p50 / p99 (limit)", f"{_ms(c.cpu_per_request_s.p50)} / {_ms(c.cpu_per_request_s.p99)} ({_ms(report.cpu_limit_s)})"),
        ("cores busy", f"{report.node.cpu_utilisation:.1%} of {report.node.cores}"),
    ]
    if report.stopped_early is not None:
        rows.append(("stopped early", f'<span class="fail">at {format_duration(report.stopped_early.at_s)}: '
                                      f"{escape(report.stopped_early.threshold)}</span>"))
    return _table(("", ""), rows)


def _thresholds(report: Report) -> str:
    return _table(("threshold", "measured", "result"), (
        (escape(t.threshold), escape(t.shown()), '<span class="pass">pass</span>' if t.passed else '<span class="fail">FAIL</span>')
        for t in report.thresholds))


def _environments(report: Report) -> str:
    return _table(("environment", "version", "answers", "2xx", "4xx", "5xx", "p50", "p99", "max", "queue p99", "CPU s", "shed",
                   "cold starts", "exceptions"), (
        (escape(key), escape(e.version), f"{e.requests:,}", *(f"{e.status.get(k, 0):,}" for k in ("2xx", "4xx", "5xx")),
         _ms(e.latency_s.p50), _ms(e.latency_s.p99), _ms(e.latency_s.max), _ms(e.queue_wait_s.p99), f"{e.cpu_s:.3g}",
         f"{e.shed:,}", f"{e.cold_starts:,}", f"{e.exceptions:,}")
        for key, e in report.environments.items()))


def _bindings(report: Report) -> str:
    return _table(("caller → binding → target", "environment", "status", "calls", "p50", "p99", "max"), (
        (escape(f"{b.caller} → {b.binding} → {b.target}"), escape(f"{b.environment} v{b.version}"), b.status_class, f"{b.calls:,}",
         _ms(b.latency_s.p50), _ms(b.latency_s.p99), _ms(b.latency_s.max))
        for b in report.bindings))


def _routers(report: Report) -> str:
    def weights(router: Any) -> str:
        return ", ".join(f"{escape(env)} {w:g}%" for env, w in router.weights.items())

    return _table(("service", "weights at the end", "fallbacks", "denied by the budget"), (
        (escape(service), weights(r), escape(", ".join(f"{k}: {n:,}" for k, n in r.retries.items()) or "0"),
         escape(", ".join(f"{k}: {n:,}" for k, n in r.retries_denied.items()) or "0"))
        for service, r in report.routers.items()))


def _timeline(report: Report) -> str:
    return _table(("at", "action", "target", "detail"), (
        (format_duration(e.at_s), escape(e.action), escape(e.target), escape(e.detail)) for e in report.timeline))


def _rollouts(report: Report) -> str:
    parts = []
    for service, r in report.rollouts.items():
        ended = format_duration(r.ended_at_s) if r.ended_at_s is not None else "not ended"
        parts.append(f"<h3>{escape(service)}: {escape(r.canary)} against {escape(r.stable)}, {escape(r.phase)} ({ended})</h3>")
        parts.append(_table(("", ""), (("weight", f"{r.weight:g}%"), ("steps passed", r.steps_passed), ("failed analyses", r.failures),
                                       ("canary answers / 5xx", f"{r.canary_requests:,} / {r.canary_errors:,}"))))
        parts.append(_table(("at", "event", "weight", "detail"), (
            (format_duration(e.at_s), escape(e.event), f"{e.weight:g}%", escape(e.detail)) for e in r.events)))
    return "".join(parts) or '<p class="muted">none</p>'


def chart_data(report: Report) -> dict[str, Any]:
    events = [{"at": e.at_s, "label": f"{e.action} {e.target}"} for e in report.timeline]
    events += [{"at": e.at_s, "label": f"{service} {e.event} {e.weight:g}%"}
               for service, r in report.rollouts.items() for e in r.events if e.event in MARKED_EVENTS]
    return {"x": report.series.end_s, "events": events, "sections": sections(report.series, report.cpu_limit_s)}


def render(report: Report) -> str:
    title = f"edge run: {report.scenario} (seed {report.seed})"
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        head(),
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        "<h2>Summary</h2>", _summary(report),
        "<h2>Thresholds</h2>", _thresholds(report),
        '<div id="charts"></div>',
        "<h2>Service environments</h2>", _environments(report),
        "<h2>Bindings</h2>", _bindings(report),
        "<h2>Routers</h2>", _routers(report),
        "<h2>Timeline</h2>", _timeline(report),
        "<h2>Rollouts</h2>", _rollouts(report),
        f'<script type="application/json" id="edge-data">{script_json(chart_data(report))}</script>',
        '<script>EdgeCharts.draw(document.getElementById("charts"), JSON.parse(document.getElementById("edge-data").textContent));</script>',
        "</body></html>",
        "",
    ])
