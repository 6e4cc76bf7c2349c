"""The browser side of the dashboards: uPlot (vendored, ``static/uplot``) and edge's chart script
(``static/charts.js``), inlined into a page's head so that the page needs nothing else: the HTML
report opens offline, and ``edge serve``'s dashboard loads without a second request.

A page gives ``EdgeCharts.draw`` sections of chart specs (``edge/metrics/charts.py`` builds them);
``EdgeCharts.points()`` counts each chart's data points (the browser tests read it).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).with_name("static")


@cache
def head() -> str:
    """``<style>`` and ``<script>`` elements: uPlot's and edge's."""
    css = (STATIC / "uplot" / "uPlot.min.css").read_text()
    return "\n".join([
        f"<style>{css}\n{(STATIC / 'charts.css').read_text()}</style>",
        f"<script>{(STATIC / 'uplot' / 'uPlot.iife.min.js').read_text()}</script>",
        f"<script>{(STATIC / 'charts.js').read_text()}</script>",
    ])


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
