"""Soak: does anything grow that should stay flat? A live server for minutes, a simulation for a day.

Live: ``edge serve --traffic`` on the bundled seed topology (500 requests/s from its own traffic
groups, over real sockets) for ``--live-minutes``. Every ``--every`` seconds it reads the server's
RSS and open descriptors from /proc, and scrapes its /metrics: trio tasks alive (``edge_tasks``)
and the p99 of top-level latency over that window (from the difference of two scrapes of the
``edge_request_duration_seconds`` buckets, interpolated as PromQL's ``histogram_quantile`` does).

Virtual: the same topology at ``--virtual-rate`` requests/s for 1 simulated hour and for
``--virtual-hours``, each in a process of its own: peak RSS of each (what a longer run costs beyond
the report's series), wall time, and the drift of the clients' p99 between the first and the last
tenth of the long run (its own series).

    python benchmarks/soak.py [--live-minutes 10] [--every 30] [--virtual-hours 24] [--virtual-rate 20]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import edge_serve, open_fds, rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "edge" / "bundled"


def scrape(url: str) -> tuple[int, dict[float, float]]:
    """(edge_tasks, cumulative top-level latency buckets summed over every series)."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    tasks, buckets = 0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "edge_tasks":
                tasks = int(sample.value)
            elif sample.name == "edge_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return tasks, buckets


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """The q-quantile of what was observed between two scrapes, as PromQL interpolates it."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if bound == math.inf:
                return lower
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-12)
        lower, below = bound, cumulative
    return lower


def soak_live(minutes: float, every: float) -> None:
    print(f"live: edge serve --traffic (seed topology, 500 req/s), {minutes:g} min, a reading every {every:g} s")
    print(f"{'t s':>6}{'RSS MB':>9}{'fds':>6}{'tasks':>7}{'requests':>10}{'p99 ms':>9}")
    rows = []
    with edge_serve(str(BUNDLED / "default.toml"), "--traffic") as served:
        pid, url = served.pid, served.metrics
        started = time.monotonic()
        _, last = scrape(url)
        while (elapsed := time.monotonic() - started) < minutes * 60:
            time.sleep(min(every, minutes * 60 - elapsed))
            tasks, now = scrape(url)
            p99 = histogram_quantile(0.99, last, now)
            requests = int(now.get(math.inf, 0) - last.get(math.inf, 0))
            rows.append((time.monotonic() - started, rss_mb(pid), open_fds(pid), tasks, requests, p99 * 1e3))
            last = now
            print("{:>6.0f}{:>9.1f}{:>6}{:>7}{:>10,}{:>9.1f}".format(*rows[-1]), flush=True)
    if len(rows) >= 2:
        first, final = rows[0], rows[-1]
        print(f"live drift, first reading -> last: RSS {first[1]:.1f} -> {final[1]:.1f} MB ({final[1] - first[1]:+.1f}), "
              f"fds {first[2]} -> {final[2]}, tasks {first[3]} -> {final[3]}, p99 {first[5]:.1f} -> {final[5]:.1f} ms "
              f"(x{final[5] / first[5]:.2f})")


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from edge.scenario.load import load
from edge.engine.simulate import simulate
loaded = load(Path(sys.argv[1]))
started = time.perf_counter()
result = simulate(loaded, seed=1, duration=float(sys.argv[2]))
wall = time.perf_counter() - started
p99 = result.series.clients.latency_p99_s
print(json.dumps({"wall_s": wall, "requests": result.metrics.clients.requests, "p99": p99,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def soak_virtual(hours: float, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(BUNDLED / "workers", Path(tmp) / "workers")
        scenario = Path(tmp) / "soak.toml"
        text = (BUNDLED / "default.toml").read_text()
        scenario.write_text(text.replace('arrivals = "poisson(500/s)"', f'arrivals = "poisson({rate:g}/s)"'))
        print(f"\nvirtual: the seed topology at {rate:g} req/s, each duration in a process of its own")
        print(f"{'simulated':>10}{'wall s':>9}{'requests':>12}{'peak RSS':>11}")
        runs = {}
        for label, seconds in (("1 h", 3600.0), (f"{hours:g} h", hours * 3600.0)):
            out = subprocess.run([sys.executable, "-c", CHILD, str(scenario), str(seconds), str(ROOT)],
                                 check=True, capture_output=True, text=True)
            runs[label] = run = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{label:>10}{run['wall_s']:>9.1f}{run['requests']:>12,}{run['rss_mb']:>8.0f} MB", flush=True)
        short, long = runs["1 h"], runs[f"{hours:g} h"]
        p99 = long["p99"]
        tenth = max(1, len(p99) // 10)
        head, tail = sorted(p99[:tenth])[tenth // 2], sorted(p99[-tenth:])[tenth // 2]
        print(f"virtual drift: peak RSS {short['rss_mb']:.0f} MB for 1 h, {long['rss_mb']:.0f} MB for {hours:g} h; "
              f"clients' p99, median of the first tenth of intervals {head * 1e3:.2f} ms, of the last {tail * 1e3:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between live readings")
    parser.add_argument("--virtual-hours", type=float, default=24.0)
    parser.add_argument("--virtual-rate", type=float, default=20.0, help="requests/s of the simulated soak")
    args = parser.parse_args()
    if args.live_minutes > 0:
        soak_live(args.live_minutes, args.every)
    if args.virtual_hours > 0:
        soak_virtual(args.virtual_hours, args.virtual_rate)


if __name__ == "__main__":
    main()
