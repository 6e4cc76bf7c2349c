"""``edge tune`` on the bundled example (scenarios/tune-canary.toml): today's adaptive run, which
stops once its recommendation is decided on interval bounds, against the fixed count of
replications edge tune used to run (20 per schedule), in the same run, on the same seeds and cores.

    python benchmarks/tune.py [--fixed 20] [--budget 200] [--jobs N]

For each: replications per schedule, simulations (a schedule's replication is a bad and a good
canary: two), wall time, whether the answer is decided, and the recommendation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.scenario import config  # noqa: E402
from edge.tune.budget import Budget  # noqa: E402
from edge.tune.tuner import HYPOTHESES, tune  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "tune-canary.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", type=int, default=20, help="replications per schedule of the fixed run (default 20)")
    parser.add_argument("--budget", type=int, default=200, help="at most this many per schedule in the adaptive run (default 200)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: every core)")
    args = parser.parse_args()
    loaded = config.load(SCENARIO)
    print(f"edge tune, {SCENARIO.name}, {args.jobs} processes:")
    for name, budget in (("fixed", Budget(fixed=args.fixed)), ("adaptive", Budget(replications=args.budget))):
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            result = tune(loaded, budget=budget, executor=pool)
        wall = time.perf_counter() - started
        each = "/".join(str(c.replications) for c in result.candidates)
        simulations = sum(c.replications for c in result.candidates) * len(HYPOTHESES)
        answer = f"#{result.recommended}" if result.recommended is not None else "none"
        state = "decided" if result.decided else f"not decided ({'; '.join(result.undecided)})"
        print(f"  {name:9} {budget!s:24} replications per schedule {each:15} {simulations:4} simulations "
              f"{wall:7.1f} s  {result.rounds} round(s)  recommends {answer}, {state}")


if __name__ == "__main__":
    main()
