"""The ``edge`` command.

Exit codes: 0 ok, 1 thresholds failed, 2 bad input (the message names the file, the path inside it
and what was expected, or the output that cannot be written), 130 interrupted by SIGINT (Ctrl-C),
143 by SIGTERM (128 + the signal's number, as shells report it). An interrupted command prints one
line and leaves no partial output behind.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

# Only what every command needs is imported here: numpy, trio, rich, the scenario and the admin
# API are imported by the commands that use them (`edge serve` starts twice, on jemalloc).
from edge.scenario.errors import ConfigError
from edge.live.admin_defaults import DEFAULT_ADMIN_PORT, TOKEN_ENV
from edge.platform import memory, redact
from edge.platform.files import OutputError, check_directory, check_file
from edge.platform.units import format_duration, parse_duration, parse_size
from edge.platform.user_errors import EdgeError, UsageError

if TYPE_CHECKING:
    from edge.scenario.resolved import LoadedScenario
    from edge.scenario.schema import Scenario

EXIT_OK = 0
EXIT_THRESHOLDS_FAILED = 1
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


E = TypeVar("E", bound=BaseException)

PROJECT_SCENARIO = "scenario.toml"
"""What a command given no scenario takes from the folder it runs in (``edge init`` writes it)."""


def _load(path: str | None) -> LoadedScenario:
    """The scenario at ``path``; none given: ./scenario.toml in a project folder, else the bundled one."""
    from edge.scenario import load

    if path is None and os.path.isfile(PROJECT_SCENARIO):
        path = PROJECT_SCENARIO
        print(f"edge: note: {PROJECT_SCENARIO} of this folder (give a scenario to take another)", file=sys.stderr)
    if not path:
        from edge.engine.simulate import default_scenario_path  # the engine only when it is needed (not for `edge check FILE`)

        path = default_scenario_path()
    loaded = load.load(path)
    for warning in loaded.warnings:
        print(f"edge: warning: {warning}", file=sys.stderr)
    return loaded


def _with_flags(loaded: LoadedScenario, args: argparse.Namespace) -> LoadedScenario:
    """The scenario with what ``edge run``'s flags change in its ``[scenario]`` table: a new
    value, the loaded one left as it was (``--duration`` and ``--seed`` are the run's arguments)."""
    if not args.measure_cpu:
        return loaded
    import msgspec

    scenario = msgspec.structs.replace(loaded.spec.scenario, measure_cpu=True)
    return msgspec.structs.replace(loaded, spec=msgspec.structs.replace(loaded.spec, scenario=scenario))


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edge.report.progress import RunProgress
    from edge.report.build import abort_check, build_report, failed_thresholds, print_summary
    from edge.report.outputs import write_outputs
    from edge.engine.simulate import simulate

    loaded = _with_flags(_load(args.scenario), args)
    _check_outputs(files=(args.json, args.openmetrics, args.html), directories=(args.plots,))
    err = Console(stderr=True)
    duration = args.duration if args.duration is not None else loaded.spec.scenario.duration.seconds
    show_progress = not args.quiet and (err.is_terminal if args.progress is None else args.progress)
    recorder = progress = None

    def setup(topology, front, clock) -> None:
        nonlocal recorder, progress
        if args.openmetrics:
            from edge.metrics.openmetrics import OpenMetricsRecorder  # prometheus_client: only for --openmetrics

            # Samples are stamped from a wall-clock time read here, in the shell: the model itself
            # never reads the wall clock (the JSON report stays byte-identical for a seed).
            start = 0.0 if args.openmetrics_start is None else args.openmetrics_start
            recorder = OpenMetricsRecorder(front.metrics, clock, args.scrape_interval, start, duration)
            recorder.begin()
        if show_progress:
            progress = RunProgress(front.metrics, clock, duration, err)
            progress.__enter__()
            progress.begin()

    started = time.perf_counter()  # the shell may time itself; the model never reads this clock
    try:
        result = simulate(loaded, seed=args.seed, duration=duration, interval=args.interval, setup=setup, stop_when=abort_check(loaded))
    finally:
        if progress is not None:
            progress.__exit__()
    wall = time.perf_counter() - started
    report = build_report(result)
    if recorder is not None:
        recorder.scrape()  # the state at the end of the run
        if args.openmetrics_start is None:
            recorder.ends_at(time.time())  # the run ends now: a dashboard's last 30 minutes show it whole
    written = write_outputs(report, json=args.json, openmetrics=(recorder, args.openmetrics) if recorder is not None else None,
                            html=args.html, plots=args.plots)
    if written and not args.quiet:
        err.print(f"[dim]plots: {', '.join(str(p) for p in written)}[/dim]")
    if not args.quiet:
        print_summary(report)
        err.print(
            f"[dim]simulated {result.simulated:,.0f}s in {wall:,.1f}s wall "
            f"({report.clients.requests / wall:,.0f} requests/s, {result.events / wall:,.0f} timer events/s)[/dim]"
        )
    failed = failed_thresholds(report)
    if report.stopped_early is not None:
        stop = report.stopped_early
        print(f"edge: run stopped at {format_duration(stop.at_s)} of {format_duration(duration)}: threshold failed: {stop.threshold}", file=sys.stderr)
    for t in failed:
        print(f"edge: threshold failed: {t.threshold} ({t.shown()})", file=sys.stderr)
    unanswered = report.clients.unanswered
    if unanswered:
        drain = format_duration(loaded.spec.scenario.drain.seconds)
        print(f"edge: {unanswered:,} request(s) never answered: still waiting when the run ended, after its {drain} drain", file=sys.stderr)
    return EXIT_THRESHOLDS_FAILED if failed or unanswered or report.stopped_early is not None else EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from edge.report.plots import write_plots
    from edge.report.build import read_json

    try:
        report = read_json(args.report)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.report}: {exc}") from None
    if args.directory is None and args.html is None:
        raise UsageError("nothing to write: give a DIRECTORY for the PNG plots, --html PATH, or both")
    _check_outputs(files=(args.html,), directories=(args.directory,))
    if args.html:
        from edge.report.page import write_html

        write_html(report, args.html)
        print(args.html)
    for path in write_plots(report, args.directory) if args.directory else ():
        print(path)
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edge.tune.budget import Budget
    from edge.tune.progress import TuneProgress
    from edge.tune.table import print_table
    from edge.tune.tuner import tune, write_json

    loaded = _load(args.scenario)
    if loaded.spec.tune is None:
        raise ConfigError(loaded.file, "tune", "expected a [tune] table (the hypothesis and the schedules to compare)")
    _check_outputs(files=(args.json, args.plot, args.power, *(path for _, path in args.export)))
    if args.power:
        if args.export:
            raise UsageError("--export writes the schedule a tune chose; --power compares schedules and chooses none")
        return _power(loaded, args)
    budget = Budget(fixed=args.replications) if args.replications is not None else args.budget
    progress = None if args.quiet else TuneProgress(Console(stderr=True))
    with _executor(args) as executor, progress or contextlib.nullcontext():
        result = tune(loaded, budget=budget, confidence=args.confidence, seed=args.seed, executor=executor, progress=progress,
                      per_request=args.per_request)
    if args.json:
        write_json(result, args.json)
    if args.plot:
        from edge.tune.plots import write_tune_plot

        write_tune_plot(result, args.plot)
    if not args.quiet:
        print_table(result)
    if args.export:
        from edge.platform.files import write_output
        from edge.tune.export import DEFAULT_PROMETHEUS, export

        for format, path in args.export:
            write_output(path, export(loaded, result, format, args.prometheus_url or DEFAULT_PROMETHEUS).encode())
            if not args.quiet:
                print(f"edge: {format}: {path}", file=sys.stderr)
    return EXIT_OK


