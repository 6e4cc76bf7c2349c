"""A virtual run's metrics through real promtool and Prometheus: `edge run --openmetrics`, then
`edge backfill`, then every dashboard query returns data over the simulated range."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from edge.metrics.panels import BOARDS
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
            needing = {panel.title for panel in BOARDS[name].panels if panel.needs}  # the load generator's: live only
            for panel, target in queries(board):
                expr = substitute(target["expr"], values)
                result, error = prometheus.query(expr)
                if panel["title"] in needing:
                    if has_numbers(result) or error:
                        missing.append(f"{name}.json / panel {panel['title']!r}: data from a virtual run, or an error: {error}\n{expr}")
                elif not has_numbers(result):
                    missing.append(f"{name}.json / panel {panel['id']} {panel['title']!r}: {error or 'no data'}\n{expr}")
    finally:
        prometheus.stop()
    if missing:
        pytest.fail(f"{len(missing)} queries returned no data from the backfilled run:\n\n" + "\n\n".join(missing), pytrace=False)


def backfill(tmp_path, content: bytes | None, *, data: str = "data"):
    """`edge backfill` of a file holding ``content`` (None: no file) into tmp_path/data."""
    source = tmp_path / "in.om"
    if content is not None:
        source.write_bytes(content)
    return edge("backfill", str(source), str(tmp_path / data)), tmp_path / data


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read file: No such file or directory"),
    (b"", "expected OpenMetrics ending with `# EOF`"),
    (b"requests_total 1.0 1700000000.0\n", "expected OpenMetrics ending with `# EOF`"),
])
def test_backfill_checks_its_input_before_creating_anything(tmp_path, content, expected):
    done, data = backfill(tmp_path, content)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert not data.exists()


def test_backfill_refuses_a_folder_as_input_and_creates_nothing(tmp_path):
    (tmp_path / "in.om").mkdir()
    done, data = backfill(tmp_path, None)
    assert done.returncode == 2 and "expected a regular file" in done.stderr
    assert not data.exists()


def test_promtool_failing_is_an_error_and_leaves_no_folder(tmp_path):
    done, data = backfill(tmp_path, b"garbage\n# EOF\n")
    assert done.returncode == 2 and "promtool failed (exit 1)" in done.stderr, done.stderr
    assert not data.exists()


def test_promtool_exiting_0_without_a_block_is_an_error(tmp_path):
    done, data = backfill(tmp_path, b"# EOF\n")  # valid, no samples: promtool says nothing and exits 0
    assert done.returncode == 2 and "promtool wrote no blocks" in done.stderr, done.stderr
    assert not data.exists()


def test_a_failed_backfill_keeps_a_data_folder_that_was_there(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine").write_text("keep\n")
    done, data = backfill(tmp_path, b"# EOF\n")
    assert done.returncode == 2 and (data / "mine").read_text() == "keep\n"


def test_backfill_of_a_run_writes_blocks(tmp_path):
    om = tmp_path / "in.om"
    assert edge("run", "--duration", "5s", "-q", "--openmetrics", str(om)).returncode == 0
    done = edge("backfill", str(om), str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert any((block / "meta.json").is_file() for block in (tmp_path / "data").iterdir())


def test_by_default_a_runs_samples_end_when_it_is_written_never_in_the_future(tmp_path):
    """Stamped from the run's start, a run's samples spanned up to its simulated length into the
    future, and "last 30 minutes" showed a fraction of it. By default the run now ends at the
    moment `edge run` wrote the file; `--openmetrics-start` still sets simulated time 0."""
    scenario = tmp_path / "virtual.toml"
    scenario.write_text(VIRTUAL)

    def stamps(*flags: str) -> tuple[list[float], float, float]:
        before = time.time()
        ran = edge("run", str(scenario), "-q", "--duration", "2m", "--openmetrics", str(tmp_path / "run.om"), *flags)
        assert ran.returncode == 0, ran.stderr
        text = (tmp_path / "run.om").read_text()  # promtool reads such files: the round trip above
        found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("edge_requests_total{")]
        return found, before, time.time()

    found, before, after = stamps()
    assert before - 1 < max(found) <= after  # the last scrape: when the file was written
    assert 100 < max(found) - min(found) <= 120  # every 15 s from the first answers (15 s) to 2 min, all in the past
    found, _, _ = stamps("--openmetrics-start", "1700000000")
    assert min(found) >= 1700000000 and 1700000115 < max(found) <= 1700000120
