"""The virtual-time benchmarks still run (briefly): a benchmark that rots unseen measures nothing.

These time nothing (speed is read from the benchmarks' own output, not asserted here); they check
that each script runs on the current code and prints its figures (SimPy, the virtual-time yardstick,
is in the test extras for that). The live benchmarks need wrk and workerd and are run by hand
(README).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_virtual_throughput_compares_edge_and_simpy_on_one_model():
    out = run("virtual_throughput.py", "--seconds", "0.5", "--repeat", "1")
    assert "edge chain" in out and "simpy chain" in out and "edge / SimPy on the same chain model" in out


def test_scale_reports_memory_and_time_for_both_concurrencies():
    out = run("scale.py", "--chains", "2", "--depth", "3", "--seconds", "0.5", "--rate", "100")
    assert "6 code services" in out
    assert "default concurrency" in out and "concurrency = 8" in out and " MB" in out


def test_hour_runs_bare_and_with_reporting():
    out = run("hour.py", "--minutes", "0.05")
    assert "bare" in out and "with reporting" in out and "reporting overhead" in out


@pytest.mark.parametrize("script", ["tune.py", "simpy_chain.py"])
def test_other_scripts_start(script):
    assert "usage" in run(script, "--help")
