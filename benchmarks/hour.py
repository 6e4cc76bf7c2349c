"""Wall time to simulate one hour of the default scenario (500 req/s), and what reporting costs.

Two runs in one process, alternating when ``--repeat`` > 1: the bare simulation (the series read
once, at the end), and the same with everything a user can ask for: the series every 30 simulated
seconds, the live progress bar (drawn by rich as on a terminal, into memory), an OpenMetrics scrape
every 15 simulated seconds, the JSON report and the four PNG plots. The aim (issue 25): the
bare hour under 30 s on the 2-core machine, reporting under 10% on top.

    python benchmarks/hour.py [--minutes 60] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from edge.scenario.load import load  # noqa: E402
from edge.scenario.resolved import LoadedScenario  # noqa: E402
from edge.metrics.openmetrics import OpenMetricsRecorder  # noqa: E402
from edge.report.outputs import write_outputs  # noqa: E402
from edge.report.progress import RunProgress  # noqa: E402
from edge.report.build import build_report  # noqa: E402
from edge.engine.simulate import default_scenario_path, simulate  # noqa: E402


def bare(loaded: LoadedScenario, seconds: float) -> tuple[float, int]:
    started = time.perf_counter()
    result = simulate(loaded, seed=1, duration=seconds, interval=seconds)
    return time.perf_counter() - started, result.metrics.clients.requests


def reported(loaded: LoadedScenario, seconds: float, out: Path) -> tuple[float, float, int]:
    """The whole wall time, and the part of it after the run: the report and its files."""
    recorders = []
    console = Console(file=io.StringIO(), force_terminal=True, width=160)

    def record(topology, front, clock) -> None:
        recorders.append(OpenMetricsRecorder(front.metrics, clock, 15.0, 1.7e9, seconds))
        recorders[0].begin()
        recorders.append(RunProgress(front.metrics, clock, seconds, console).__enter__())
        recorders[1].begin()

    started = time.perf_counter()
    try:
        result = simulate(loaded, seed=1, duration=seconds, setup=record)
    finally:
        recorders[1].__exit__()
    ran = time.perf_counter()
    report = build_report(result)
    recorders[0].scrape()
    write_outputs(report, json=out / "report.json", openmetrics=(recorders[0], out / "run.om"), plots=out / "plots")
    ended = time.perf_counter()
    return ended - started, ended - ran, result.metrics.clients.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    loaded = load(default_scenario_path())
    seconds = args.minutes * 60
    best = {"bare": float("inf"), "with reporting": float("inf")}
    files = float("inf")
    requests = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            wall, requests = bare(loaded, seconds)
            best["bare"] = min(best["bare"], wall)
            wall, after, _ = reported(loaded, seconds, Path(tmp))
            if wall < best["with reporting"]:
                best["with reporting"], files = wall, after
    print(f"default scenario, {args.minutes:g} simulated minutes, {requests:,} requests (best of {args.repeat})")
    for name, wall in best.items():
        print(f"  {name:<16}{wall:8.1f} s wall   {requests / wall:10,.0f} simulated req/s")
    print(f"  of which after the run (report, OpenMetrics, plots): {files:.2f} s")
    print(f"  reporting overhead: {best['with reporting'] / best['bare'] - 1:+.1%}   (aim: the bare hour under 30 s, reporting under 10% on top)")


if __name__ == "__main__":
    main()
