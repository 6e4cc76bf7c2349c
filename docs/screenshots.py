"""Regenerates the README's pictures, docs/screenshots/*.png, with the browser tests' own helpers
(tests/browser.py: headless Chromium) and their setups: a real `edge serve` under traffic, an
`edge run --html` report, and Prometheus serving the console pages over a backfilled run.

    python docs/screenshots.py      # needs chromium, chromium-driver and prometheus (as the tests)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from browser import chromium, open_page, screenshot  # noqa: E402
from live import serve  # noqa: E402
from test_backfill import VIRTUAL, edge  # noqa: E402
from test_browser import CONSOLE_POINTS, REPORT_POINTS, backfilled_prometheus  # noqa: E402
from test_dashboards import SCENARIO, Traffic  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    OUT.mkdir(exist_ok=True)
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


if __name__ == "__main__":
    main()
