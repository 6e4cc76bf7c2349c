"""A virtual run's metrics through real promtool and Prometheus: `edge run --openmetrics`, then
`edge backfill`, then every dashboard query returns data over the simulated range."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from test_dashboards import SCENARIO, Prometheus, dashboards, has_numbers, queries, resolve_variables, substitute

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

# The dashboards' scenario (a flaky canary, cold starts) with simulated traffic and, from the start,
# half of app's traffic on the canary.
VIRTUAL = SCENARIO + """
[[traffic]]
arrivals = "poisson(200/s)"
requests = [
  { weight = 8, url = "https://example.com/", headers = { x-custom-token = "secret:auth.SECRET_TOKEN" } },
  { weight = 1, method = "POST", url = "https://example.com/api", headers = { x-custom-token = "secret:auth.SECRET_TOKEN" }, body = "{}" },
  { weight = 1, url = "https://example.com/" },
]

[[timeline]]
at = "0s"
action = "weights"
target = "app"
weights = { production = 50, canary = 50 }
"""


def edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_openmetrics_backfill_round_trip_serves_every_dashboard_query(tmp_path):
    for binary in ("prometheus", "promtool"):
        if shutil.which(binary) is None:
            pytest.fail(f"`{binary}` is not on PATH: install it (apt-get install prometheus) to run this test")
    scenario = tmp_path / "virtual.toml"
    scenario.write_text(VIRTUAL)
    openmetrics = tmp_path / "run.om"
    # Simulated time 0 is 3 minutes and a bit ago: the run's end is "now" for Prometheus' instant queries.
    start = time.time() - 185
    ran = edge("run", str(scenario), "-q", "--duration", "3m", "--openmetrics", str(openmetrics), "--openmetrics-start", str(start))
    assert ran.returncode == 0, ran.stderr
    text = openmetrics.read_text()
    assert text.endswith("# EOF\n")
    stamps = {float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("edge_requests_total{")}
    assert len(stamps) >= 12 and 164 < max(stamps) - min(stamps) < 182  # every 15 s from the first answers (15 s) to 180 s

    blocks = edge("backfill", str(openmetrics), str(tmp_path / "data"))
    assert blocks.returncode == 0, blocks.stderr
    assert "BLOCK ULID" in blocks.stdout

    prometheus = Prometheus(shutil.which("prometheus"), tmp_path, "127.0.0.1:9")  # nothing to scrape: the data is backfilled
    try:
        def loaded() -> bool:
            result, _ = prometheus.query("edge_requests_total")
            return bool(result)

        prometheus.wait_until("Prometheus to load the backfilled blocks", loaded, time.monotonic() + 30)
        missing = []
        for name, board in dashboards().items():
            values, problems = resolve_variables(board, prometheus)
            values["__rate_interval"] = "1m"  # four 15 s scrapes per window
            missing += problems
            for panel, target in queries(board):
                expr = substitute(target["expr"], values)
                result, error = prometheus.query(expr)
                if not has_numbers(result):
                    missing.append(f"{name}.json / panel {panel['id']} {panel['title']!r}: {error or 'no data'}\n{expr}")
    finally:
        prometheus.stop()
    if missing:
        pytest.fail(f"{len(missing)} queries returned no data from the backfilled run:\n\n" + "\n\n".join(missing), pytrace=False)
