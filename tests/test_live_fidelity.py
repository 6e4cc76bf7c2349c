"""The same scenario live and in virtual time gives the same latencies (issue 13 item 7).

A real ``edge serve --traffic`` against ``edge run``, through ``benchmarks/live_vs_virtual.py``, on
the default scenario at 100 req/s. ``app@production`` is a synthetic model (a CPU step, then a
lognormal wait): live, its latency is its two timers and nothing else, so it must agree with
virtual time. As root the server runs under SCHED_FIFO, so that other jobs on a shared machine do
not delay its wake-ups, and the bounds are tight: measured there, the clock that waits on a
timerfd gave app 1.05x, gateway 1.21x and auth 0.32 ms (model 0.15), the one that rounded to
epoll's millisecond 1.41x, 1.94x and 1.07 ms. Otherwise only the synthetic environment is held,
loosely (1.18-1.46x with four CPU-bound processes beside it, against 1.5-1.9x before). Code
workers also pay Python's per-hop cost (mailbox hand-overs, task switches), which virtual time
does not charge: hence their looser bounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "live_vs_virtual.py"
REALTIME = hasattr(os, "geteuid") and os.geteuid() == 0


def test_the_default_scenario_served_live_keeps_its_modelled_mean_latencies(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), "--seconds", "6", "--warmup", "2", "--arrivals", "poisson(100/s)", "--json", str(out),
         *(["--realtime"] if REALTIME else [])],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["environments"]
    app, gateway, auth = rows["app@production"], rows["gateway@production"], rows["auth@production"]
    assert app["live_calls"] >= 400 and app["virtual_calls"] >= 400  # ~570 each: the load really ran
    for row in (app, gateway, auth):
        assert row["ratio"] >= 0.9, row  # live never beats the model: no wait is cut short
    if REALTIME:
        assert app["ratio"] <= 1.2, app
        assert gateway["ratio"] <= 1.6, gateway
        assert auth["live_ms"] <= auth["virtual_ms"] + 0.5, auth
    else:
        assert app["ratio"] <= 1.5, app
