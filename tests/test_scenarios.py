"""The scenario library: every bundled scenario validates, runs, and ends as its comments say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))

# scenario -> (extra arguments to keep the test short, expected exit code, what the report must show)
EXPECTED = {
    "default": (["--duration", "30s"], 0, lambda r: r["routers"]["app"]["weights"] == {"production": 99.0, "canary": 1.0}),
    "bad-canary": ([], 1, lambda r: r["routers"]["app"]["retries"]["canary->production"] > 100
                   and [t["passed"] for t in r["thresholds"]] == [True, False]),
    "cpu-heavy": ([], 1, lambda r: r["clients"]["cpu_limit_exceeded"] > 0
                  and r["environments"]["app@production"]["cpu_limit_exceeded"] == r["clients"]["cpu_limit_exceeded"]),
    "cold-start-storm": ([], 0, lambda r: r["environments"]["api@production"]["cold_starts"] > 20
                         and [e["action"] for e in r["timeline"]] == ["cold"]),
    "tune-canary": (["--duration", "6m"], 0, lambda r: r["rollouts"]["app"]["phase"] == "promoted" and r["rollouts"]["app"]["ended_at_s"] == 300.0),
    "api-gateway": (["--duration", "20s"], 0, lambda r: r["environments"]["api@production"]["requests"] > 3_000
                    and r["environments"]["orders@production"]["exceptions"] == 0),
    "replay": ([], 0, lambda r: r["replays"]["shop"]["requests"] == 365 and r["groups"]["shop"]["requests"] == 730),  # two passes
    # 300 lines, 7 of them noise (TLS handshakes, "-" 400 0, probes) skipped: the first five listed
    "replay-nginx": ([], 0, lambda r: r["replays"]["site"]["skipped"] == 7 and r["replays"]["site"]["skipped_lines"] == [26, 51, 120, 146, 211]
                     and r["replays"]["site"]["requests"] == r["groups"]["site"]["requests"] == r["replays"]["site"]["logged_times"] == 293
                     and r["clients"]["latency_s"]["max"] == 1.212),  # the monthly report's logged upstream time
    "diurnal-day": (["--duration", "6m"], 0, lambda r: 10_000 < r["clients"]["requests"] < 60_000),  # the night: 0.1x-0.3x of 500/s
}


def test_every_scenario_is_covered():
    assert {path.stem for path in SCENARIOS} == set(EXPECTED)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_checks_and_runs_as_documented(path, tmp_path):
    check = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    extra, code, shows = EXPECTED[path.stem]
    out = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", str(path), "-q", "--json", str(out), *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert run.returncode == code, run.stderr
    assert shows(json.loads(out.read_text()))
