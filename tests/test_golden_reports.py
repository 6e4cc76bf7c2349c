"""Every bundled scenario's JSON report, byte for byte, against one recorded before a change.

Refactors of the engine must not change what a run computes: these reports were recorded with
the code before the change, and a refactor keeps them identical. A change that is meant to alter
results (one that reorders events within a simulated instant, a new report field) re-records them
with ``EDGE_RECORD_GOLDEN=1 pytest tests/test_golden_reports.py`` and shows, in its own tests,
that the new results are statistically equivalent (queueing theory, tune's replay, the scenarios'
own intervals) — the commit says which.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"

# Durations long enough to pass every timeline event and burst of each scenario, short enough
# for the suite.
CASES = {
    "default": ("scenarios/default.toml", "30s"),
    "api-gateway": ("scenarios/api-gateway.toml", "20s"),
    "bad-canary": ("scenarios/bad-canary.toml", "2m30s"),
    "cold-start-storm": ("scenarios/cold-start-storm.toml", "2m30s"),
    "cpu-heavy": ("scenarios/cpu-heavy.toml", "30s"),
    "diurnal-day": ("scenarios/diurnal-day.toml", "6m"),
    "tune-canary": ("scenarios/tune-canary.toml", "3m"),
    "replay": ("scenarios/replay.toml", "2m"),
    "benchmark-chain": ("benchmarks/chain.toml", "10s"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_is_byte_identical_to_the_recorded_one(tmp_path, name):
    scenario, duration = CASES[name]
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", str(ROOT / scenario), "--seed", "7", "--duration", duration,
         "--json", str(out), "--quiet"],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: the scenario's own thresholds failed
    recorded = GOLDEN / f"{name}.json"
    if os.environ.get("EDGE_RECORD_GOLDEN"):
        recorded.write_bytes(out.read_bytes())
    assert out.read_bytes() == recorded.read_bytes(), f"{name}: the report differs from {recorded}"
