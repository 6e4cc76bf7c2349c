"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium.

The dashboard tests open each page, read the browser's console log (any SEVERE entry, an uncaught
exception or a failed resource, fails the page) and count each chart's data points with the page's
own script (``points``: a JavaScript expression returning one count per chart). Without the
browser the tests fail rather than skip: CI installs it (.ci/run).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

WIDTH, HEIGHT = 1400, 1000


@contextlib.contextmanager
def chromium(width: int = WIDTH, height: int = HEIGHT) -> Iterator[object]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("chromium and chromedriver are not on PATH: apt-get install chromium chromium-driver (CI does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield browser
    finally:
        browser.quit()


def errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(browser, url: str, points: str, *, timeout: float = 30.0) -> tuple[float, list[int]]:
    """Loads ``url`` and waits until every chart has data points; (seconds until then, points per chart).

    Fails with the browser's console errors, or with the charts still empty at the timeout.
    """
    browser.get("about:blank")  # leave the last page (a dashboard polling a server that has stopped)...
    browser.get_log("browser")  # ...and drop what it logged
    start = time.monotonic()
    browser.get(url)
    counts: list[int] = []
    while time.monotonic() - start < timeout:
        problems = errors(browser)
        assert not problems, f"{url}: JavaScript errors:\n" + "\n".join(problems)
        counts = browser.execute_script(f"return {points};") or []
        if counts and all(counts):
            return time.monotonic() - start, counts
        time.sleep(0.2)
    pytest.fail(f"{url}: charts without data points after {timeout:.0f}s: {counts}")


def screenshot(browser, path: Path) -> Path:
    """A PNG of the whole page (the window grown to the document's height)."""
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(WIDTH, min(max(height, 400), 6000))
    time.sleep(0.5)  # charts redraw on resize
    browser.save_screenshot(str(path))
    return path
