"""Live throughput of ``edge serve`` beside workerd: the seed chain and a single Worker, under wrk.

Both servers run the same code workers (benchmarks/live/workers/*.py for edge, mirroring
benchmarks/workerd/*.js): the chain gateway -> AUTH (auth) -> APP (app), and app alone. Each target
is measured with ``wrk -t1`` at each connection count (default 1 and 32), after a functional check
(200 "Hello from app" with the token; 403 and auth's message without it) and an untimed warm-up.

Printed: req/s, p50 and p99 per target x connections; the ratios edge/workerd of req/s and p99;
and the per-binding-hop overhead at 1 connection, (chain p50 - single p50) / 2 hops (the mean is
shown beside it), against the aim of under 50 us per hop.

    python benchmarks/live_chain.py [--seconds 10] [--connections 1,32] [--warmup 2] [--no-workerd]

edge is started as ``python -m edge.cli serve benchmarks/live/<kind>.toml --port 0 --admin-port 0``
with this interpreter; its routes are Host-based, so every request to it carries
``Host: example.com``. workerd is installed from npm on first use (see live_baseline.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import edge_serve  # noqa: E402
from live_baseline import (  # noqa: E402
    DEFAULT_CACHE_DIR,
    KINDS,
    TOKEN_HEADERS,
    WORKERD_VERSION,
    check_chain,
    check_single,
    ensure_workerd,
    run_wrk,
    workerd_server,
    workerd_version,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIVE_DIR = HERE / "live"

EDGE_HOST = "example.com"  # the routes in benchmarks/live/*.toml
HOPS = 2  # service-binding hops in the chain: gateway -> auth, gateway -> app
HOP_AIM_S = 50e-6

CHECKS = {"chain": check_chain, "single": check_single}
WRK_HEADERS = {"chain": TOKEN_HEADERS, "single": {}}


# --- edge serve ---------------------------------------------------------------------------------


@contextlib.contextmanager
def edge_server(kind: str) -> Iterator[tuple[str, int]]:
    """``edge serve benchmarks/live/<kind>.toml`` on free ports; yields (ingress base URL, pid)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    with edge_serve(str(LIVE_DIR / f"{kind}.toml")) as served:
        yield served.ingress + "/", served.pid


# --- the run ------------------------------------------------------------------------------------


def measure(name: str, url: str, kind: str, extra_headers: dict[str, str], conns: list[int], args) -> dict[int, dict]:
    CHECKS[kind](url, extra_headers)
    headers = {**extra_headers, **WRK_HEADERS[kind]}
    if args.warmup > 0:
        run_wrk(url, max(conns), args.warmup, headers)
    results = {}
    for c in conns:
        results[c] = run_wrk(url, c, args.seconds, headers)
        print(format_row(name, c, results[c]), flush=True)
    return results


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.3f}ms" if seconds is not None else "-"


def format_row(name: str, connections: int, r: dict) -> str:
    return (
        f"{name:<16}{connections:>6}{r['rps']:>11,.0f}{_ms(r['mean_s']):>11}{_ms(r['p50_s']):>11}"
        f"{_ms(r['p99_s']):>11}{r['non_2xx']:>9}{r['errors']:>8}"
    )


TABLE_HEADER = f"{'target':<16}{'conns':>6}{'req/s':>11}{'mean':>11}{'p50':>11}{'p99':>11}{'non-2xx':>9}{'errors':>8}"


def hop_overhead(results: dict, server: str, c: int, stat: str) -> float | None:
    chain, single = results.get((server, "chain"), {}).get(c), results.get((server, "single"), {}).get(c)
    if chain is None or single is None or chain.get(stat) is None or single.get(stat) is None:
        return None
    return (chain[stat] - single[stat]) / HOPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per measurement (whole seconds)")
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk connection counts")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed wrk seconds before each target (0: none)")
    parser.add_argument("--no-workerd", action="store_true", help="measure edge only")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where npm installs workerd")
    args = parser.parse_args()
    conns = [int(c) for c in args.connections.split(",") if c.strip()]
    servers = ["edge"] + ([] if args.no_workerd else ["workerd"])

    if "workerd" in servers:
        started = time.monotonic()
        binary = ensure_workerd(args.cache_dir)
        print(
            f"workerd: {workerd_version(binary)} (npm workerd@{WORKERD_VERSION}) at {binary}, "
            f"ready in {time.monotonic() - started:.1f}s"
        )
    print(f"edge: {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"machine: {os.cpu_count()} cores, shared by wrk (-t1) and the server, nothing pinned")
    print(TABLE_HEADER, flush=True)

    results: dict[tuple[str, str], dict[int, dict]] = {}
    for kind in KINDS:
        for server in servers:
            name = f"{server} {kind}"
            if server == "edge":
                with edge_server(kind) as (url, _pid):
                    results[(server, kind)] = measure(name, url, kind, {"Host": EDGE_HOST}, conns, args)
            else:
                with workerd_server(kind, 0, args.cache_dir) as url:
                    results[(server, kind)] = measure(name, url, kind, {}, conns, args)

    print()
    print(f"wrk -t1, {max(1, round(args.seconds))}s per measurement after {args.warmup:g}s warm-up, loopback")
    print(TABLE_HEADER)
    for kind in KINDS:
        for server in servers:
            for c in conns:
                print(format_row(f"{server} {kind}", c, results[(server, kind)][c]))

    if "workerd" in servers:
        print()
        print("edge / workerd")
        print(f"{'target':<16}{'conns':>6}{'req/s':>11}{'p99':>11}")
        for kind in KINDS:
            for c in conns:
                e, w = results[("edge", kind)][c], results[("workerd", kind)][c]
                print(f"{kind:<16}{c:>6}{e['rps'] / w['rps']:>10.3f}x{e['p99_s'] / w['p99_s']:>10.2f}x")

    c0 = min(conns)
    print()
    print(f"per-binding-hop overhead = (chain - single) / {HOPS} hops, at {c0} connection(s); aim < {HOP_AIM_S * 1e6:.0f}us")
    for server in servers:
        p50 = hop_overhead(results, server, c0, "p50_s")
        mean = hop_overhead(results, server, c0, "mean_s")
        if p50 is None:
            continue
        verdict = "" if server != "edge" else ("  (meets the aim)" if p50 < HOP_AIM_S else "  (over the aim)")
        mean_text = f", mean {mean * 1e6:.1f}us" if mean is not None else ""
        print(f"  {server:<8} p50 {p50 * 1e6:.1f}us{mean_text}{verdict}")
    if any(r["non_2xx"] or r["errors"] for per in results.values() for r in per.values()):
        print("warning: some runs had non-2xx responses or socket errors; see the table")


if __name__ == "__main__":
    main()
