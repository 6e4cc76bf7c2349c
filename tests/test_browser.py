"""The dashboards in a real headless Chromium: Prometheus' console pages over a backfilled run, the
HTML report of `edge run --html`, and the live dashboard of `edge serve`.

Each page must load with no error in the browser's console and every chart on it must have data
points; a screenshot of each is taken (into the test's tmp_path; ``docs/screenshots.py`` writes
the README's). Without chromium, chromedriver or prometheus the tests fail, not skip.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browser import chromium, errors, open_page, screenshot
from live import serve
from test_backfill import VIRTUAL, edge
from test_dashboards import EXPECTED, GRAFANA, SCENARIO, Prometheus, Traffic

from edge.live.dashboard import INTERVAL
from edge.metrics.panels import BOARDS

# One count per chart of a console page: the points prom_console drew (null steps are gaps); -1 for
# a chart that needs more than a backfilled virtual run has (``Panel.needs``: edge serve --traffic).
CONSOLE_POINTS = ("PromConsole._graph_registry.map(g => g.params.node.dataset.needs ? -1 : g.rickshawGraph ? "
                  "g.rickshawGraph.series.reduce((n, s) => n + s.data.filter(p => p.y !== null).length, 0) : 0)")


def backfilled_prometheus(workdir: Path) -> tuple[Prometheus, str]:
    """A real Prometheus serving grafana/consoles over a 3-minute virtual run backfilled into its
    storage; and the URL fragment that sets the console pages' time range to that run."""
    binary = shutil.which("prometheus")
    if binary is None or shutil.which("promtool") is None:
        pytest.fail("prometheus and promtool are not on PATH: apt-get install prometheus (CI does)")
    (workdir / "virtual.toml").write_text(VIRTUAL)
    end = time.time() - 5
    ran = edge("run", str(workdir / "virtual.toml"), "-q", "--duration", "3m", "--openmetrics", str(workdir / "run.om"),
               "--openmetrics-start", str(end - 180))
    assert ran.returncode == 0, ran.stderr
    blocks = edge("backfill", str(workdir / "run.om"), str(workdir / "data"))
    assert blocks.returncode == 0, blocks.stderr
    prometheus = Prometheus(binary, workdir, "127.0.0.1:9", f"--web.console.templates={GRAFANA / 'consoles'}",
                            f"--web.console.libraries={GRAFANA / 'console_libraries'}")

    def loaded() -> bool:
        return bool(prometheus.query("edge_requests_total")[0])

    prometheus.wait_until("Prometheus to load the backfilled blocks", loaded, time.monotonic() + 30)
    return prometheus, "#pctc" + urllib.parse.quote(json.dumps({"duration": 240, "endTime": end + 10}))


def test_console_pages_over_a_backfilled_run_load_in_chromium_with_data_in_every_chart(tmp_path):
    prometheus, when = backfilled_prometheus(tmp_path)
    try:
        with chromium() as browser:
            seconds, links = open_page(browser, f"{prometheus.url}/consoles/index.html",
                                       "[document.querySelectorAll('li a').length]")
            assert links == [len(EXPECTED)]
            for name in sorted(EXPECTED):
                seconds, points = open_page(browser, f"{prometheus.url}/consoles/{name}.html{when}", CONSOLE_POINTS)
                charts = browser.execute_script("return document.querySelectorAll('.edge-chart').length;")
                assert len(points) == charts > 0, f"{name}: {len(points)} graphs for {charts} panels"
                needing = [index for index, panel in enumerate(BOARDS[name].panels) if panel.needs]
                assert [index for index, n in enumerate(points) if n == -1] == needing, name  # the load generator's, on overview
                # "no series" only, and always, where the chart says what it needs
                found = browser.execute_script(
                    "return [...document.querySelectorAll('.prom_graph_error')]"
                    ".map(e => Boolean(e.closest('.edge-panel').querySelector('[data-needs]')));")
                assert found == [True] * len(needing), f"{name}: a chart found no series: {found}"
                print(f"console {name}: {seconds:.2f}s to every chart drawn, points per chart {points}")
                assert screenshot(browser, tmp_path / f"console-{name}.png").stat().st_size > 10_000
    finally:
        prometheus.stop()


