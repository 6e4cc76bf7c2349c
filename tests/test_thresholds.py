"""Thresholds: parsing, the values they are checked against, and the exit codes of `edge run`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge import config
from edge.report import build_report
from edge.runtime import simulate
from edge.thresholds import parse_threshold

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """
thresholds = [{thresholds}]

[scenario]
name = "thresholds"
duration = "10s"

[[services]]
name = "api"
routes = ["api.test/*"]
model = {{ latency = "2ms", errors = 0.5, error_status = 503 }}

[[traffic]]
arrivals = "constant(100/s)"
requests = [{{ url = "https://api.test/" }}]
"""


def scenario(tmp_path: Path, *thresholds: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(textwrap.dedent(SCENARIO.format(thresholds=", ".join(json.dumps(t) for t in thresholds))))
    return path


def edge_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "run", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(
    "text, metric, stat, subject, op, value",
    [
        ("p99 latency of app@canary < 200ms", "latency", "p99", "app@canary", "<", 0.2),
        ("effective error ratio < 0.1%", "effective error ratio", None, "clients", "<", 0.001),
        ("cpu_limit_exceeded == 0", "cpu_limit_exceeded", None, "clients", "==", 0.0),
        ("p50 queue wait of auth@production <= 1ms", "queue wait", "p50", "auth@production", "<=", 0.001),
        ("cold starts of app@canary != 3", "cold starts", None, "app@canary", "!=", 3.0),
        ("mean cpu per request>=2ms", "cpu per request", "mean", "clients", ">=", 0.002),
    ],
)
def test_parse(text, metric, stat, subject, op, value):
    t = parse_threshold(text)
    assert (t.metric, t.stat, t.subject, t.op) == (metric, stat, subject, op)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("latency < 200ms", "needs a statistic"),
        ("p99 errors < 3", "applies to latency"),
        ("p99 latency < 3bananas", "duration"),
        ("error ratio < 5", "ratio"),
        ("p99 queue wait < 1ms", "service environment's"),
        ("timeouts of api@production == 0", "not counted for a service environment"),
        ("throughput > 5", "[STAT] METRIC"),
        ("requests > lots", "expected a number"),
    ],
)
def test_parse_errors_say_what_was_expected(text, expected):
    with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_threshold(text)


def test_values_come_from_the_run(tmp_path):
    path = scenario(
        tmp_path,
        "requests == 1000",
        "p99 latency of api@production < 3ms",
        "p50 latency > 1ms",
        "error ratio < 1%",
        "errors of api@production > 400",
    )
    report = build_report(simulate(config.load(path), seed=1, duration=10))
    results = {t.threshold: t for t in report.thresholds}
    assert results["requests == 1000"].passed and results["requests == 1000"].value == 1000
    assert results["p99 latency of api@production < 3ms"].passed
    assert results["p50 latency > 1ms"].passed
    ratio = results["error ratio < 1%"]
    assert not ratio.passed and ratio.value == pytest.approx(0.5, abs=0.06)
    assert results["errors of api@production > 400"].passed


def test_edge_run_exits_1_and_prints_the_failing_lines(tmp_path):
    path = scenario(tmp_path, "requests == 1000", "error ratio < 1%", "p99 latency < 1ms")
    out = tmp_path / "r.json"
    done = edge_run(str(path), "-q", "--json", str(out))
    assert done.returncode == 1, done.stderr
    failing = [line for line in done.stderr.splitlines() if "threshold failed" in line]
    assert len(failing) == 2 and "error ratio < 1%" in failing[0] and "p99 latency < 1ms" in failing[1]
    written = json.loads(out.read_text())["thresholds"]
    assert [t["passed"] for t in written] == [True, False, False]


def test_edge_run_exits_0_when_every_threshold_holds(tmp_path):
    done = edge_run(str(scenario(tmp_path, "requests >= 900", "p99 latency < 10ms")), "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "threshold, expected",
    [
        ("p99 latency of api@canary < 1ms", "expected clients or a service environment (api@production)"),
        ("p99 latency of app < 1ms", "thresholds[0]"),
    ],
)
def test_bad_thresholds_exit_2_naming_the_path(tmp_path, threshold, expected):
    done = edge_run(str(scenario(tmp_path, threshold)), "-q")
    assert done.returncode == 2
    assert "thresholds[0]" in done.stderr and expected in done.stderr, done.stderr
