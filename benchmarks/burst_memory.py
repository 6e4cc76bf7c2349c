"""Memory a burst leaves in ``edge serve``, per allocator: CPython's own and jemalloc, in one run.

Each server is ``edge serve benchmarks/live/chain.toml --max-connections 4096 --allocator A`` (the
real command, so ``--allocator jemalloc`` starts itself again on jemalloc as it does for a user).
It takes 16 closed-loop connections, then a burst of ``--burst`` connections, then 16 again, then
nothing for ``--idle`` seconds. Printed per allocator: RSS before the burst, right after it and at
the end of the idle time; the share of the burst's growth still held then; and the good throughput
of the 16 connections before the burst, so that memory given back is not bought with speed. Last,
jemalloc's figures over CPython's. The clients are ``overload.py``'s, in this process.

    python benchmarks/burst_memory.py [--burst 4096] [--idle 60] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overload import percentile, run_step  # noqa: E402
from served import edge_serve, rss_mb  # noqa: E402

CHAIN = str(Path(__file__).resolve().parent / "live" / "chain.toml")
STEADY = 16


def measure(allocator: str, args: argparse.Namespace) -> dict[str, float]:
    with edge_serve(CHAIN, "--max-connections", "4096", "--allocator", allocator) as served:
        pid, port = served.pid, int(served.ingress.rsplit(":", 1)[1])
        step = asyncio.run(run_step(port, STEADY, args.seconds, False))
        time.sleep(2)
        figures = {"good/s": len(step.good) / args.seconds, "p99 ms": percentile(step.good, 0.99) * 1e3, "before": rss_mb(pid)}
        asyncio.run(run_step(port, args.burst, args.seconds, False))
        figures["burst"] = rss_mb(pid)
        asyncio.run(run_step(port, STEADY, args.seconds, False))
        time.sleep(args.idle)
        figures["idle"] = rss_mb(pid)
    grown = figures["burst"] - figures["before"]
    figures["held %"] = 100 * (figures["idle"] - figures["before"]) / grown if grown > 0 else 0.0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=4096, help="connections in the burst (default 4096)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of no traffic before the last reading (default 60)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load step (default 4)")
    args = parser.parse_args()
    print(f"burst of {args.burst} connections between two of {STEADY}; then {args.idle:g} s idle")
    print(f"{'allocator':>10} {'good/s':>8} {'p99 ms':>8} {'RSS before':>11} {'after burst':>12} {'after idle':>11} {'held':>6}")
    results = {}
    for allocator in ("python", "jemalloc"):
        f = results[allocator] = measure(allocator, args)
        print(f"{allocator:>10} {f['good/s']:>8.0f} {f['p99 ms']:>8.1f} {f['before']:>8.1f} MB {f['burst']:>9.1f} MB "
              f"{f['idle']:>8.1f} MB {f['held %']:>5.0f}%", flush=True)
    python, jemalloc = results["python"], results["jemalloc"]
    kept = {name: r["idle"] - r["before"] for name, r in results.items()}
    print(f"jemalloc / python: good/s {jemalloc['good/s'] / python['good/s']:.2f}x, "
          f"memory kept after the burst {kept['jemalloc']:.1f} / {kept['python']:.1f} MB")


if __name__ == "__main__":
    main()