REPORT_POINTS = "EdgeCharts.points()"


def test_html_report_opens_offline_in_chromium_with_data_in_every_chart(tmp_path):
    # The dashboards' scenario: a flaky canary, a rollout that holds, a timeline event at 0 s.
    (tmp_path / "virtual.toml").write_text(VIRTUAL)
    page, saved = tmp_path / "report.html", tmp_path / "report.json"
    ran = edge("run", str(tmp_path / "virtual.toml"), "-q", "--duration", "1m", "--html", str(page), "--json", str(saved))
    assert ran.returncode == 0, ran.stderr
    text = page.read_text()
    assert not re.findall(r"\b(?:src|href)\s*=", text)  # self-contained: nothing to load
    for section in ("Summary", "Thresholds", "Service environments", "Bindings", "Routers", "Timeline", "Rollouts"):
        assert f"<h2>{section}</h2>" in text
    assert "app@canary" in text and "weights" in text  # the timeline event, in the table
    # `edge plot --html` from the saved JSON writes the same page.
    again = edge("plot", str(saved), "--html", str(tmp_path / "again.html"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.html").read_bytes() == page.read_bytes()

    with chromium() as browser:
        seconds, points = open_page(browser, page.as_uri(), REPORT_POINTS)
        titles = browser.execute_script("return [...document.querySelectorAll('.u-title')].map(t => t.textContent);")
        events = browser.execute_script("return JSON.parse(document.getElementById('edge-data').textContent).events;")
        print(f"report ({page.stat().st_size:,} bytes): {seconds:.2f}s to every chart drawn, points per chart {points}")
        legend = hover_legend(browser, "Top-level latency")
        assert legend["p50"].endswith(")") and " ms (n " in legend["p50"], legend  # a quantile's value with its samples
        screenshot(browser, tmp_path / "report.png")
    assert len(points) == len(titles) == 8, titles  # traffic, latency, canary and CPU: two charts each
    assert "Weight by environment" in titles
    assert {"at": 0.0, "label": "weights app"} in events
    assert any(e["label"].startswith("app start") for e in events), events  # the rollout's start, marked too


def hover_legend(browser, title: str) -> dict[str, str]:
    """The legend of the chart titled ``title`` with the cursor over the middle of its plot: label -> value."""
    labels, values = browser.execute_script("""
      const chart = [...document.querySelectorAll('.uplot')].find(c => c.querySelector('.u-title').textContent === arguments[0]);
      const over = chart.querySelector('.u-over'), box = over.getBoundingClientRect();
      const at = {clientX: box.left + box.width / 2, clientY: box.top + box.height / 2, bubbles: true};
      over.dispatchEvent(new MouseEvent('mouseenter', at));
      over.dispatchEvent(new MouseEvent('mousemove', at));
      const rows = [...chart.querySelectorAll('.u-legend .u-series')].slice(1);
      return [rows.map(r => r.querySelector('.u-label').textContent), rows.map(r => r.querySelector('.u-value').textContent)];
    """, title)
    return dict(zip(labels, values))


def test_html_outputs_are_checked_before_the_run(tmp_path):
    (tmp_path / "virtual.toml").write_text(VIRTUAL)
    ran = edge("run", str(tmp_path / "virtual.toml"), "-q", "--html", str(tmp_path / "missing" / "report.html"))
    assert ran.returncode == 2 and "missing" in ran.stderr, ran.stderr
    assert not (tmp_path / "missing").exists()
    ran = edge("run", str(tmp_path / "virtual.toml"), "-q", "--duration", "5s", "--json", str(tmp_path / "r.json"))
    assert ran.returncode == 0, ran.stderr
    nothing = edge("plot", str(tmp_path / "r.json"))
    assert nothing.returncode == 2 and "nothing to write" in nothing.stderr, nothing.stderr
    taken = edge("plot", str(tmp_path / "r.json"), "--html", str(tmp_path))  # a directory, not a file
    assert taken.returncode == 2, taken.stderr


def test_live_dashboard_of_edge_serve_updates_in_chromium_with_data_in_every_chart(tmp_path):
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    with serve(str(tmp_path / "scenario.toml")) as served, Traffic(served.port):
        with chromium() as browser:
            url = f"{served.ingress}/dashboard"  # addressed to the server itself, as /metrics
            seconds, points = open_page(browser, url, REPORT_POINTS)
            sections = browser.execute_script("return [...document.querySelectorAll('#charts h2')].map(h => h.textContent);")
            assert sections == ["Traffic", "Latency", "Per-binding latency", "Canary", "Shared CPU", "Actors"]
            # The rollout panel: its state now, in a table drawn by the page; its step marked on every chart.
            rows = browser.execute_script("return [...document.querySelectorAll('#rollouts tbody tr')].map(r => [...r.cells].map(c => c.textContent));")
            [(service, phase, step, weight, failures, last)] = rows
            assert (service, phase, step, weight) == ("app (canary against production)", "progressing", "1 of 1", "50%"), rows
            assert failures == "0 (rolls back at 1)" and ("hold: ✗ canary answers" in last or last == "none yet"), last
            marks = browser.execute_script("return fetch('/dashboard.json').then(r => r.json()).then(p => p.events.map(e => e.label));")
            assert "app step 50%" in marks, marks
            # A quantile's point shows its samples; one from too few says what it needs instead of a value.
            legend = hover_legend(browser, "Latency p99 by service environment (intervals of 100 answers or more)")
            shown = [v for v in legend.values() if v != "—"]
            assert shown and all(re.fullmatch(r"[\d.]+ ms \(n \d+\)|— \(n \d+, needs 100\)", v) for v in shown), legend
            # It keeps polling: readings later every chart has more points, with no error on the way
            # (waited for, not slept on: a busy machine's page polls late).
            deadline = time.monotonic() + 30
            while True:
                later = browser.execute_script(f"return {REPORT_POINTS};")
                if len(later) == len(points) and all(b > a for a, b in zip(points, later)) or time.monotonic() > deadline:
                    break
                time.sleep(INTERVAL / 4)
            assert not errors(browser)
            assert len(later) == len(points) and all(b > a for a, b in zip(points, later)), (points, later)
            print(f"live dashboard: {seconds:.2f}s to every chart drawn, points per chart {points} then {later}")
            screenshot(browser, tmp_path / "live.png")
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    assert not re.findall(r"\b(?:src)\s*=", text)  # uPlot comes inline: nothing to fetch from the internet


def test_live_dashboard_marks_a_rollouts_steps_and_an_operators_pause_on_every_chart(tmp_path):
    """Events that happen while the page is open (issue 28, item 2): each poll's events are drawn,
    not only those of the first drawing."""
    from test_live_rollouts import SCENARIO as ROLLOUT, edge as edge_cli

    (tmp_path / "rollout.toml").write_text(ROLLOUT)
    with serve(str(tmp_path / "rollout.toml")) as served, Traffic(served.port), chromium() as browser:
        open_page(browser, f"{served.ingress}/dashboard", REPORT_POINTS)
        assert edge_cli(served, "rollout", "pause", "app").returncode == 0
        deadline = time.monotonic() + 30
        while not all("app paused 10%" in marks for marks in browser.execute_script("return EdgeCharts.marked();")):
            assert time.monotonic() < deadline, browser.execute_script("return EdgeCharts.marked();")
            time.sleep(0.5)
        assert not errors(browser)
