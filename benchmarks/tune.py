"""``edge tune`` on the bundled example (scenarios/tune-canary.toml), on the batched engine against
the per-request one, in the same run, on the same seeds and cores: the adaptive run (until its
recommendation is decided) and ``--power`` (320 simulations). The aims (issue 25): decided in at
most 20 s, ``--power`` in at most 60 s, with the same recommendation and intervals that agree.

    python benchmarks/tune.py [--budget N] [--jobs N] [--batched-only]

For each: wall time, simulations, the recommendation and whether it is decided, and the
recommended schedule's figures with their intervals; then the ratios per-request / batched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.scenario.load import load  # noqa: E402
from edge.scenario.resolved import LoadedScenario  # noqa: E402
from edge.tune.budget import Budget  # noqa: E402
from edge.tune.intervals import Estimate  # noqa: E402
from edge.tune.power import power  # noqa: E402
from edge.tune.tuner import tune  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "tune-canary.toml"


def shown(e: Estimate, scale: float = 1.0, unit: str = "") -> str:
    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return f"{e.value * scale:.3g}{unit}"
    return f"{e.value * scale:.3g}{unit} ({e.low * scale:.3g}-{e.high * scale:.3g})"


def adaptive(loaded: LoadedScenario, budget: int | None, jobs: int, per_request: bool) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        result = tune(loaded, budget=None if budget is None else Budget(replications=budget), executor=pool, per_request=per_request)
    wall = time.perf_counter() - started
    engine = result.engine
    answer = f"#{result.recommended}" if result.recommended is not None else "none"
    state = "decided" if result.decided else "not decided"
    print(f"  adaptive  {'per-request' if per_request else 'batched':12} {wall:7.1f} s  {engine.batched + engine.per_request:5} simulations "
          f"({engine.batched} batched, {engine.fell_back} fell back)  {result.rounds} rounds  recommends {answer}, {state}")
    if result.recommended is not None:
        c = result.candidates[result.recommended]
        print(f"            {'':12} #{result.recommended} on {c.replications} replications: caught {shown(c.caught, 100, '%')}, "
              f"time to rollback {shown(c.time_to_rollback_s, unit=' s')}, errors seen {shown(c.errors_seen)}, "
              f"false rollback {shown(c.false_rollback, 100, '%')}, rollout time {shown(c.rollout_time_s, unit=' s')}")
    return wall


def curves(loaded: LoadedScenario, jobs: int, per_request: bool) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        result = power(loaded, executor=pool, per_request=per_request)
    wall = time.perf_counter() - started
    smallest = ", ".join(f"#{i} {c.smallest_caught or 'none'}" for i, c in enumerate(result.curves))
    print(f"  --power   {'per-request' if per_request else 'batched':12} {wall:7.1f} s  {result.engine.batched + result.engine.per_request:5} "
          f"simulations  caught >= {result.target:.0%} from: {smallest}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=None, help="at most this many replications per schedule (default: the scenario's)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: every core)")
    parser.add_argument("--batched-only", action="store_true", help="skip the per-request runs (minutes)")
    args = parser.parse_args()
    loaded = load(SCENARIO)
    print(f"edge tune, {SCENARIO.name}, {args.jobs} processes:")
    walls = {}
    for per_request in (False, True)[: 1 if args.batched_only else 2]:
        walls["adaptive", per_request] = adaptive(loaded, args.budget, args.jobs, per_request)
        walls["power", per_request] = curves(loaded, args.jobs, per_request)
    if not args.batched_only:
        for mode in ("adaptive", "power"):
            print(f"  {mode}: batched {walls[mode, True] / walls[mode, False]:.0f}x faster than per-request")


if __name__ == "__main__":
    main()
