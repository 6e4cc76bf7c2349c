"""``edge tune`` on a Dask cluster: the same adaptive run in this process, then on a local cluster
of 1, 2, ... worker processes, in one run, on the same seeds; wall time and speed-up against
the one-worker cluster, and whether every answer is byte-identical.

    python benchmarks/tune_dask.py [--budget 24] [--workers 1,2]

A replication budget (``--budget``: replications per schedule at most) makes every run do the
same work: a round's size depends only on the replications so far, never on timing. The cluster
is ``distributed.LocalCluster`` (one thread per worker process, as a cluster of machines runs
one replication per core); ``edge tune --dask ADDRESS`` sends the same tasks through
``Client.get_executor()``. On a machine with N cores the speed-up is at most N.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from edge.scenario.load import load  # noqa: E402
from edge.scenario.resolved import LoadedScenario  # noqa: E402
from edge.tune.budget import Budget  # noqa: E402
from edge.tune.tuner import HYPOTHESES, tune  # noqa: E402

SCENARIO = ROOT / "scenarios" / "tune-canary.toml"


def timed(loaded: LoadedScenario, budget: Budget, executor) -> tuple[float, bytes, str]:
    started = time.perf_counter()
    result = tune(loaded, budget=budget, executor=executor)
    wall = time.perf_counter() - started
    simulations = sum(c.replications for c in result.candidates) * len(HYPOTHESES)
    answer = f"#{result.recommended}" if result.recommended is not None else "none"
    summary = f"{simulations} simulations in {result.rounds} rounds, recommends {answer} ({result.stopped})"
    return wall, msgspec.json.encode(result), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24, help="replications per schedule at most (default 24)")
    parser.add_argument("--workers", default="1,2", help="cluster sizes to run, comma-separated (default 1,2)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",")]
    loaded = load(SCENARIO)
    budget = Budget(replications=args.budget)
    print(f"edge tune, {SCENARIO.name}, budget {args.budget} replications per schedule:")
    wall, reference, summary = timed(loaded, budget, None)
    print(f"  {'this process':22} {wall:7.1f} s  {summary}")
    walls: dict[int, float] = {}
    for size in sizes:
        with LocalCluster(n_workers=size, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(size)
            walls[size], answer, summary = timed(loaded, budget, client.get_executor())
        same = "identical answer" if answer == reference else "DIFFERENT ANSWER"
        speedup = f"x{walls[sizes[0]] / walls[size]:.2f} against {sizes[0]} worker(s)" if size != sizes[0] else ""
        print(f"  {f'Dask, {size} worker(s)':22} {walls[size]:7.1f} s  {summary}; {same} {speedup}")
        if answer != reference:
            sys.exit(1)


if __name__ == "__main__":
    main()
