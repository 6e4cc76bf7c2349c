"""The ``edge`` command.

Exit codes: 0 ok, 1 thresholds failed, 2 bad input (the message names the file, the path inside it
and what was expected).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from edge import config
from edge.units import parse_duration

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _load(path: str | None) -> config.LoadedScenario:
    from edge.runtime import default_scenario_path

    return config.load(path or default_scenario_path())


def cmd_run(args: argparse.Namespace) -> int:
    from edge.report import build_report, print_summary, write_json
    from edge.runtime import simulate

    loaded = _load(args.scenario)
    err = Console(stderr=True)
    started = time.perf_counter()  # the shell may time itself; the model never reads this clock
    result = simulate(loaded, seed=args.seed, duration=args.duration)
    wall = time.perf_counter() - started
    report = build_report(result)
    if args.json:
        write_json(report, args.json)
    if not args.quiet:
        print_summary(report)
        err.print(
            f"[dim]simulated {result.simulated:,.0f}s in {wall:,.1f}s wall "
            f"({report.clients.requests / wall:,.0f} requests/s, {result.events / wall:,.0f} timer events/s)[/dim]"
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args.scenario)
    spec = loaded.spec
    envs = sum(len(config.environments_of(s)) for s in spec.services)
    print(f"{loaded.file}: ok ({len(spec.services)} services, {envs} environments, {len(spec.traffic)} traffic groups)")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """The "Bound Services" view (seed 002): who calls whom, through which binding."""
    spec = _load(args.scenario).spec
    for service in spec.services:
        exposure = ", ".join(service.routes) if service.routes else "private"
        print(f"{service.name}  [{exposure}]")
        for env_name, env in config.environments_of(service).items():
            bindings = {**service.bindings, **env.bindings}
            for name, target in bindings.items():
                print(f"  {env_name}: {name} -> {target}")
        if service.split is not None:
            split = ", ".join(f"{k} {v:g}%" for k, v in service.split.weights.items())
            print(f"  split: {split}" + (f"; retry 5xx {'/'.join(service.split.retry.methods)} on {service.split.retry.to}" if service.split.retry else ""))
    return EXIT_OK


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge", description="Simulate a Workers-style edge platform.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario in virtual time and report")
    run.add_argument("scenario", nargs="?", help="scenario TOML (default: the bundled seed topology)")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    run.add_argument("--duration", type=_duration, default=None, help='simulated traffic duration, e.g. "10m" (default: the scenario\'s)')
    run.add_argument("--json", metavar="PATH", help="write the JSON report here")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a scenario without running it")
    check.add_argument("scenario", nargs="?")
    check.set_defaults(func=cmd_check)

    graph = sub.add_parser("graph", help="show the bound-services dependency view")
    graph.add_argument("scenario", nargs="?")
    graph.set_defaults(func=cmd_graph)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
