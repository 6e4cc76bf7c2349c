"""Writes the dashboards of ``edge/metrics/panels.py``: Grafana's JSON and Prometheus' console pages.

The panels (title, PromQL, unit, kind) are declared once, as data, in ``edge/metrics/panels.py``;
this script lays them out twice:

* ``grafana/dashboards/*.json``, the Grafana dashboards (datasource, legend and layout
  boilerplate that five dashboards would otherwise repeat forty times);
* ``grafana/consoles/*.html``, Prometheus console templates that Prometheus serves itself
  (``--web.console.templates=grafana/consoles --web.console.libraries=grafana/console_libraries``),
  for machines without Grafana. Their charts are drawn by the console library Prometheus ships
  (``/classic/static/js/prom_console.js``, Rickshaw); the page substitutes the queries' variables.

``tests/test_dashboards.py`` fails if the committed files differ from what this script writes, so
after changing a panel run::

    python grafana/generate.py          # rewrite grafana/dashboards/*.json and grafana/consoles/*.html
    python grafana/generate.py --check  # exit 1 if they are stale

Conventions (the PromQL's own are in ``edge/metrics/panels.py``):

* every panel and query uses the provisioned datasource ``DATASOURCE`` (uid ``edge-prometheus``);
* rates use ``$__rate_interval``: Grafana derives it from the datasource's ``timeInterval`` (the 5 s
  scrape interval), so a window always holds enough samples for ``rate()``; a console page uses its
  ``window`` URL parameter (default 1m);
* both open on the last ``RANGE`` (15 minutes); a console page takes another from its ``range`` URL
  parameter (``?range=1h``);
* ``edge`` must be importable (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from edge.metrics.panels import BOARDS, Board, Panel, Variable

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
CONSOLES = HERE / "consoles"

DATASOURCE = {"type": "prometheus", "uid": "edge-prometheus"}  # = grafana/provisioning/datasources/prometheus.yml
TAG = "edge"
RANGE = "15m"
"""The time range both renderings open on: a fresh ``edge serve`` is minutes old (an hour drew it as a sliver)."""


# -- Grafana JSON model ------------------------------------------------------------------------------


def target(expr: str, legend: str = "", ref: str = "A", *, heatmap: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": True,
        "refId": ref,
    }
    if heatmap:
        t["format"] = "heatmap"  # Grafana turns the cumulative le buckets into per-bucket counts
        t["legendFormat"] = "{{le}}"
    return t


def targets(panel: Panel) -> list[dict[str, Any]]:
    return [target(q.expr, q.legend, chr(ord("A") + i), heatmap=panel.kind == "heatmap") for i, q in enumerate(panel.queries)]


def timeseries(panel: Panel) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "lineInterpolation": "stepAfter" if panel.step else "linear",
        "lineWidth": 1,
        "fillOpacity": 20 if panel.stack else 0,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if panel.stack else "none"},
    }
    defaults: dict[str, Any] = {"unit": panel.unit, "custom": custom}
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    return {
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    return {
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
        },
    }


def heatmap(panel: Panel) -> dict[str, Any]:
    return {
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,  # the buckets come from Prometheus, already computed
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64, "reverse": False},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "yAxis": {"axisPlacement": "left", "unit": panel.unit, "reverse": False},
        },
    }


KINDS = {"timeseries": timeseries, "stat": stat, "heatmap": heatmap}


def grafana_panel(panel: Panel) -> dict[str, Any]:
    return {
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "targets": targets(panel),
        **KINDS[panel.kind](panel),
    }


def variable(var: Variable) -> dict[str, Any]:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": var.query,
        "query": {"query": var.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change: new services or environments show up
        "multi": True,
        "includeAll": True,
        "allValue": var.all_value,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
    }


def dashboard(board: Board) -> dict[str, Any]:
    """The dashboard model; panels are laid out left to right in rows of 24 columns, in order."""
    x = y = row_height = 0
    laid_out = []
    for number, panel in enumerate(board.panels, start=1):
        w, h = panel.w, panel.h
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append({"id": number, **grafana_panel(panel), "gridPos": {"h": h, "w": w, "x": x, "y": y}})
        x += w
        row_height = max(row_height, h)
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,  # shared crosshair: compare panels at one instant
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": f"now-{RANGE}", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "10s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {"title": "edge dashboards", "type": "dashboards", "tags": [TAG], "asDropdown": True, "includeVars": True, "keepTime": True}
        ],
        "templating": {"list": [variable(var) for var in board.variables]},
        "panels": laid_out,
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(dashboard(board), indent=2, ensure_ascii=False) + "\n" for name, board in BOARDS.items()}



# -- Prometheus console pages ------------------------------------------------------------------------


def escape(text: str) -> str:
    """``text`` for HTML, braces as character references: the page is a Go template, where ``{{``
    would start an action (Grafana's legends are ``{{label}}``)."""
    return html.escape(text, quote=True).replace("{", "&#123;").replace("}", "&#125;")


def attribute(value: Any) -> str:
    """``value`` as JSON, for an HTML attribute the page's script parses."""
    return escape(json.dumps(value, ensure_ascii=False))


def nav(current: str) -> str:
    links = [f'<a href="{name}.html">{escape(BOARDS[name].title)}</a>' if name != current else f"<b>{escape(BOARDS[name].title)}</b>"
             for name in BOARDS]
    return f"<nav>{' '.join(links)}</nav>"


def console_panel(panel: Panel) -> str:
    queries = [{"expr": q.expr, "legend": q.legend} for q in panel.queries]
    return (
        f'<div class="edge-panel" style="width: {panel.w / 24:.2%}">\n'
        f'<h3 title="{escape(panel.description)}">{escape(panel.title)}</h3>\n'
        f'<div class="edge-chart" data-kind="{panel.kind}" data-unit="{panel.unit}" data-stack="{str(panel.stack).lower()}" '
        f'data-min="{attribute(panel.minimum)}" data-queries="{attribute(queries)}"'
        + (f' data-needs="{escape(panel.needs)}"' if panel.needs else "") + "></div>\n"
        "</div>"
    )


def console(name: str, board: Board) -> str:
    variables = [{"name": v.name, "query": v.query, "all": v.all_value} for v in board.variables]
    return "\n".join([
        "{{/* Written by grafana/generate.py from edge/metrics/panels.py: edit those, then run it. */}}",
        f'{{{{ template "edge_head" {json.dumps(board.title)} }}}}',
        nav(name),
        f"<h1>{escape(board.title)}</h1>",
        f"<p>{escape(board.description)}</p>",
        f'<div id="edge-board" class="edge-panels" data-range="{RANGE}" data-variables="{attribute(variables)}">',
        *(console_panel(panel) for panel in board.panels),
        "</div>",
        '{{ template "edge_tail" }}',
        "",
    ])


def render_consoles() -> dict[str, str]:
    """File name -> console template of every dashboard, and an index page linking them."""
    pages = {f"{name}.html": console(name, board) for name, board in BOARDS.items()}
    items = "\n".join(f'<li><a href="{name}.html">{escape(board.title)}</a>: {escape(board.description)}</li>'
                      for name, board in BOARDS.items())
    pages["index.html"] = "\n".join([
        "{{/* Written by grafana/generate.py. */}}",
        '{{ template "edge_head" "edge dashboards" }}',
        "<h1>edge dashboards</h1>",
        f"<ul>\n{items}\n</ul>",
        '<div id="edge-board" data-variables="[]"></div>',
        '{{ template "edge_tail" }}',
        "",
    ])
    return pages


def outputs() -> dict[Path, str]:
    return {**{DASHBOARDS / n: t for n, t in render().items()}, **{CONSOLES / n: t for n, t in render_consoles().items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if grafana/dashboards/*.json or grafana/consoles/*.html are stale")
    args = parser.parse_args()
    files = outputs()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(HERE.parent)} (run python grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
