"""Prometheus' console pages (grafana/consoles) in a real headless Chromium, served by a real
Prometheus over a backfilled run: the time range they open on, and their axes' labels (issue 28,
item 11: an hour drew a fresh serve as a sliver, a 2% ratio read "20m", 0 read "0.000e+0")."""

from __future__ import annotations

import re
import time

from browser import chromium, open_page
from test_browser import CONSOLE_POINTS, backfilled_prometheus
from test_dashboards import EXPECTED

# Per chart: its panel's unit, its kind and the y axis' tick labels as drawn.
CHARTS = ("PromConsole._graph_registry.map(g => [g.params.node.dataset.unit, g.params.node.dataset.kind, "
          "[...g.graphTd.querySelectorAll('.y_ticks text')].map(t => t.textContent)])")
# What the formatter of a chart of a unit (arguments[0]) makes of numbers (arguments[1]); false if its hover labels differ.
FORMAT = ("const g = PromConsole._graph_registry.find(g => g.params.node.dataset.unit === arguments[0] "
          "&& g.params.node.dataset.kind !== 'heatmap');"
          "return g.params.yHoverFormatter === g.params.yAxisFormatter && arguments[1].map(x => g.params.yAxisFormatter(x));")
LABEL = {  # what every tick label of a unit reads as: a number (no exponent) and the unit
    "percentunit": r"\d+(\.\d+)?%", "percent": r"\d+(\.\d+)?%", "s": r"\d+(\.\d+)?[mµn]?s", "reqps": r"\d+(\.\d+)?[kMG]?/s",
    "short": r"\d+(\.\d+)?[kMG]?",
}
FORMATTED = {  # each unit's formatter at the edges of its prefixes and digits
    "percentunit": [(0, "0%"), (0.02, "2%"), (0.025, "2.5%"), (0.00001, "0.001%"), (1, "100%"), (0.12345, "12.3%")],
    "percent": [(0, "0%"), (0.5, "0.5%"), (50, "50%"), (99.99, "100%")],
    "s": [(0, "0s"), (0.000999, "999µs"), (0.001, "1ms"), (0.0025, "2.5ms"), (0.999, "999ms"), (1, "1s"), (1.5, "1.5s"),
          (0.0000005, "500ns"), (4000, "4000s")],
    "reqps": [(0, "0/s"), (0.5, "0.5/s"), (999, "999/s"), (1000, "1k/s"), (1500, "1.5k/s"), (2_500_000, "2.5M/s")],
    "short": [(0, "0"), (3, "3"), (1234, "1.23k"), (0.25, "0.25")],
}


def durations(browser) -> set[float]:
    return set(browser.execute_script("return PromConsole._graph_registry.map(g => g.params.duration);"))


def test_console_pages_open_on_the_last_15_minutes_or_the_range_asked(tmp_path):
    prometheus, when = backfilled_prometheus(tmp_path)  # a 3-minute run that ended seconds ago
    page = f"{prometheus.url}/consoles/overview.html"
    try:
        with chromium() as browser:
            for suffix, duration in (("", 900), ("?range=5m", 300), ("?range=1h", 3600), ("?range=2x", 900), ("?range=0", 900),
                                     (f"?range=1h{when}", 240)):  # prom_console's own fragment wins
                opened = time.time()
                open_page(browser, page + suffix, CONSOLE_POINTS)
                assert durations(browser) == {duration}, suffix
                ends = browser.execute_script("return PromConsole._graph_registry.map(g => g.params.endTime);")
                if not suffix.endswith(when):
                    assert all(opened - 5 <= end <= time.time() + 5 for end in ends), (suffix, ends, opened)  # ending now
    finally:
        prometheus.stop()


def test_console_axes_label_ticks_with_their_unit_and_ratios_as_percents(tmp_path):
    prometheus, when = backfilled_prometheus(tmp_path)
    seen: dict[str, list[str]] = {}
    formatted: dict[str, list[str]] = {}
    try:
        with chromium() as browser:
            for name in sorted(EXPECTED):
                open_page(browser, f"{prometheus.url}/consoles/{name}.html{when}", CONSOLE_POINTS)
                for unit, kind, ticks in browser.execute_script(f"return {CHARTS};"):
                    if kind != "heatmap" and unit not in formatted:
                        # The formatter this chart uses, at its unit's boundaries; hover labels read the same.
                        formatted[unit] = browser.execute_script(FORMAT, unit, [x for x, _ in FORMATTED[unit]])
                    unit = "reqps" if kind == "heatmap" else unit  # a bucket's rate, drawn as a line
                    for tick in ticks:
                        assert not re.search(r"\de[+-]?\d", tick), f"{name}: {tick!r} in exponent form"
                        assert re.fullmatch(LABEL[unit], tick), f"{name}: a {unit} chart's tick {tick!r}"
                    seen.setdefault(unit, []).extend(ticks)
    finally:
        prometheus.stop()
    assert formatted == {unit: [label for _, label in cases] for unit, cases in FORMATTED.items()}
    assert {unit for unit, ticks in seen.items() if ticks} == set(LABEL), seen  # (a chart of zeros alone has no ticks)
    assert any(tick != "0%" for tick in seen["percentunit"]), seen["percentunit"]  # a ratio's scale, read as percents