def _export_target(text: str) -> tuple[str, str]:
    from edge.tune.export import FORMATS

    format, equals, path = text.partition("=")
    if not equals or format not in FORMATS or not path:
        raise argparse.ArgumentTypeError(f"expected FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}, e.g. argo=rollout.yaml; got {text!r}")
    return format, path


def _power(loaded: LoadedScenario, args: argparse.Namespace) -> int:
    """``edge tune --power``: the curves of ``tune.grid`` instead of the adaptive run."""
    from rich.console import Console

    from edge.tune.plots import write_power_plot
    from edge.tune.power import power
    from edge.tune.progress import TuneProgress
    from edge.tune.table import print_power_table
    from edge.tune.tuner import write_json

    assert loaded.spec.tune is not None
    if loaded.spec.tune.grid is None:
        raise ConfigError(loaded.file, "tune.grid", 'expected a grid of bugs for --power, e.g. grid = { errors = ["0.5%", "1%", "2%"] }')
    if args.plot or args.budget is not None:
        raise UsageError("--power: expected neither --plot nor --budget: a power run has its own PNG and a fixed --replications")
    progress = None if args.quiet else TuneProgress(Console(stderr=True))
    with _executor(args) as executor, progress or contextlib.nullcontext():
        result = power(loaded, replications=args.replications, confidence=args.confidence, seed=args.seed, executor=executor,
                       per_request=args.per_request, progress=progress)
    if args.json:
        write_json(result, args.json)
    write_power_plot(result, args.power)
    if not args.quiet:
        print_power_table(result)
    return EXIT_OK


def _executor(args: argparse.Namespace):
    """Where replications run: a Dask cluster (``--dask ADDRESS``), this machine's cores, or
    this process (``--jobs 1``)."""
    from concurrent.futures import ProcessPoolExecutor

    if args.dask:
        from distributed import Client

        @contextlib.contextmanager
        def dask():
            try:
                _dask_handshake(args.dask, args.dask_timeout)
                client = Client(args.dask, timeout=args.dask_timeout)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--dask: cannot reach the Dask scheduler at {args.dask}: {exc or 'no Dask handshake'}") from None
            with client:
                yield client.get_executor()

        return dask()
    if args.jobs == 1:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def processes():
        from edge.tune.processes import stop_workers

        executor = ProcessPoolExecutor(max_workers=args.jobs or os.cpu_count(), initializer=_replication_process)
        try:
            yield executor
        except BaseException:
            stop_workers(executor)  # interrupted (or failed): running replications are not waited for
            raise
        executor.shutdown()

    return processes()


def _dask_handshake(address: str, timeout: float) -> None:
    """Shake hands with the Dask scheduler at ``address`` within ``timeout``, or raise.

    ``Client`` keeps its timeout for a server that does not answer the connection, but one that
    accepts it and never speaks Dask (a web server, a port forwarded to nothing) holds it for
    ever: distributed's handshake waits past its own timeout. This bound is on the whole of it."""
    import asyncio

    from distributed.comm import connect

    async def handshake() -> None:
        comm = await connect(address, timeout=timeout)
        await comm.close()

    asyncio.run(asyncio.wait_for(handshake(), timeout))


