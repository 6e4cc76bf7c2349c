"""The report over time (series), per-group client stats, the PNG plots and the live progress bar."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import msgspec
import pytest

from edge.report.build import build_report, read_json, write_json
from edge.engine.simulate import simulate
from edge.metrics.series import default_interval

SCENARIO = """
[scenario]
name = "reports"
cpu_limit = "20ms"

[[services]]
name = "api"
routes = ["api.test/*"]
[services.environments.production]
model = {{ latency = "10ms", cpu = "1ms" }}
[services.environments.canary]
model = {{ latency = "10ms", cpu = "1ms" }}
[services.split]
weights = {{ production = 90, canary = 10 }}

[[traffic]]
name = "web"
arrivals = "constant(100/s)"
requests = [{{ url = "https://api.test/" }}]

[[traffic]]
name = "batch"
users = 4
think = "100ms"
timeout = "50ms"
requests = [{{ url = "https://api.test/" }}]

{timeline}
"""

SLOW_CANARY_AT_30S = """
[[timeline]]
at = "30s"
action = "set"
target = "api@canary"
latency = "200ms"
errors = 0.5
"""


def run(make_scenario, timeline: str = "", duration: float = 60, interval: float | None = None):
    result = simulate(make_scenario(SCENARIO.format(timeline=timeline)), seed=3, duration=duration, interval=interval)
    return build_report(result)


def test_series_intervals_add_up_to_the_run_totals(make_scenario):
    report = run(make_scenario, SLOW_CANARY_AT_30S, interval=5)
    series = report.series
    assert series.interval_s == 5.0
    assert series.end_s[:3] == [5.0, 10.0, 15.0] and series.end_s[-1] == pytest.approx(report.simulated_s)
    assert sum(series.clients.requests) == report.clients.requests
    assert sum(series.clients.errors) == report.clients.errors
    assert sum(series.clients.timeouts) == report.clients.timeouts > 0
    for key, env in series.environments.items():
        assert len(env.requests) == len(series.end_s)
        assert sum(env.requests) == report.environments[key].requests
        assert sum(env.cpu_s) == pytest.approx(report.environments[key].cpu_s)
    assert series.weights == {"api@production": [90.0] * len(series.end_s), "api@canary": [10.0] * len(series.end_s)}


def test_interval_quantiles_show_a_change_the_whole_run_would_blur(make_scenario):
    report = run(make_scenario, SLOW_CANARY_AT_30S, interval=5)
    canary = report.series.environments["api@canary"]
    before, after = canary.latency_p50_s[:5], canary.latency_p50_s[7:11]  # 0-25 s and 35-55 s
    assert all(v == pytest.approx(0.011, rel=0.01) for v in before)  # latency and CPU
    assert all(v == pytest.approx(0.201, rel=0.01) for v in after)
    ratios = [e / n for e, n in zip(canary.errors[7:11], canary.requests[7:11])]
    assert all(0.2 < r < 0.8 for r in ratios) and sum(canary.errors[:6]) == 0
    clients = report.series.clients
    assert sum(clients.timeouts[:6]) == 0 < sum(clients.timeouts[7:11])  # the batch group's 50 ms timeout


def test_cpu_per_request_series(make_scenario):
    report = run(make_scenario, duration=20, interval=10)
    assert report.series.clients.cpu_per_request_p50_s[:2] == [pytest.approx(0.001, rel=0.01)] * 2
    assert report.cpu_limit_s == 0.02


@pytest.mark.parametrize("duration, interval", [(20, 1), (180, 2), (3600, 30), (86400, 900), (10**7, 86400)])
def test_default_interval_gives_about_a_hundred_points(duration, interval):
    assert default_interval(duration) == interval


def test_each_group_reports_what_its_clients_saw(make_scenario):
    report = run(make_scenario, SLOW_CANARY_AT_30S)
    web, batch = report.groups["web"], report.groups["batch"]
    assert list(report.groups) == ["web", "batch"]
    assert web.requests == 6000 and web.timeouts == 0
    assert batch.timeouts > 0 and batch.latency_s.max == pytest.approx(0.050)
    assert web.latency_s.max == pytest.approx(0.201, rel=0.01)  # no timeout: waits for the slow canary
    assert web.requests + batch.requests == report.clients.requests
    assert web.errors + batch.errors == report.clients.errors
    assert web.status["5xx"] == web.errors


def test_two_groups_with_one_name_are_a_config_error(make_scenario, tmp_path):
    text = SCENARIO.format(timeline="").replace('name = "batch"', 'name = "web"')
    (tmp_path / "dup.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(tmp_path / "dup.toml")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "traffic[1].name" in done.stderr and "'web' again" in done.stderr


def test_report_json_round_trips(make_scenario, tmp_path):
    report = run(make_scenario, duration=10)
    write_json(report, tmp_path / "r.json")
    assert read_json(tmp_path / "r.json") == report


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def edge(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_run_writes_plots_and_plot_redraws_them_from_json(make_scenario, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(timeline=SLOW_CANARY_AT_30S))
    done = edge("run", str(scenario), "--duration", "40s", "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path / "plots"))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["canary.png", "cpu.png", "latency.png", "traffic.png"]
    for name in names:
        width, height = png_size(tmp_path / "plots" / name)
        assert width >= 1000 and height >= 400
        assert (tmp_path / "plots" / name).stat().st_size > 20_000  # drawn lines, not an empty canvas
    again = edge("plot", str(tmp_path / "r.json"), str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == names


def test_no_split_no_canary_plot(tmp_path):
    done = edge("run", "--duration", "5s", "--quiet", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0
    report = msgspec.json.decode((tmp_path / "r.json").read_bytes())
    del report["series"]["weights"]["app@production"], report["series"]["weights"]["app@canary"]
    (tmp_path / "r.json").write_bytes(msgspec.json.encode(report))
    assert edge("plot", str(tmp_path / "r.json"), str(tmp_path / "plots")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["cpu.png", "latency.png", "traffic.png"]


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"scenario": "x"}'])
def test_plot_of_a_bad_report_exits_2_and_writes_nothing(tmp_path, content):
    (tmp_path / "bad.json").write_bytes(content)
    done = edge("plot", str(tmp_path / "bad.json"), str(tmp_path / "plots"))
    assert done.returncode == 2
    assert "bad.json" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "plots").exists()


def test_progress_bar_shows_the_run_and_changes_nothing(tmp_path):
    shown = edge("run", "--duration", "20s", "--progress", "--json", str(tmp_path / "with.json"))
    hidden = edge("run", "--duration", "20s", "--no-progress", "--json", str(tmp_path / "without.json"))
    assert shown.returncode == hidden.returncode == 0
    assert (tmp_path / "with.json").read_bytes() == (tmp_path / "without.json").read_bytes()
    # stderr is a pipe here: plain lines, one per tenth of the run (the last tick is just before the end) and one at the end, never a bar.
    lines = [line for line in shown.stderr.splitlines() if line.startswith("simulating")]
    assert 10 <= len(lines) <= 11 and lines[0].startswith("simulating 2s / 20s: ") and lines[-1].startswith("simulating 20s / 20s: ")
    assert not any(c in shown.stderr for c in "━\r\x1b")  # no bar, no redraws, no escapes
    rate = int(lines[-2].split(": ")[1].split(" req/s")[0].replace(",", ""))
    assert 450 < rate < 550  # the default scenario's 500/s, over the last tenth
    assert "simulating" not in hidden.stderr


def test_the_progress_bar_leaves_no_thread_behind():
    """rich's refresh thread is waited for when the bar ends: the plots after a run are drawn in a
    forked child only when no other thread runs (``edge.platform.aside``)."""
    import io
    import threading

    from rich.console import Console

    from edge.report.progress import RunProgress

    class Clock:
        def now(self) -> float:
            return 1.0

        def call_later(self, delay, callback) -> None:
            pass

    class Metrics:
        groups: dict = {}

    before = threading.active_count()
    for _ in range(20):
        progress = RunProgress(Metrics(), Clock(), 10.0, Console(file=io.StringIO(), force_terminal=True, width=120))
        progress.__enter__()
        assert threading.active_count() == before + 1  # rich draws a terminal's bar from its thread
        progress.__exit__()
        assert threading.active_count() == before
