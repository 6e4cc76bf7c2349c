"""Live against virtual: does a scenario served in real time keep the latencies its model gives?

One scenario, one seed, two drivers: ``edge serve --traffic`` (real time, real sockets, the load
generator in the server's process) and ``edge run`` (virtual time). Each service environment's mean
latency comes from ``edge_environment_duration_seconds`` (sum/count between two scrapes of
``/metrics``, after a warm-up) live, and from the JSON report's ``latency_s.mean`` virtually; the
table gives both and their ratio, and the server's CPU use over the measured window (what precise
timers cost).

    python benchmarks/live_vs_virtual.py [scenario.toml] [--seconds 30] [--warmup 5]
                                         [--arrivals "poisson(200/s)"] [--json PATH]

``--arrivals`` runs a copy of the scenario whose traffic groups all have that arrival process: the
server and its load generator share one Python thread, so what counts as moderate load depends on
the machine. Needs tomli-w (test extras) for that; Linux (CPU time is read from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import tomllib
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import cpu_seconds, edge_serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DURATION = "edge_environment_duration_seconds"


def edge(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def environment_totals(metrics_url: str) -> dict[str, tuple[float, float]]:
    """``service@environment`` -> (sum of latencies, count), over every version and status."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for family in text_string_to_metric_families(text):
        if family.name != DURATION:
            continue
        for sample in family.samples:
            key = f"{sample.labels['service']}@{sample.labels['environment']}"
            if sample.name == DURATION + "_sum":
                totals[key][0] += sample.value
            elif sample.name == DURATION + "_count":
                totals[key][1] += sample.value
    return {key: (total, count) for key, (total, count) in totals.items()}


def live(scenario: list[str], seconds: float, warmup: float, realtime: bool = False) -> tuple[dict[str, tuple[float, int]], float, float]:
    """Per environment (mean latency, calls) over ``seconds`` of ``edge serve --traffic`` after
    ``warmup``, the server's CPU use over that window (1.0 = one core), and the window's length."""
    with edge_serve(*scenario, "--traffic") as served:
        if realtime:  # the trio thread only: its wake-ups then do not queue behind other processes
            os.sched_setscheduler(served.pid, os.SCHED_FIFO, os.sched_param(1))
        time.sleep(warmup)
        before, cpu_before, began = environment_totals(served.metrics), cpu_seconds(served.pid), time.monotonic()
        time.sleep(seconds)
        after, cpu_after, ended = environment_totals(served.metrics), cpu_seconds(served.pid), time.monotonic()
    means = {}
    for key, (total, count) in after.items():
        total0, count0 = before.get(key, (0.0, 0.0))
        if count > count0:
            means[key] = ((total - total0) / (count - count0), int(count - count0))
    return means, (cpu_after - cpu_before) / (ended - began), ended - began


def virtual(scenario: list[str], seconds: float) -> dict[str, tuple[float, int]]:
    """Per environment (mean latency, calls) of ``edge run`` for ``seconds`` of simulated traffic."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        subprocess.run(edge("run", *scenario, "--duration", f"{seconds}s", "--json", str(report_path), "-q"),
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False, capture_output=True, text=True)
        if not report_path.exists():
            raise RuntimeError("edge run wrote no report")
        report = json.loads(report_path.read_text())
    return {key: (row["latency_s"]["mean"], row["requests"]) for key, row in report["environments"].items() if row["requests"]}


def with_arrivals(scenario: Path, arrivals: str, directory: Path) -> Path:
    """A copy of ``scenario`` in ``directory`` whose traffic groups arrive by ``arrivals``."""
    import tomli_w

    spec = tomllib.loads(scenario.read_text())
    for group in spec.get("traffic", []):
        group["arrivals"] = arrivals
    for service in spec.get("services", []):  # worker paths are relative to the scenario's folder
        for table in (service, *service.get("environments", {}).values()):
            if "worker" in table:
                table["worker"] = str(scenario.parent / table["worker"])
    copy = directory / scenario.name
    copy.write_text(tomli_w.dumps(spec))
    return copy


def compare(scenario: list[str], seconds: float, warmup: float, realtime: bool = False) -> dict:
    live_means, cpu, window = live(scenario, seconds, warmup, realtime)
    virtual_means = virtual(scenario, seconds)
    rows = {}
    for key in virtual_means:
        if key in live_means:
            (lv, ln), (vv, vn) = live_means[key], virtual_means[key]
            rows[key] = {"live_ms": lv * 1e3, "virtual_ms": vv * 1e3, "ratio": lv / vv, "live_calls": ln, "virtual_calls": vn}
    return {"seconds": window, "server_cpu": cpu, "environments": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", help="scenario TOML (default: the bundled seed topology)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window, live and simulated (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="live seconds before the window (default 5)")
    parser.add_argument("--arrivals", help='arrival process of every traffic group, e.g. "poisson(200/s)" (default: the scenario\'s)')
    parser.add_argument("--realtime", action="store_true",
                        help="serve under SCHED_FIFO (root): what the code does, without other processes' CPU contention")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    scenario = Path(args.scenario) if args.scenario else ROOT / "edge" / "bundled" / "default.toml"
    with tempfile.TemporaryDirectory() as tmp:
        if args.arrivals:
            scenario = with_arrivals(scenario.resolve(), args.arrivals, Path(tmp))
        result = compare([str(scenario)], args.seconds, args.warmup, args.realtime)
    print(f"{'environment':<22} {'live ms':>9} {'virtual ms':>11} {'live/virtual':>13} {'calls live':>11} {'virtual':>8}")
    for key, row in result["environments"].items():
        print(f"{key:<22} {row['live_ms']:>9.3f} {row['virtual_ms']:>11.3f} {row['ratio']:>13.3f} {row['live_calls']:>11} {row['virtual_calls']:>8}")
    busiest = max((row["live_calls"] for row in result["environments"].values()), default=0)
    print(f"live: {busiest / result['seconds']:.0f} calls/s at the busiest environment; server CPU {result['server_cpu'] * 100:.0f}% "
          "of one core (load generator included)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