def _replication_process() -> None:
    """A replication process leaves interrupts to the command: Ctrl-C reaches the whole process
    group, and each child would print a traceback of its own; the command terminates them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cmd_backfill(args: argparse.Namespace) -> int:
    from edge.metrics.openmetrics import backfill

    _check_outputs(directories=(args.data_dir,))
    print(backfill(args.openmetrics, args.data_dir), end="")
    print(f"edge: blocks written to {args.data_dir}; serve them with: prometheus --storage.tsdb.path={args.data_dir} "
          "--config.file=grafana/prometheus.yml --storage.tsdb.retention.time=100y")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args.scenario)
    spec = loaded.spec
    envs = sum(1 for _ in loaded.resolved.environments())
    print(f"{loaded.file}: ok ({len(spec.services)} services, {envs} environments, {len(spec.traffic)} traffic groups)")
    _print_statistical_gates(spec)
    return EXIT_OK


def cmd_fields(args: argparse.Namespace) -> int:
    from edge.scenario import fields

    if args.name is None:
        print(fields.render(), end="")
        return EXIT_OK
    found = fields.lookup(args.name)
    if found is None:
        names = [cls.__name__ for cls in fields.tables()]
        raise UsageError(f"no table or field called {args.name!r}: tables are {', '.join(names)}")
    print(found, end="")
    return EXIT_OK


def _print_statistical_gates(spec: Scenario) -> None:
    """What each rollout's statistical gates promise: the comparison's level at each planned
    comparison and over the rollout, the sequential test's bounds."""
    from edge.engine.rollout import plan_of

    for service in spec.services:
        if service.rollout is None:
            continue
        plan = plan_of(service.rollout)
        if plan.compare is not None:
            print(f"  {service.name}: {plan.compare.shown()}")
        if plan.sequential is not None:
            s = plan.sequential
            print(f"  {service.name}: sequential test {s.p0:.3%} against {s.p1:.3%}: false rollback at most {s.alpha:g}, "
                  f"missed at most {s.beta:g} (Wald's bounds; `edge tune` measures the rates)")


def cmd_import(args: argparse.Namespace) -> int:
    """Wrangler configuration files as one scenario (``edge.scenario.wrangler``)."""
    from pathlib import Path

    from edge.platform.files import write_output
    from edge.scenario.wrangler import import_files

    text = import_files(args.files)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    if Path(args.output).is_file() and not args.force:
        raise OutputError(f"{args.output}: exists; pass --force to replace it")
    _check_outputs(files=(args.output,))
    write_output(args.output, text.encode())
    return EXIT_OK


def cmd_fit(args: argparse.Namespace) -> int:
    """A scenario's model and arrivals fitted to an access log or to Prometheus (``edge.fit``): the figures as
    comments and the scenario text on stdout, or a whole scenario written with ``-o``."""
    from pathlib import Path

    from edge.fit.command import fit_log, output, plots
    from edge.fit.logs import split
    from edge.platform.files import write_output

    prometheus = ("--prometheus", "--selector", "--window", "--at", "--histogram", "--requests", "--status-label")
    given = [flag for flag in prometheus if getattr(args, flag[2:].replace("-", "_")) is not None]
    if (args.log is None) == (args.prometheus is None):
        raise UsageError("expected a log to fit or --prometheus URL, one of the two" + (", got both" if args.log else ""))
    if args.log is not None and given:
        raise UsageError(f"{given[0]} goes with --prometheus, not with a log")
    if args.prometheus is not None and (args.format is not None or args.service):
        raise UsageError(f"{'--format' if args.format is not None else '--service'} goes with a log, not with --prometheus")
    if args.output is not None and Path(args.output).is_file() and not args.force:
        raise OutputError(f"{args.output}: exists; pass --force to replace it")
    _check_outputs(files=(args.output,), directories=(args.plot,))
    if args.prometheus is not None:
        from edge.fit.command import binned_plot
        from edge.fit.prometheus import fit_prometheus, source_of

        header, fits, histogram = fit_prometheus(source_of(args.prometheus, args.selector, args.window, args.at,
                                                           args.histogram, args.requests, args.status_label))
    else:
        log, header, fits = fit_log(args.log, args.format, args.service)
    for fit in fits:
        for choice in (fit.latency, fit.size):
            if choice is not None and choice.warning:
                print(f"edge: warning: {fit.name}: {choice.warning}", file=sys.stderr)
    if args.output is not None:
        write_output(args.output, output(header, fits, scenario=True).encode())
        print("\n".join("# " + line for line in header))
        print(f"edge: scenario written to {args.output}; check it with: edge check {args.output}", file=sys.stderr)
    else:
        print(output(header, fits, scenario=False), end="")
    if args.plot:
        if args.prometheus is not None:
            written = binned_plot(args.plot, fits[0].name, histogram, fits[0].latency)
        else:
            written = plots(args.plot, split(log.records, args.service) if args.service else {"app": log.records}, fits)
        for path in written:
            print(f"edge: plot written to {path}", file=sys.stderr)
    return EXIT_OK


