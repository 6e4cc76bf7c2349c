"""Virtual time charges declared CPU only, unless asked to measure real CPU too (`measure_cpu`).

Real ``edge run`` processes: what a user sees, the JSON report and the summary.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCENARIO = """
[scenario]
name = "measured"
cpu_limit = "50ms"
{extra}

[[services]]
name = "w"
routes = ["w.test/*"]
worker = "w.py"

[[traffic]]
arrivals = "constant(4/s)"
requests = [{{ url = "https://w.test/", headers = {{ x-burn = "{burn}", x-declare = "{declare}" }} }}]
"""

WORKER = """
import time
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    started = time.thread_time()
    while time.thread_time() - started < float(request.headers.get("x-burn")):
        pass
    await ctx.cpu(float(request.headers.get("x-declare")))
    return Response("fine")
"""


def edge_run(tmp_path, *args: str, extra: str = "", burn: str = "0.060", declare: str = "0"):
    (tmp_path / "w.py").write_text(WORKER)
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(extra=extra, burn=burn, declare=declare))
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", str(scenario), "--duration", "1s", "--json", str(out), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_without_measure_cpu_a_worker_burning_past_the_budget_passes(tmp_path):
    report, summary = edge_run(tmp_path)
    clients = report["clients"]
    n = clients["requests"]
    assert n >= 3 and clients["status"] == {"2xx": n} and clients["cpu_limit_exceeded"] == 0
    assert report["environments"]["w@production"]["cpu_s"] == 0  # real CPU is not a virtual worker's cost
    assert "measured_cpu" not in report and "not deterministic" not in summary


@pytest.mark.parametrize("how", ["--measure-cpu", "measure_cpu = true"])
def test_with_measure_cpu_a_worker_burning_60ms_against_50ms_fails_1102(tmp_path, how):
    flag, extra = ((how,), "") if how.startswith("--") else ((), how)
    report, summary = edge_run(tmp_path, *flag, extra=extra)
    clients = report["clients"]
    n = clients["requests"]
    assert n >= 3 and clients["status"] == {"5xx": n} and clients["cpu_limit_exceeded"] == n
    assert report["environments"]["w@production"]["cpu_limit_exceeded"] == n
    assert report["measured_cpu"] is True
    assert "this run is not deterministic" in summary


def test_with_measure_cpu_a_call_pays_the_larger_of_burnt_and_declared_not_both(tmp_path):
    report, _ = edge_run(tmp_path, "--measure-cpu", burn="0.030", declare="0.030")
    env = report["environments"]["w@production"]
    n = report["clients"]["requests"]
    assert n >= 3 and report["clients"]["status"] == {"2xx": n}
    assert 0.030 <= env["cpu_s"] / n < 0.040
