"""Cost of a large topology: 1,000 code services (100 chains of 10), 2,000 requests/s, 10 s.

What a large topology costs should grow with the work it does, not with the capacity it is
configured with: slots come into being when calls need them. Each configuration runs in its own
child process (so that its peak RSS is its own): the default concurrency (256 slots a service) and
``concurrency = 8``, plus an empty baseline (the interpreter with edge imported) for reference,
and a simulated minute of the default scenario (three services), whose speed per hop (a call an
environment answers) the large topology's is compared with. The aim (issue 25): 10,000
code services at 80% or more of the default scenario's speed per hop, under 1 GB.

    python benchmarks/scale.py [--chains 100] [--depth 10] [--seconds 10] [--rate 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def scenario(chains: int, depth: int, rate: float, seconds: float, concurrency: int | None) -> str:
    lines = ["[scenario]", 'name = "scale"', f'duration = "{seconds}s"', "seed = 1", "cores = 64", ""]
    limit = "" if concurrency is None else f"concurrency = {concurrency}\n"
    for chain in range(chains):
        for hop in range(depth):
            name = f"c{chain}h{hop}"
            lines.append("[[services]]")
            lines.append(f'name = "{name}"')
            if hop == 0:
                lines.append(f'routes = ["chain{chain}.example.com/*"]')
            lines.append(f'worker = "{HERE / "workers" / "hop.py"}"')
            if hop + 1 < depth:
                lines.append(f'bindings = {{ NEXT = "c{chain}h{hop + 1}" }}')
            lines.append(limit)
    requests = ", ".join(f'{{ url = "https://chain{chain}.example.com/" }}' for chain in range(chains))
    lines += ["[[traffic]]", f'arrivals = "poisson({rate}/s)"', f"requests = [{requests}]", ""]
    return "\n".join(lines)


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from edge.scenario.load import load
from edge.engine.simulate import simulate
if sys.argv[1] == "-":
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    raise SystemExit
started = time.perf_counter()
loaded = load(Path(sys.argv[1]))
loading = time.perf_counter() - started
started = time.perf_counter()
result = simulate(loaded, seed=1, duration=float(sys.argv[3]) if len(sys.argv) > 3 else None)
wall = time.perf_counter() - started
hops = sum(stats.answered for stats in result.metrics.environments.values())
print(json.dumps({"load_s": loading, "wall_s": wall, "requests": result.metrics.clients.requests, "hops": hops,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(path: str, *duration: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(ROOT), *duration], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    args = parser.parse_args()

    baseline = run_child("-")
    print(f"{args.chains * args.depth:,} code services ({args.chains} chains of {args.depth}), "
          f"poisson {args.rate:g}/s for {args.seconds:g} simulated s")
    print("(wall s: the simulation; loading the scenario is timed apart)")
    print(f"{'configuration':<24}{'wall s':>9}{'requests':>10}{'hops/s':>10}{'peak RSS':>11}")
    print(f"{'interpreter + edge':<24}{'':>9}{'':>10}{'':>10}{baseline['rss_mb']:>8.0f} MB")
    # A minute of the default scenario (30k requests): long enough for its speed to be measured.
    default = run_child(str(ROOT / "edge" / "bundled" / "default.toml"), "60")
    default_speed = default["hops"] / default["wall_s"]
    print(f"{'default scenario':<24}{default['wall_s']:>9.1f}{default['requests']:>10,}{default_speed:>10,.0f}{default['rss_mb']:>8.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        for label, concurrency in (("default concurrency", None), ("concurrency = 8", 8)):
            path = Path(tmp) / "scale.toml"
            path.write_text(scenario(args.chains, args.depth, args.rate, args.seconds, concurrency))
            figures = run_child(str(path))
            speed = figures["hops"] / figures["wall_s"]
            print(f"{label:<24}{figures['wall_s']:>9.1f}{figures['requests']:>10,}{speed:>10,.0f}{figures['rss_mb']:>8.0f} MB"
                  f"   {speed / default_speed:.0%} of the default scenario's speed per hop (aim: 80%, under 1 GB);"
                  f" loading the scenario (parse, checks) {figures['load_s']:.2f} s")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