def _service_rule(text: str):
    from edge.fit.logs import parse_rule

    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_init(args: argparse.Namespace) -> int:
    """A new project to edit (``edge.scenario.templates``): runs at once, replaces nothing."""
    from edge.scenario.templates import write_project

    for path in write_project(args.directory, args.template):
        print(path)
    print(f"edge: next: cd {args.directory} && edge run scenario.toml   (or: edge serve scenario.toml)", file=sys.stderr)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """The "Bound Services" view (seed 002): who calls whom, through which binding."""
    from edge.report import graph

    resolved = _load(args.scenario).resolved
    print(graph.dot(resolved) if args.dot else graph.text(resolved), end="")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import trio

    from edge.live.ingress import Limits
    from edge.live.serve import serve

    from edge.live.admin_client import new_token

    loaded = _load(args.scenario)
    # Operator actions (weights, approvals) are logged at INFO: a record of what was done, not a
    # warning; a server shows them, a run's own output does not need them.
    logging.getLogger("edge").setLevel(logging.INFO)
    token = _admin_token(args)
    generated = token is None
    token = token or new_token()
    if not _is_loopback(args.admin_host):
        print(f"edge: warning: the admin API listens on {args.admin_host}: anyone who reaches it can change weights", file=sys.stderr)
    if args.queue_delay_target and not args.queue_delay_target < args.queue_delay_interval:
        raise UsageError(f"--queue-delay-target ({format_duration(args.queue_delay_target)}) must be under "
                         f"--queue-delay-interval ({format_duration(args.queue_delay_interval)}), or 0 to turn admission control off")
    limits = Limits(
        max_body_bytes=args.max_body, max_header_bytes=args.max_headers, max_url_bytes=args.max_url,
        header_timeout=args.client_timeout, body_timeout=args.client_timeout,
        write_timeout=args.write_timeout, max_in_flight=args.max_in_flight, max_connections=args.max_connections,
        queue_delay_target=args.queue_delay_target, queue_delay_interval=args.queue_delay_interval,
    )

    def ready(endpoints) -> None:
        name = loaded.spec.scenario.name
        print(f"edge: serving {name} on {endpoints['ingress'].url}", flush=True)
        print(f"edge: metrics on {endpoints.get('metrics', endpoints['ingress']).url}/metrics", flush=True)
        print(f"edge: admin API on {endpoints['admin'].url}", flush=True)
        if generated:  # printed this once, on stdout; never logged
            print(f"edge: admin token {token} (send `Authorization: Bearer TOKEN`; `edge weight` reads {TOKEN_ENV})", flush=True)
        print(f"edge: dashboard on {endpoints['ingress'].url}/dashboard", flush=True)

    return trio.run(
        functools.partial(
            serve, loaded, host=args.host, port=args.port, metrics_port=args.metrics_port,
            admin_host=args.admin_host, admin_port=args.admin_port, admin_token=token, limits=limits,
            server_header=args.server_header, drain=args.drain,
            seed=args.seed, traffic=args.traffic, on_ready=ready,
        )
    )


def cmd_weight(args: argparse.Namespace) -> int:
    from edge.live.admin_client import set_weight

    weights = set_weight(args.admin, args.service, args.environment, args.percent, token=_required_token(args), pause_rollout=args.pause_rollout)
    print(f"{args.service}: " + ", ".join(f"{env} {pct:g}%" for env, pct in weights.items()))
    return EXIT_OK


def cmd_rollout(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edge.live.admin_client import rollout_action, rollouts
    from edge.report.rollouts import decode, print_rollout

    if args.action != "status" and args.service is None:
        raise UsageError(f"`edge rollout {args.action}` needs the SERVICE whose rollout to {args.action}")
    console = Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=True)
    if args.action == "status":
        found = rollouts(args.admin, args.service, token=_required_token(args))
    else:
        done, report = rollout_action(args.admin, args.service, args.action, token=_required_token(args))
        console.print(f"{args.service}: {done}")
        found = {args.service: report}
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    if not found:
        console.print("no rollouts: no service of the scenario has a [services.rollout]")
    for service, report in found.items():
        print_rollout(console, service, decode(report))
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    from edge.live.admin_client import versions

    history = versions(args.admin, _environment(args), token=_required_token(args))
    if args.json:
        print(json.dumps(history, indent=2))
        return EXIT_OK
    _print_history(args.environment, history)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from edge.live.admin_client import rollback

    history = rollback(args.admin, _environment(args), args.to, args.message, token=_required_token(args))
    print(f"{args.environment}: version {history['active']} serves again ({history['deployments'][-1]['message']})")
    return EXIT_OK


def _print_history(environment: str, history: dict) -> None:
    print(f"{environment}: version {history['active']} serving")
    for v in history["versions"]:
        mark = "*" if v["number"] == history["active"] else " "
        tags = " ".join(f"{k}={val}" for k, val in v["tags"].items())
        print(f"{mark} v{v['number']:<5} {format_duration(v['at_s']):>9}  {v['message']}" + (f"  [{tags}]" if tags else ""))
    print("deployments:")
    for d in history["deployments"]:
        print(f"  {format_duration(d['at_s']):>9}  v{d['version']:<5} {d['message']}")


def _environment(args: argparse.Namespace) -> str:
    if "@" not in args.environment:
        raise UsageError(f"expected SERVICE@ENVIRONMENT (e.g. app@production), got {args.environment!r}")
    return args.environment


def _required_token(args: argparse.Namespace) -> str:
    token = _admin_token(args)
    if token is None:
        raise UsageError(f"no admin token: set {TOKEN_ENV} (or pass --admin-token) to the token `edge serve` printed at start")
    return token


