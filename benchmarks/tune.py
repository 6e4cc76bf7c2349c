"""Replications per second of ``edge tune`` on the bundled example (scenarios/tune-canary.toml):
one process against a process pool over every core, in the same run, with the same seeds (the
answers must be identical: the check is part of the benchmark).

    python benchmarks/tune.py [--replications 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from edge.scenario import config  # noqa: E402
from edge.tune.tuner import task_count, tune  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "tune-canary.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=3, help="per schedule and hypothesis (default 3)")
    args = parser.parse_args()
    loaded = config.load(SCENARIO)
    count = task_count(loaded, args.replications)
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    alone = tune(loaded, replications=args.replications, executor=None)
    one = time.perf_counter() - started
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=cores) as pool:
        pooled = tune(loaded, replications=args.replications, executor=pool)
    every = time.perf_counter() - started
    assert msgspec.json.encode(alone) == msgspec.json.encode(pooled), "a process pool must not change the answers"
    print(f"edge tune, {SCENARIO.name}: {count} replications (4 schedules x 2 hypotheses x {args.replications})")
    print(f"  one process      {one:7.1f} s   {count / one:6.2f} replications/s")
    print(f"  {cores} processes      {every:7.1f} s   {count / every:6.2f} replications/s   ({one / every:.2f}x)")


if __name__ == "__main__":
    main()
