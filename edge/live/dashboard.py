"""``edge serve``'s dashboard: a page (``/dashboard``) that polls the run's own data
(``/dashboard.json``) every few seconds and draws it with the vendored uPlot, so a running server
can be watched with nothing but a browser: no Prometheus, no Grafana, no internet.

Every ``INTERVAL`` seconds the dashboard reads the run's recorders the way a simulation's report
does (``SeriesRecorder``: traffic, latency, canary weights, CPU), plus what only a live server has
to show as it goes: per-binding latency and the actors' mailboxes and in-flight calls. It keeps
the last ``KEEP`` readings (ten minutes), so its memory does not grow with the run.

A rollout shows twice: a panel of its state now (phase, step, weight, the last analysis's
checks), and its steps, rollbacks and the operator's pauses as marked lines on every chart, as
the timeline's events are.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any

import trio

from edge.engine.rollout import MARKED_EVENTS, RolloutController
from edge.engine.timeline import TimelineEntry
from edge.metrics.charts import chart, quantile, sections
from edge.metrics.histogram import Bins
from edge.metrics.recorders import RunMetrics
from edge.metrics.series import SeriesRecorder
from edge.platform.clock import ModelClock
from edge.platform.pages import head

INTERVAL = 2.0
KEEP = 300


class Dashboard:
    def __init__(self, metrics: RunMetrics, clock: ModelClock, timeline: list[TimelineEntry], cpu_limit_s: float,
                 rollouts: dict[str, RolloutController] | None = None) -> None:
        self.metrics = metrics
        self.rollouts = {} if rollouts is None else rollouts  # filled in place when the rollouts are scheduled
        self.clock = clock
        self.timeline = timeline
        self.cpu_limit_s = cpu_limit_s
        self.started = time.time() - clock.now()  # epoch seconds of the clock's 0: the timeline's events on the time axis
        # until=0: the recorder schedules nothing itself; sample() reads it on this dashboard's beat
        self.recorder = SeriesRecorder(metrics, clock, INTERVAL, until=0.0)
        self.stamps: list[float] = []
        self.bindings: dict[str, dict[str, list[Any]]] = {}  # path -> column -> values
        self.actors: dict[str, dict[str, list[Any]]] = {}  # service@environment -> column -> values
        self._bins: dict[str, Bins] = {}
        self._counts: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            await trio.sleep(INTERVAL)
            self.sample()

    def sample(self) -> None:
        self.recorder.take()
        self.stamps.append(round(time.time(), 3))
        points = len(self.stamps) - 1

        paths: dict[str, list[Any]] = {}
        for (caller, binding, target, *_), histogram in self.metrics.bindings.items():
            paths.setdefault(f"{caller} → {binding} → {target}", []).append(histogram)
        for path, histograms in paths.items():
            now = sum((h.bins() for h in histograms), Bins())
            since = now - self._bins.get(path, Bins())
            self._bins[path] = now
            columns = self.bindings.setdefault(path, {"calls": [0.0] * points, "n": [0] * points, "p50": [0.0] * points, "p99": [0.0] * points})
            columns["calls"].append(round(since.count / INTERVAL, 3))
            columns["n"].append(since.count)
            columns["p50"].append(since.quantile(0.5) if since.count else 0.0)
            columns["p99"].append(since.quantile(0.99) if since.count else 0.0)

        for key, stats in self.metrics.environments.items():
            columns = self.actors.setdefault(str(key), {name: [0] * points for name in ("mailbox", "inflight", "shed", "cold")})
            columns["mailbox"].append(stats.mailbox_depth())
            columns["inflight"].append(stats.inflight)
            columns["shed"].append(self._delta(f"{key}.shed", stats.shed))
            columns["cold"].append(self._delta(f"{key}.cold", sum(stats.cold_starts.values())))
        self._trim()

    def _delta(self, key: str, value: float) -> float:
        before = self._counts.get(key, value)
        self._counts[key] = value
        return round((value - before) / INTERVAL, 3)

    def _trim(self) -> None:
        extra = len(self.stamps) - KEEP
        if extra <= 0:
            return
        series = self.recorder.series
        columns = [self.stamps, series.end_s, *vars_of(series.clients), *series.weights.values()]
        columns += [column for env in series.environments.values() for column in vars_of(env)]
        columns += [column for group in (*self.bindings.values(), *self.actors.values()) for column in group.values()]
        for column in columns:
            del column[:extra]

    def snapshot(self) -> dict[str, Any]:
        series = self.recorder.series
        page = sections(series, self.cpu_limit_s) if self.stamps else []
        if self.bindings:
            page.insert(2, {"title": "Per-binding latency", "charts": [
                chart("Binding calls per second", "/s", *((path, c["calls"]) for path, c in self.bindings.items())),
                chart("Binding latency p50 / p99", "ms", *(quantile(f"{name} {path}", c[name], c["n"], q)
                                                           for path, c in self.bindings.items() for name, q in (("p50", 0.5), ("p99", 0.99)))),
            ]})
        if self.actors:
            page.append({"title": "Actors", "charts": [
                chart("Mailbox depth", "", *((key, c["mailbox"]) for key, c in self.actors.items())),
                chart("In-flight calls", "", *((key, c["inflight"]) for key, c in self.actors.items())),
                chart("Shed per second", "/s", *((key, c["shed"]) for key, c in self.actors.items())),
                chart("Cold starts per second", "/s", *((key, c["cold"]) for key, c in self.actors.items())),
            ]})
        events = [{"at": self.started + e.at_s, "label": f"{e.action} {e.target}"} for e in self.timeline]
        rollouts = []
        for service, controller in sorted(self.rollouts.items()):
            r = controller.report()
            origin = self.started + controller.origin
            events += [{"at": origin + e.at_s, "label": f"{service} {e.event} {e.weight:g}%"}
                       for e in r.events if e.event in MARKED_EVENTS]
            analysed = [e for e in r.events if e.checks]
            rollouts.append({
                "service": service, "canary": r.canary, "stable": r.stable, "phase": r.phase, "step": r.step, "steps": r.steps,
                "weight": r.weight, "failures": r.failures, "failure_limit": r.failure_limit,
                "last": None if not analysed else {"at": origin + analysed[-1].at_s, "event": analysed[-1].event,
                                                   "checks": [{"shown": c.shown(), "passed": c.passed} for c in analysed[-1].checks]},
            })
        return {"time": True, "x": self.stamps, "events": events, "sections": page, "rollouts": rollouts}

    def json(self) -> bytes:
        return json.dumps(self.snapshot(), separators=(",", ":")).encode()


def vars_of(struct: Any) -> list[list[Any]]:
    return [getattr(struct, field) for field in struct.__struct_fields__]


PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edge serve: dashboard</title>
<link rel="icon" href="data:,">
{{head}}
</head><body>
<h1>edge serve: {{name}}</h1>
<p class="muted">The last {KEEP * INTERVAL / 60:g} minutes, read every {INTERVAL:g} s from the running server
(<a href="/dashboard.json">dashboard.json</a>, <a href="/metrics">/metrics</a>). <span id="status"></span></p>
<div id="rollouts"></div>
<div id="charts"></div>
<script>
(function () {{
  var status = document.getElementById("status");
  function cell(row, text, className) {{
    var td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
  }}
  function rollouts(list) {{
    var node = document.getElementById("rollouts");
    node.textContent = "";
    if (!list || !list.length) return;
    var title = document.createElement("h2");
    title.textContent = "Rollouts";
    node.appendChild(title);
    var table = document.createElement("table");
    var head = table.createTHead().insertRow();
    ["service", "phase", "step", "canary weight", "failed analyses", "last analysis"].forEach(function (h) {{
      var th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    }});
    var body = table.createTBody();
    list.forEach(function (r) {{
      var row = body.insertRow();
      cell(row, r.service + " (" + r.canary + " against " + r.stable + ")");
      cell(row, r.phase, r.phase === "rolled back" ? "fail" : r.phase === "promoted" ? "pass" : "");
      cell(row, r.step ? r.step + " of " + r.steps : "not started");
      cell(row, r.weight + "%");
      cell(row, r.failures + " (rolls back at " + r.failure_limit + ")");
      cell(row, r.last ? new Date(r.last.at * 1000).toLocaleTimeString() + " " + r.last.event + ": " +
        r.last.checks.map(function (c) {{ return (c.passed ? "✓ " : "✗ ") + c.shown; }}).join("; ") : "none yet");
    }});
    node.appendChild(table);
  }}
  function poll() {{
    fetch("/dashboard.json", {{cache: "no-store"}}).then(function (r) {{ return r.json(); }}).then(function (page) {{
      rollouts(page.rollouts);
      EdgeCharts.draw(document.getElementById("charts"), page);
      status.textContent = page.x.length ? "Updated " + new Date().toLocaleTimeString() + "." : "Waiting for the first reading.";
    }}).catch(function (e) {{ status.textContent = "Server unreachable: " + e; }});
  }}
  poll();
  setInterval(poll, {INTERVAL * 1000:.0f});
}})();
</script>
</body></html>
"""


def page(name: str) -> str:
    return PAGE.replace("{head}", head()).replace("{name}", escape(name))