def _admin_token(args: argparse.Namespace) -> str | None:
    """The operator's admin token: ``--admin-token``, else the environment (which, unlike a flag,
    other users cannot read in ``ps``); None when neither is set."""
    from edge.live.admin_client import token_problem

    token = args.admin_token if args.admin_token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None and (problem := token_problem(token)) is not None:
        where = "--admin-token" if args.admin_token is not None else TOKEN_ENV
        raise ConfigError(where, "", f"not a usable admin token: {problem}")
    return token


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5 or 0.1, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {text!r}")
    return value


def _size(text: str) -> int:
    try:
        return int(parse_size(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return seconds


def _budget(text: str):
    from edge.tune.budget import parse_budget

    try:
        return parse_budget(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _confidence(text: str) -> float:
    value = _percent(text)
    if not 50 <= value < 100:
        raise argparse.ArgumentTypeError(f"expected a confidence from 50 to below 100 percent, got {text!r}")
    return value / 100


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge", description="Simulate a Workers-style edge platform.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario in virtual time and report")
    run.add_argument("scenario", nargs="?", help="scenario TOML (default: ./scenario.toml if this folder has one, else the bundled seed topology)")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    run.add_argument("--duration", type=_duration, default=None, help='simulated traffic duration, e.g. "10m" (default: the scenario\'s)')
    run.add_argument("--json", metavar="PATH", help="write the JSON report here")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    run.add_argument("--openmetrics", metavar="PATH", help="write the run's metrics as timestamped OpenMetrics (for `edge backfill`)")
    run.add_argument("--scrape-interval", type=_duration, default=15.0, help='simulated time between two OpenMetrics scrapes (default "15s")')
    run.add_argument("--openmetrics-start", type=float, default=None, metavar="EPOCH",
                     help="timestamp of simulated time 0, in epoch seconds (default: the run ends now, so dashboards' recent ranges show it)")
    run.add_argument("--html", metavar="PATH", help="write the report as one self-contained HTML page (tables, interactive charts)")
    run.add_argument("--plots", metavar="DIR", help="draw PNG plots of the run into DIR (latency, traffic, canary, CPU)")
    run.add_argument("--interval", type=_duration, default=None,
                     help="simulated time between two points of the report's series and plots (default: the smallest round interval giving at most 120 points)")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a live progress bar on stderr (default: when stderr is a terminal)")
    run.add_argument("--measure-cpu", action="store_true",
                     help="charge code workers' measured CPU too, as [scenario] measure_cpu does (the run is then not deterministic)")
    run.set_defaults(func=cmd_run)

    plot = sub.add_parser("plot", help="draw the PNG plots and/or the HTML report of a JSON report (`edge run --json`)")
    plot.add_argument("report", help="a JSON report written by `edge run --json`")
    plot.add_argument("directory", nargs="?", help="where to write the PNG files")
    plot.add_argument("--html", metavar="PATH", help="write the HTML report here (as `edge run --html`)")
    plot.set_defaults(func=cmd_plot)

    backfill = sub.add_parser("backfill", help="turn `edge run --openmetrics` output into Prometheus TSDB blocks (promtool)")
    backfill.add_argument("openmetrics", help="the file `edge run --openmetrics` wrote")
    backfill.add_argument("data_dir", help="a Prometheus data directory (--storage.tsdb.path) to write blocks into")
    backfill.set_defaults(func=cmd_backfill)

    tune = sub.add_parser("tune", help="compare rollout schedules by simulation: catch rates, errors seen, false rollbacks, time")
    tune.add_argument("scenario", help="a scenario with a rollout and a [tune] table")
    rounds = tune.add_mutually_exclusive_group()
    rounds.add_argument("--budget", type=_budget, default=None,
                        help='stop by then if not decided: replications per schedule ("200") or wall time ("5m") (default: the scenario\'s tune.replications)')
    rounds.add_argument("--replications", type=_positive_int, default=None,
                        help="run exactly this many replications per schedule, in one round, without stopping early")
    tune.add_argument("--confidence", type=_confidence, default=0.95, help="of every interval, in percent (default 95)")
    tune.add_argument("--seed", type=int, default=None, help="first seed (replication i uses seed + i under every schedule)")
    tune.add_argument("--jobs", type=int, default=None, help="worker processes (default: every core; 1 runs in this process)")
    tune.add_argument("--dask", metavar="ADDRESS", help="run the replications on this Dask scheduler (e.g. tcp://10.0.0.5:8786)")
    tune.add_argument("--dask-timeout", type=_positive_duration, default=10.0, metavar="D",
                      help='how long to keep trying to reach the --dask scheduler before exit 2 (default "10s")')
    tune.add_argument("--json", metavar="PATH", help="write the estimates as JSON")
    tune.add_argument("--plot", metavar="PATH", help="draw the trade-off curves as a PNG")
    tune.add_argument("--power", metavar="PATH", help="instead: P(caught) and time to rollback at each bug of tune.grid, drawn as a PNG "
                      "(--replications per point, default the grid's)")
    tune.add_argument("--per-request", action="store_true",
                      help="simulate every request as an event, even where requests cannot meet and the batched engine would draw them at once")
    tune.add_argument("--export", metavar="FORMAT=PATH", action="append", type=_export_target, default=[],
                      help="write the chosen schedule for the rollout tool: argo (a Rollout and its AnalysisTemplate), "
                           "flagger (a Canary and its MetricTemplates) or wrangler (a script of `wrangler versions deploy` "
                           "steps); repeatable, e.g. --export argo=rollout.yaml")
    tune.add_argument("--prometheus-url", metavar="URL", default=None,
                      help="the Prometheus the exported gates query (default http://prometheus:9090)")
    tune.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    tune.set_defaults(func=cmd_tune)

    check = sub.add_parser("check", help="validate a scenario without running it")
    check.add_argument("scenario", nargs="?", help="scenario TOML (default: ./scenario.toml if this folder has one, else the bundled seed topology)")
    check.set_defaults(func=cmd_check)

    fields_ = sub.add_parser("fields", help="the scenario file's fields: every table, or one table or field, with its type, default and meaning")
    fields_.add_argument("name", nargs="?", help="a table (Traffic, Rollout, ...) or a field (arrivals, steps, ...); none: the whole reference")
    fields_.set_defaults(func=cmd_fields)

    imp = sub.add_parser("import", help="turn wrangler.toml / wrangler.json(c) files into a scenario with placeholder models")
    imp.add_argument("files", nargs="+", metavar="WRANGLER_FILE", help="wrangler.toml, wrangler.json or wrangler.jsonc; several form one topology")
    imp.add_argument("-o", "--output", metavar="PATH", help="write the scenario here (default: stdout)")
    imp.add_argument("--force", action="store_true", help="replace PATH if it exists")
    imp.set_defaults(func=cmd_import)

    fit = sub.add_parser("fit", help="fit a scenario's model (latency, size, errors) and arrivals to an access log or to Prometheus",
                         description="Maximum-likelihood fits of lognormal, gamma, Weibull and exponential (chosen by AIC, tested by "
                                     "Kolmogorov-Smirnov or chi-square; the empirical distribution when none fits), the error ratio and "
                                     "the arrival rate, each with its uncertainty, printed as scenario text to paste.")
    fit.add_argument("log", nargs="?", default=None,
                     help="an access log with request times, e.g. nginx's $request_time or $upstream_response_time, Apache's %%D, "
                          "JSON lines with a duration, a HAR (or --prometheus instead)")
    fit.add_argument("--format", metavar="FORMAT", default=None,
                     help="the log's format as replay_format takes it: nginx's log_format or Apache's LogFormat text, "
                          "jsonl or har (default from the extension, as replay; clf logs no request time)")
    source = fit.add_argument_group("from Prometheus", "instead of a log: what a running Prometheus recorded over a window")
    source.add_argument("--prometheus", metavar="URL", default=None, help="Prometheus's base URL, e.g. http://127.0.0.1:9090")
    source.add_argument("--selector", metavar="MATCHERS", default=None,
                        help='label matchers added to every series read, e.g. \'{service="app",environment="production"}\' (default: all)')
    source.add_argument("--window", metavar="DURATION", default=None, help="how far back from now (or --at) to read, a PromQL duration (default 1h)")
    source.add_argument("--at", metavar="TIME", default=None,
                        help="the window's end: seconds since the epoch or an ISO 8601 time (default: now)")
    source.add_argument("--histogram", metavar="NAME", default=None,
                        help="the latency histogram, classic (NAME_bucket) or native (default edge_environment_duration_seconds)")
    source.add_argument("--requests", metavar="NAME", default=None, help="the request counter (default edge_requests_total)")
    source.add_argument("--status-label", metavar="LABEL", default=None,
                        help='the counter\'s status label, a 5xx being a value matching "5.." (default status_class)')
    fit.add_argument("--service", metavar="NAME=HOST/PATH", type=_service_rule, action="append", default=[],
                     help='a service and the requests it served, as a route: "api=example.com/api/*", "*" for any host '
                          '("api=*/api/*"); repeat for several (the most specific wins). Default: one service, "app"')
    fit.add_argument("-o", "--output", metavar="SCENARIO", default=None, help="write a whole scenario here (default: print the fragment)")
    fit.add_argument("--force", action="store_true", help="replace SCENARIO if it exists")
    fit.add_argument("--plot", metavar="DIR", default=None, help="write a PNG per fitted distribution here: the data against each fit")
    fit.set_defaults(func=cmd_fit)

    from edge.scenario.templates import DEFAULT_TEMPLATE, TEMPLATES

    init = sub.add_parser("init", help="start a project of your own: a scenario, its worker code, a README; replaces no file")
    init.add_argument("directory", nargs="?", default=".", help="where to write it (default: here; created if missing)")
    init.add_argument("--template", choices=sorted(TEMPLATES), default=DEFAULT_TEMPLATE,
                      help="seed-chain: the bundled gateway → auth → app with a 1%% canary (default); gateway: the chain alone; "
                           "canary: the chain with a progressive rollout of app")
    init.set_defaults(func=cmd_init)

    graph = sub.add_parser("graph", help="show the bound-services dependency view")
    graph.add_argument("scenario", nargs="?", help="scenario TOML (default: ./scenario.toml if this folder has one, else the bundled seed topology)")
    graph.add_argument("--dot", action="store_true", help="Graphviz dot instead of text (pipe to `dot -Tsvg`)")
    graph.set_defaults(func=cmd_graph)

    serve = sub.add_parser("serve", help="serve a scenario live over HTTP, with /metrics and an admin API")
    serve.add_argument("scenario", nargs="?", help="scenario TOML (default: ./scenario.toml if this folder has one, else the bundled seed topology)")
    serve.add_argument("--host", default="127.0.0.1", help="address of the ingress (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port of the ingress (default 8787; 0 picks one)")
    serve.add_argument("--metrics-port", type=int, default=None, help="also serve /metrics and /healthz alone on this port")
    serve.add_argument("--admin-host", default="127.0.0.1", help="address of the admin API (default loopback only)")
    serve.add_argument("--admin-port", type=int, default=DEFAULT_ADMIN_PORT, help=f"port of the admin API (default {DEFAULT_ADMIN_PORT})")
    serve.add_argument("--admin-token", metavar="TOKEN", default=None,
                       help=f"the admin API's token (default: ${TOKEN_ENV}, else one generated and printed at start)")
    serve.add_argument("--max-headers", type=_size, default=128 * 1024, help='largest request header fields, all together, e.g. "128KiB" (default, Cloudflare\'s 128 KB); larger gets 431')
    serve.add_argument("--max-url", type=_size, default=16 * 1024, help='largest request target, e.g. "16KiB" (default, Cloudflare\'s 16 KB); larger gets 414')
    serve.add_argument("--max-body", type=_size, default=1024 * 1024, help='largest request body accepted, e.g. "1MiB" (default); larger gets 413')
    serve.add_argument("--client-timeout", type=_duration, default=10.0, help='time a client has to send a request head, and then its body (default "10s"); slower gets 408')
    serve.add_argument("--write-timeout", type=_positive_duration, default=10.0, help='time a client has to take an answer (default "10s"); then it is dropped')
    serve.add_argument("--max-connections", type=_positive_int, default=1024, help="open connections (default 1024); a new one beyond gets 503 and is closed")
    serve.add_argument("--max-in-flight", type=_positive_int, default=512, help="requests being served at most (default 512); beyond, 503 with Retry-After")
    serve.add_argument("--queue-delay-target", type=_duration, default=0.005,
                       help='admission control: shed while requests wait longer than this before being read (default "5ms"; 0 turns it off)')
    serve.add_argument("--queue-delay-interval", type=_positive_duration, default=0.1,
                       help='admission control: its measuring interval, and the longest a request waits for a slot (default "100ms")')
    serve.add_argument("--server-header", default="edge", metavar="TEXT",
                       help='the Server header of the ingress\'s answers (default "edge"; "" sends none, as workerd does; Cloudflare sends "cloudflare")')
    serve.add_argument("--drain", type=_duration, default=10.0, help='on SIGINT/SIGTERM, how long requests in flight may take to finish (default "10s")')
    serve.add_argument("--seed", type=int, default=None, help="seed of the synthetic workers' draws")
    serve.add_argument("--traffic", action="store_true", help="also send the scenario's traffic to the ingress, in real time over real sockets")
    serve.add_argument("--allocator", choices=("auto", "jemalloc", "python"), default="auto",
                       help="where Python objects live: jemalloc hands the memory of a burst back to the system, CPython's own "
                            "allocator keeps most of it; auto (default) takes jemalloc when it is installed (Debian: libjemalloc2)")
    serve.set_defaults(func=cmd_serve)

    weight = sub.add_parser("weight", help="change a canary weight of a running `edge serve`")
    weight.add_argument("service")
    weight.add_argument("environment")
    weight.add_argument("percent", type=_percent, help="new share of the service's traffic, 0-100 (0 rolls back)")
    weight.add_argument("--admin", default=f"http://127.0.0.1:{DEFAULT_ADMIN_PORT}", help="admin API URL (default %(default)s)")
    weight.add_argument("--admin-token", metavar="TOKEN", default=None,
                        help=f"the token `edge serve` printed or was given (default: ${TOKEN_ENV})")
    weight.add_argument("--pause-rollout", action="store_true",
                        help="when a rollout owns the service's split (it is refused otherwise), pause it and set the weight")
    weight.set_defaults(func=cmd_weight)

    rollout = sub.add_parser("rollout", help="follow or steer a rollout of a running `edge serve`",
                             description="status: phase, step, weight, the last analysis's checks and the history. pause: stop analysing and "
                                         "stepping, the split is yours (edge weight). resume: go on from the step, at its weight. abort: roll back "
                                         "now. approve: let it past a manual step.")
    rollout.add_argument("action", choices=("status", "pause", "resume", "abort", "approve"))
    rollout.add_argument("service", nargs="?", default=None, help="the service whose rollout (status: all when left out)")
    rollout.add_argument("--json", action="store_true", help="the rollout records as JSON (RolloutReport), every event")
    rollout.add_argument("--admin", default=f"http://127.0.0.1:{DEFAULT_ADMIN_PORT}", help="admin API URL (default %(default)s)")
    rollout.add_argument("--admin-token", metavar="TOKEN", default=None,
                         help=f"the token `edge serve` printed or was given (default: ${TOKEN_ENV})")
    rollout.set_defaults(func=cmd_rollout)

    for name, helptext in (("versions", "list an environment's versions on a running `edge serve`"),
                           ("rollback", "serve an earlier version of an environment on a running `edge serve`")):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("environment", metavar="SERVICE@ENV")
        command.add_argument("--admin", default=f"http://127.0.0.1:{DEFAULT_ADMIN_PORT}", help="admin API URL (default %(default)s)")
        command.add_argument("--admin-token", metavar="TOKEN", default=None,
                             help=f"the token `edge serve` printed or was given (default: ${TOKEN_ENV})")
        if name == "versions":
            command.add_argument("--json", action="store_true", help="the history as JSON")
            command.set_defaults(func=cmd_versions)
        else:
            command.add_argument("--to", type=int, default=None, metavar="N", help="the version to serve again (default: the one deployed before)")
            command.add_argument("--message", "-m", default="", help="why (kept in the history)")
            command.set_defaults(func=cmd_rollback)
    return p


def _check_outputs(files=(), directories=()) -> None:
    """Every output the command will write, checked before it runs (a run can take minutes)."""
    for path in files:
        if path is not None:
            check_file(path)
    for path in directories:
        if path is not None:
            check_directory(path)


class _Signals:
    """Which signal interrupted the command. SIGTERM is turned into SIGINT so that both take one
    path: trio delivers SIGINT as KeyboardInterrupt at a point where it is safe, and everything
    between here and the signal unwinds (``finally`` blocks remove temporary files)."""

    received = signal.SIGINT
    sigint_blocked = False
    """Started with SIGINT ignored (in the background): SIGINT is blocked instead, for the
    command's length, under the handlers SIGTERM goes through."""

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[None]:
        """The handler, for the command's length: ``main`` called from Python (a test, a tool) must
        leave the process as it found it, or a process it forks later inherits the handler and
        answers SIGTERM with KeyboardInterrupt.

        A process started with SIGINT ignored (by a shell, in the background) still gets
        SIGTERM's interrupt through SIGINT's handlers, trio's and the watchdog's: they raise
        KeyboardInterrupt only where it is safe. So SIGINT gets Python's handler, which trio and
        the watchdog build on, and is blocked meanwhile, so that a real one stays as ignored as
        the shell asked. Raising KeyboardInterrupt straight from the SIGTERM handler, as before,
        landed it anywhere: inside trio (exit 70, TrioInternalError), or inside a worker step,
        which answered it as a 500 and ran on to exit 0."""
        cls.received = signal.SIGINT
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            yield
            return
        cls.sigint_blocked = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        if cls.sigint_blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, cls._terminate)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if cls.sigint_blocked:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: a SIGINT that came meanwhile is dropped
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                cls.sigint_blocked = False

    @classmethod
    def _terminate(cls, signum: int, frame) -> None:
        cls.received = signal.SIGTERM
        if not cls.sigint_blocked:
            signal.raise_signal(signal.SIGINT)
            return
        handler = signal.getsignal(signal.SIGINT)  # as a delivered SIGINT would call it
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)


def _only(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` if it is a ``kind``, or the first one in an exception group of nothing else; else None."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kind)
        if matched is None or rest is not None:
            return None
        found: BaseException = matched
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        return found if isinstance(found, kind) else None
    return exc if isinstance(exc, kind) else None


def _interrupted(exc: BaseException) -> bool:
    """KeyboardInterrupt, alone or as every member of trio's exception groups."""
    return _only(exc, KeyboardInterrupt) is not None


_ALLOCATOR_EXEC = "EDGE_ALLOCATOR_EXEC"
"""Set in the environment of the command ``_run_on_jemalloc`` started again: it is not started a third time."""


def _run_on_jemalloc(args: argparse.Namespace) -> None:
    """Start this same command again on jemalloc, if ``--allocator`` asks for it (edge.platform.memory
    says why); a UsageError when it was asked for and cannot be had."""
    choice = getattr(args, "allocator", "python")
    if choice == "python" or memory.jemalloc_loaded():
        return
    library = memory.jemalloc_library()
    if library is not None and _ALLOCATOR_EXEC not in os.environ:
        env = {**memory.jemalloc_environment(os.environ, library), _ALLOCATOR_EXEC: "1"}
        os.execve(sys.executable, sys.orig_argv, env)
    if library is None:
        why = "jemalloc is not installed (Debian: libjemalloc2)"
    else:
        why = f"{library} did not load (LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r})"
    if choice == "jemalloc":
        raise UsageError(f"--allocator jemalloc: {why}")
    print(f"edge: note: {why}: CPython's allocator keeps most of the memory a burst takes (--allocator)", file=sys.stderr)


BUG_REPORT = "edge: this is a bug in edge, not in your input: please report it with the lines above and the command"
EXIT_BUG = 70
"""An exception edge did not expect (sysexits' EX_SOFTWARE): never a user's mistake, which is an EdgeError."""


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if argv is None:  # the command line itself, not a call from Python: only then may the process be replaced
            _run_on_jemalloc(args)
        logging.basicConfig(level=logging.WARNING, format="edge: %(levelname)s %(name)s: %(message)s")
        with _Signals.installed():
            return args.func(args)
    except BaseException as exc:
        # An error raised inside a nursery (edge serve's listeners) comes in an exception group.
        problem = _only(exc, EdgeError)
        if problem is not None:
            print(f"edge: error: {problem.shown()}", file=sys.stderr)
            return problem.exit_code
        if _interrupted(exc):
            signum = _Signals.received
            print(f"edge: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
            return EXIT_INTERRUPTED[signum]
        if not isinstance(exc, Exception):  # SystemExit and the like: not ours to report
            raise
        sys.stderr.write(redact.format_exception(exc))  # it may have escaped a run holding its secrets
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
