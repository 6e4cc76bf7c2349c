"""Regenerates the README's pictures, docs/screenshots/*.png: the pages, with the browser tests' own
helpers (tests/browser.py: headless Chromium) and their setups (a real `edge serve` under traffic,
an `edge run --html` report, Prometheus serving the console pages over a backfilled run), and the
worked example's power curves (`edge tune --power`, about 9 minutes on two cores).

    python docs/screenshots.py [pages|rollout|tune-power]   # pages and rollout need chromium, chromium-driver and prometheus
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    wanted = sys.argv[1:] or ["pages", "rollout", "tune-power"]
    OUT.mkdir(exist_ok=True)
    if "pages" in wanted:
        pages()
    if "rollout" in wanted:
        live_rollout()
    if "tune-power" in wanted:
        tune_power()


def tune_power() -> None:
    """The README's power curves: the worked example's grid, as a user would run it."""
    out = OUT / "tune-power.png"
    subprocess.run([sys.executable, "-m", "edge.cli", "tune", str(ROOT / "scenarios" / "tune-canary.toml"), "--power", str(out)],
                   cwd=ROOT, check=True)
    print(out)


def pages() -> None:
    # The browser tests' helpers (they need the test extras): only the pages use them.
    from browser import chromium, open_page, screenshot
    from live import serve
    from test_backfill import VIRTUAL, edge
    from test_browser import CONSOLE_POINTS, REPORT_POINTS, backfilled_prometheus
    from test_dashboards import SCENARIO, Traffic

    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        work = Path(tmp)
        (work / "scenario.toml").write_text(SCENARIO)
        with serve(str(work / "scenario.toml")) as served, Traffic(served.port):
            open_page(browser, f"{served.ingress}/dashboard", REPORT_POINTS)
            time.sleep(30)  # fifteen readings
            print(screenshot(browser, OUT / "live-dashboard.png"))

        (work / "virtual.toml").write_text(VIRTUAL)
        ran = edge("run", str(work / "virtual.toml"), "-q", "--duration", "3m", "--html", str(work / "report.html"))
        assert ran.returncode == 0, ran.stderr
        open_page(browser, (work / "report.html").as_uri(), REPORT_POINTS)
        print(screenshot(browser, OUT / "html-report.png"))

        prometheus, when = backfilled_prometheus(work)
        try:
            open_page(browser, f"{prometheus.url}/consoles/canary.html{when}", CONSOLE_POINTS)
            print(screenshot(browser, OUT / "console-canary.png"))
        finally:
            prometheus.stop()


ROLLOUT = """
[scenario]
name = "live-rollout"

[[services]]
name = "app"
routes = ["example.com/*"]
[services.environments.production]
model = { latency = "lognormal(p50=2ms, p99=12ms)", errors = 0.001 }
[services.environments.canary]
model = { latency = "lognormal(p50=2ms, p99=15ms)", errors = 0.002 }
[services.split]
weights = { production = 100, canary = 0 }

[services.rollout]
steps = [5, 25, 50, 100]
interval = "10s"
gates = ["error ratio < 1%", "p99 latency < 50ms"]
min_requests = 20

[[traffic]]
arrivals = "poisson(200/s)"
requests = [{ url = "https://example.com/" }]
"""


def live_rollout() -> None:
    """The live dashboard during a rollout: its panel, and its steps and an operator's pause and
    resume marked on the charts (README, *Live rollouts*)."""
    import json
    import urllib.request

    from browser import chromium, open_page, screenshot
    from live import admin_headers, serve
    from test_browser import REPORT_POINTS

    def admin(path: str) -> None:
        request = urllib.request.Request(served.admin + path, method="POST", data=b"", headers=admin_headers())
        with urllib.request.urlopen(request, timeout=10) as answer:
            print(path, json.loads(answer.read())["done"])

    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        scenario = Path(tmp) / "rollout.toml"
        scenario.write_text(ROLLOUT)
        with serve(str(scenario), "--traffic") as served:
            open_page(browser, f"{served.ingress}/dashboard", REPORT_POINTS)
            time.sleep(24)  # two steps
            admin("/rollouts/app/pause")
            time.sleep(8)
            admin("/rollouts/app/resume")
            time.sleep(14)  # the next step
            print(screenshot(browser, OUT / "live-rollout.png"))


if __name__ == "__main__":
    main()
