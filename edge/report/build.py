"""The run report: typed records (msgspec), JSON, and a readable terminal summary.

Every number comes from the run's recorders (``RunMetrics``), the same ones Prometheus sees. The
JSON is a pure function of the scenario and seed: no timestamps, no wall-clock figures, dict order
fixed by the scenario, so two runs with one seed give byte-identical files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import msgspec
from rich.console import Console
from rich.markup import escape

from edge.platform.files import InputError, read_input, write_output
from edge.metrics.histogram import LogHistogram
from edge.metrics.recorders import STATUS_CLASSES
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import ThresholdRule, group_name, threshold_rules
from edge.engine.rollout import RolloutReport
from edge.engine.simulate import RunResult
from edge.metrics.series import Series
from edge.engine.timeline import TimelineEntry
from edge.scenario.thresholds import Threshold, ThresholdResult, has_data
from edge.platform.units import format_duration
from edge.platform.versions import Deployment
from edge.scenario.values import EnvironmentKey
from edge.report.terminal import Column, clauses, fitted, left_out, print_parts


class Quantiles(msgspec.Struct):
    """Seconds; from 1%-resolution histograms."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float


class VersionReport(msgspec.Struct):
    """One version of an environment: how it was made, and the calls it served in this run."""

    number: int
    at_s: float
    message: str
    tags: dict[str, str]
    source: str | None
    """Where a promoted version came from: "from app@staging v4"."""
    requests: int
    status: dict[str, int]
    cold_starts: int


class IsolateEvictions(msgspec.Struct):
    """Warm isolates an environment dropped, by reason."""

    capacity: int
    """More idle than ``max_isolates``: the least recently used went."""
    expired: int
    """Idle for ``keep_warm``."""


class EnvironmentReport(msgspec.Struct, omit_defaults=True):
    service: str
    environment: str
    version: str
    """The version serving at the end of the run."""
    requests: int
    status: dict[str, int]
    latency_s: Quantiles
    queue_wait_s: Quantiles
    cpu_s: float
    cpu_limit_exceeded: int
    shed: int
    exceptions: int
    cold_starts: int
    versions: list[VersionReport]
    """Every version, oldest first, each with the calls it served: they sum to ``requests``."""
    deployments: list[Deployment]
    """Which version served from when (a rollback deploys an earlier version again)."""
    isolate_evictions: IsolateEvictions | None = None
    """Only for an environment with a ``cold_start``: without one it keeps no isolates."""
    stalls: int = 0
    """Worker steps the watchdog interrupted for holding the event loop past ``step_limit``."""
    stopped_at_s: float | None = None
    """Virtual time: when a stall stopped the worker for the rest of the run."""
    answered_without_running: int = 0
    """Calls answered 503 (error 1102) since, without running the worker."""


class BindingReport(msgspec.Struct):
    caller: str
    binding: str
    target: str
    environment: str
    version: str
    status_class: str
    calls: int
    latency_s: Quantiles


class Outcome(msgspec.Struct):
    requests: int
    errors: int
    """5xx."""
    success_ratio: float


class RouterReport(msgspec.Struct):
    weights: dict[str, float]
    retries: dict[str, int]
    """"canary->production": attempts retried on another environment."""
    retries_denied: dict[str, int]
    """Per environment, failed attempts the retry budget left unretried."""
    effective: dict[str, Outcome]
    """Per environment, the calls the router sent there first, by what their callers finally got
    (after any fallback): the success users saw from each version."""
    actual: dict[str, Outcome]
    """Per environment, every attempt it answered (retries included): the version's own success."""


class ClientReport(msgspec.Struct):
    """Top-level requests as clients saw them: after routing, retries and fallbacks."""

    requests: int
    status: dict[str, int]
    errors: int
    error_ratio: float
    latency_s: Quantiles
    retries: int
    shed: int
    not_found: int
    unknown_environment: int
    """Requests whose override header named no environment of their service (400)."""
    cpu_limit_exceeded: int
    cpu_per_request_s: Quantiles
    timeouts: int
    """Requests whose client gave up (its group's timeout); counted in requests and errors."""
    unanswered: int
    """Requests still without an answer (nor a timeout) when the run ended, after its drain; counted
    in requests and errors, not in latency."""
    dropped: dict[str, int]
    """Per open group, arrivals never sent because max_inflight requests were outstanding."""


class GroupReport(msgspec.Struct):
    """One traffic group's clients ("http": requests that came in through the live ingress)."""

    requests: int
    status: dict[str, int]
    errors: int
    error_ratio: float
    latency_s: Quantiles
    timeouts: int
    unanswered: int
    dropped: int


class ReplayReport(msgspec.Struct, omit_defaults=True):
    """A replayed traffic group: the file it sends and its recorded traffic (``skipped``,
    ``skipped_lines`` and ``logged_times`` absent when 0 or empty)."""

    file: str
    """As the scenario names it (relative to the scenario file)."""
    format: str
    requests: int
    """Requests in the file (one pass; the group's own figures count what was sent)."""
    span_s: float
    """From the file's first request to its last, as recorded."""
    rate_per_s: float
    """The file's mean rate: requests over span (0 for a span of 0)."""
    speed: float
    loop: bool
    skipped: int = 0
    """Lines that could not be read, skipped (``on_error = "skip"``): not in ``requests``."""
    skipped_lines: list[int] = []
    """The first five of them by line number, to look at."""
    logged_times: int = 0
    """Requests whose line logs a request time, which a synthetic model serves them in
    (``service_time = "logged"``; 0 with "model")."""


class StoppedEarly(msgspec.Struct):
    """A threshold with ``abort = true`` failed during the run: traffic stopped there."""

    at_s: float
    threshold: str


class NodeReport(msgspec.Struct):
    cores: int
    cpu_utilisation: float
    """Busy core-seconds over available core-seconds for the whole run."""


class Report(msgspec.Struct, omit_defaults=True):
    scenario: str
    seed: int
    duration_s: float
    simulated_s: float
    cpu_limit_s: float
    """The CPU budget of one top-level request, shared by every worker of its chain."""
    node: NodeReport
    environments: dict[str, EnvironmentReport]
    routers: dict[str, RouterReport]
    bindings: list[BindingReport]
    clients: ClientReport
    groups: dict[str, GroupReport]
    thresholds: list[ThresholdResult]
    """Each of the scenario's thresholds with the value the run measured; any failed => exit 1."""
    stopped_early: StoppedEarly | None
    """Set when an aborting threshold failed during the run (and the run exits 1)."""
    timeline: list[TimelineEntry]
    """What the scenario's timeline did, when."""
    rollouts: dict[str, RolloutReport]
    """Per service with a rollout: where it got to, and every analysis on the way."""
    series: Series
    """The run interval by interval: what the plots show."""
    replays: dict[str, ReplayReport] = {}
    """Per replayed traffic group (absent when none is)."""
    measured_cpu: bool = False
    """Code workers' real CPU was charged as well as their ``ctx.cpu`` (``measure_cpu``): the run
    is not deterministic (absent otherwise: only declared CPU counted, and the seed decides all)."""


def _round(x: float) -> float:
    return float(f"{x:.9g}")


def quantiles(hist: LogHistogram) -> Quantiles:
    return Quantiles(*(_round(hist.quantile(q)) for q in (0.5, 0.9, 0.99)), max=_round(hist.max), mean=_round(hist.mean))


def _status(counts: list[int]) -> dict[str, int]:
    return {cls: n for cls, n in zip(STATUS_CLASSES, counts) if n}


def _outcome(counts: list[int]) -> Outcome:
    requests = sum(counts)
    errors = counts[4]
    return Outcome(requests, errors, _round(1 - errors / requests) if requests else 1.0)


def build_report(result: RunResult) -> Report:
    metrics = result.metrics
    environments = {}
    for key, outcome in result.environments.items():
        s = metrics.environments[key]
        totals = s.totals()
        environments[str(key)] = EnvironmentReport(
            service=s.service,
            environment=s.environment,
            version=outcome.version,
            requests=sum(totals),
            status=_status(totals),
            latency_s=quantiles(s.latency),
            queue_wait_s=quantiles(s.queue_wait),
            cpu_s=_round(s.cpu_seconds),
            cpu_limit_exceeded=s.cpu_limit_exceeded,
            shed=s.shed,
            exceptions=s.exceptions,
            cold_starts=sum(s.cold_starts.values()),
            versions=[
                VersionReport(
                    number=v.number, at_s=v.at_s, message=v.message, tags=v.tags, source=v.source,
                    requests=sum(counts := s.requests.get(str(v.number), [0] * len(STATUS_CLASSES))), status=_status(counts),
                    cold_starts=s.cold_starts.get(str(v.number), 0),
                )
                for v in outcome.versions
            ],
            deployments=outcome.deployments,
            isolate_evictions=IsolateEvictions(**evicted) if (evicted := s.isolate_evictions()) else None,
            stalls=s.stalls,
            stopped_at_s=None if s.stopped_at is None else _round(s.stopped_at),
            answered_without_running=s.unrun,
        )
    routers = {
        service: RouterReport(
            weights={env: w for (svc, env), w in metrics.canary_weights.items() if svc == service},
            retries={f"{src}->{dst}": n for (svc, src, dst), n in metrics.retries.items() if svc == service},
            retries_denied={src: n for (svc, src), n in metrics.retries_denied.items() if svc == service},
            effective={
                env: _outcome(metrics.routed.get((service, env), [0] * len(STATUS_CLASSES)))
                for env in targets
            },
            actual={
                env: _outcome(metrics.environments[EnvironmentKey(service, env)].totals())
                for env in targets
            },
        )
        for service, targets in result.routed.items()
    }
    bindings = [
        BindingReport(*labels, calls=hist.count, latency_s=quantiles(hist))
        for labels, hist in sorted(metrics.bindings.items(), key=lambda item: item[0])
    ]
    c = metrics.clients
    cpu = LogHistogram()
    for hist in metrics.request_cpu.values():
        cpu.add(hist)
    clients = ClientReport(
        requests=c.requests,
        status=_status(c.by_class),
        errors=c.errors,
        error_ratio=_round(c.errors / c.requests) if c.requests else 0.0,
        latency_s=quantiles(c.latency),
        retries=sum(metrics.retries.values()),
        shed=c.shed,
        not_found=c.not_found,
        unknown_environment=c.unknown_environment,
        cpu_limit_exceeded=c.cpu_limit_exceeded,
        cpu_per_request_s=quantiles(cpu),
        timeouts=c.timeouts,
        unanswered=c.unanswered,
        dropped={name: g.dropped for name, g in sorted(metrics.groups.items()) if g.dropped},
    )
    groups = {
        name: GroupReport(
            requests=g.requests, status=_status(g.by_class), errors=g.errors,
            error_ratio=_round(g.errors / g.requests) if g.requests else 0.0,
            latency_s=quantiles(g.latency), timeouts=g.timeouts, unanswered=g.unanswered, dropped=g.dropped,
        )
        for name, g in metrics.groups.items()
    }
    report = Report(
        scenario=result.loaded.spec.scenario.name,
        seed=result.seed,
        duration_s=_round(result.duration),
        simulated_s=_round(result.simulated),
        cpu_limit_s=_round(result.loaded.spec.scenario.cpu_limit.seconds),
        node=NodeReport(cores=result.cores, cpu_utilisation=_round(result.cpu_busy_s / (result.cores * result.simulated)) if result.simulated else 0.0),
        environments=environments,
        routers=routers,
        bindings=bindings,
        clients=clients,
        groups=groups,
        thresholds=[],
        stopped_early=None if result.stopped is None else StoppedEarly(at_s=_round(result.stopped[0]), threshold=result.stopped[1]),
        timeline=list(result.timeline),
        rollouts=result.rollouts,
        series=result.series,
        replays=replay_reports(result.loaded),
        measured_cpu=result.loaded.spec.scenario.measure_cpu,
    )
    report.thresholds = [threshold_result(report, rule) for rule in threshold_rules(result.loaded.spec)]
    return report


def replay_reports(loaded: LoadedScenario) -> dict[str, ReplayReport]:
    reports = {}
    for index, replay in sorted(loaded.replays.items()):
        group = loaded.spec.traffic[index]
        span = replay.span
        reports[group_name(group, index)] = ReplayReport(
            file=replay.file, format=replay.format, requests=len(replay.entries), span_s=_round(span),
            rate_per_s=_round(len(replay.entries) / span) if span > 0 else 0.0, speed=float(group.speed), loop=group.loop,
            skipped=replay.skipped, skipped_lines=replay.skipped_lines,
            logged_times=sum(e.time is not None for e in replay.entries) if group.service_time == "logged" else 0,
        )
    return reports


def threshold_result(report: Report, rule: ThresholdRule) -> ThresholdResult:
    """The rule's verdict on the run: the value measured, or "no data" (``thresholds.has_data``)."""
    t = rule.threshold
    value = _round(threshold_value(report, t))
    requests = subject_requests(report, t)
    if has_data(t, requests):
        return ThresholdResult(threshold=t.text, value=value, passed=t.holds(value), samples=requests)
    return ThresholdResult(threshold=t.text, value=value, passed=rule.no_data == "pass", no_data=True)


def subject_requests(report: Report, threshold: Threshold) -> int:
    """Requests the threshold's subject saw: the clients sent, or the environment answered."""
    if threshold.subject == "clients":
        return report.clients.requests
    return report.environments[threshold.subject].requests


def threshold_value(report: Report, threshold: Threshold) -> float:
    """What the run measured for ``threshold``'s metric and subject."""
    metric, stat = threshold.metric, threshold.stat
    if threshold.subject == "clients":
        c = report.clients
        if metric == "latency":
            return getattr(c.latency_s, stat)  # type: ignore[arg-type]
        if metric == "cpu per request":
            return getattr(c.cpu_per_request_s, stat)  # type: ignore[arg-type]
        if metric in ("error ratio", "effective error ratio"):
            return c.error_ratio
        if metric == "dropped":
            return float(sum(c.dropped.values()))
        return float(getattr(c, metric))
    e = report.environments[threshold.subject]
    errors = e.status.get("5xx", 0)
    if metric == "latency":
        return getattr(e.latency_s, stat)  # type: ignore[arg-type]
    if metric == "queue wait":
        return getattr(e.queue_wait_s, stat)  # type: ignore[arg-type]
    if metric == "error ratio":
        return errors / e.requests if e.requests else 0.0
    if metric == "errors":
        return float(errors)
    return float(getattr(e, metric.replace(" ", "_")))


def abort_check(loaded: LoadedScenario) -> Callable[[RunResult], str | None] | None:
    """For ``simulate(stop_when=...)``: the first aborting threshold that fails on the run so far
    (past its delay), or None; None instead of a check when no threshold aborts."""
    rules = [rule for rule in threshold_rules(loaded.spec) if rule.abort]
    if not rules:
        return None

    def failing(result: RunResult) -> str | None:
        due = [rule.threshold for rule in rules if result.simulated >= rule.delay.seconds]
        if not due:
            return None
        report = build_report(result)
        # No data yet is not a failure to stop for: the verdict at the end of the run says it.
        return next((t.text for t in due if has_data(t, subject_requests(report, t)) and not t.holds(threshold_value(report, t))), None)

    return failing


def failed_thresholds(report: Report) -> list[ThresholdResult]:
    return [t for t in report.thresholds if not t.passed]


def write_json(report: Report, path: str | Path) -> None:
    """Write atomically: a failed run never leaves half a report behind."""
    data = msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"
    write_output(path, data)


MAX_REPORT_BYTES = 256 * 1024 * 1024
"""A week of simulated time at the default 120 points is a few MB; this only stops /dev/zero."""


def read_json(path: str | Path) -> Report:
    """A report written by ``write_json``; ValueError (msgspec's, with the path inside) if it is not one."""
    try:
        data = read_input(path, MAX_REPORT_BYTES)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    if len(data) > MAX_REPORT_BYTES:
        raise ValueError(f"expected a report of at most {MAX_REPORT_BYTES:,} bytes, got more")
    return msgspec.json.decode(data, type=Report)


SUMMARY_PRIORITY = ("environment", "requests", "5xx", "p99", "p50", "2xx", "CPU", "shed", "4xx", "p90", "queue p99", "ver")
"""The summary table's columns, most needed first: a terminal too narrow for all of them loses
them from the end."""


def print_summary(report: Report, console: Console | None = None) -> None:
    if console is None:
        # Piped or redirected output is not wrapped at all: logs keep whole rows and lines.
        console = Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=True)
    ms = format_duration
    columns = ("environment", "ver", "requests", "2xx", "4xx", "5xx", "shed", "p50", "p90", "p99", "queue p99", "CPU")
    rows = []
    for key, e in report.environments.items():
        rows.append([
            key, e.version, f"{e.requests:,}", f"{e.status.get('2xx', 0):,}", f"{e.status.get('4xx', 0):,}", f"{e.status.get('5xx', 0):,}",
            f"{e.shed:,}", ms(e.latency_s.p50), ms(e.latency_s.p90), ms(e.latency_s.p99), ms(e.queue_wait_s.p99), ms(e.cpu_s),
        ])
        served = [v for v in e.versions if v.requests]
        if len(served) > 1 or (served and str(served[0].number) != e.version):  # the version changed during the run
            for v in served:
                rows.append([
                    f"  {key} v{v.number}", str(v.number), f"{v.requests:,}", f"{v.status.get('2xx', 0):,}", f"{v.status.get('4xx', 0):,}",
                    f"{v.status.get('5xx', 0):,}", *[""] * 6,
                ])
    title = f"{report.scenario} — seed {report.seed}, {ms(report.duration_s)} of traffic"
    table, dropped = fitted(title, [
        Column(name, [row[i] for row in rows], SUMMARY_PRIORITY.index(name), "left" if i == 0 else "right", unbroken=tuple(row[0].strip() for row in rows) if i == 0 else ())
        for i, name in enumerate(columns)], console.width)
    console.print(table)
    if note := left_out(dropped, console.width):
        console.print(note, style="dim")
    c = report.clients
    print_parts(console, clauses(
        [f"clients: {c.requests:,} requests", f"{c.errors:,} errors ({c.error_ratio:.3%})", f"p50 {ms(c.latency_s.p50)}",
         f"p99 {ms(c.latency_s.p99)}", f"max {ms(c.latency_s.max)}"],
        [f"retries {c.retries:,}", f"shed {c.shed:,}", f"CPU limit exceeded {c.cpu_limit_exceeded:,}"],
        [f"CPU per request p50 {ms(c.cpu_per_request_s.p50)}", f"p99 {ms(c.cpu_per_request_s.p99)}"],
        [f"timeouts {c.timeouts:,}"] if c.timeouts else [],
        [f"unknown environment {c.unknown_environment:,}"] if c.unknown_environment else [],
        [f"[bold red]never answered {c.unanswered:,}[/bold red]"] if c.unanswered else [],
        [f"dropped arrivals {sum(c.dropped.values()):,}"] if c.dropped else [],
    ))
    for name, r in report.replays.items():
        console.print(
            f"  replay {name}: {r.file} ({r.format}), {r.requests:,} requests over {ms(r.span_s)} recorded "
            f"({r.rate_per_s:,.4g}/s), sent at x{r.speed:g}" + (", looped" if r.loop else "")
            + (f"; {r.logged_times:,} served in their logged request time" if r.logged_times else "")
            + (f"; {r.skipped:,} unreadable lines skipped ({', '.join(map(str, r.skipped_lines))}"
               + (", ...)" if r.skipped > len(r.skipped_lines) else ")") if r.skipped else "")
        )
    if len(report.groups) > 1:
        for name, g in report.groups.items():
            console.print(
                f"  group {name}: {g.requests:,} requests, {g.errors:,} errors ({g.error_ratio:.3%}), "
                f"p50 {ms(g.latency_s.p50)}, p99 {ms(g.latency_s.p99)}"
                + (f"; timeouts {g.timeouts:,}" if g.timeouts else "")
                + (f"; never answered {g.unanswered:,}" if g.unanswered else "") + (f"; dropped {g.dropped:,}" if g.dropped else "")
            )
    console.print(f"node: {report.node.cores} cores, {report.node.cpu_utilisation:.1%} CPU utilisation")
    for key, e in report.environments.items():
        if e.stopped_at_s is not None:
            console.print(
                f"[bold red]{key}: a worker step held the loop past the step limit at {ms(e.stopped_at_s)}; its worker was stopped "
                f"there, and its {e.answered_without_running:,} later calls were answered 503 (error 1102) without running it[/bold red]"
            )
    if report.measured_cpu:
        console.print("[yellow]CPU: measured CPU of code workers charged too (measure_cpu): this run is not deterministic[/yellow]")
    for entry in report.timeline:
        first, *rest = clauses(*([escape(part)] for part in entry.detail.split("; ")))
        print_parts(console, [f"[cyan]{format_duration(entry.at_s):>8}[/cyan]  {entry.action} {entry.target}: {first}", *rest], indent=" " * 10)
    for service, r in report.rollouts.items():
        ended = "" if r.ended_at_s is None else f" at {format_duration(r.ended_at_s)}"
        colour = {"promoted": "green", "rolled back": "red"}.get(r.phase, "yellow")
        print_parts(console, clauses(
            [f"rollout {service}@{r.canary}: [{colour}]{r.phase}{ended}[/{colour}]", f"canary at {r.weight:g}%",
             f"{r.steps_passed} steps passed", f"{r.failures} failed analyses"],
            [f"{r.canary_requests:,} canary answers", f"{r.canary_errors:,} errors"],
        ))
        for e in r.events:
            if e.event not in ("pass", "step"):
                # A check is one part: "error ratio 5.000% of 1,196 answers (needs < 1%)" stays on one line.
                first, *rest = clauses(*([escape(part)] for part in e.detail.split("; ")))
                print_parts(console, [f"[cyan]{format_duration(e.at_s):>8}[/cyan]  {e.event} ({e.weight:g}%): {first}", *rest], indent=" " * 10)
    if report.stopped_early is not None:
        console.print(f"[bold red]stopped early at {format_duration(report.stopped_early.at_s)}:[/bold red] {report.stopped_early.threshold}")
    for t in report.thresholds:
        mark = "[green]✓ pass[/green]" if t.passed else "[bold red]✗ FAIL[/bold red]"
        print_parts(console, [f"{mark}  {escape(t.threshold)}", f"({t.shown()})"], indent=" " * 8)
    for service, r in report.routers.items():
        weights = ", ".join(f"{env} {w:g}%" for env, w in r.weights.items())
        retries = ", ".join(f"{k} {v:,}" for k, v in r.retries.items()) or "none"
        denied = ", ".join(f"{k} {v:,}" for k, v in r.retries_denied.items())
        print_parts(console, clauses([f"router {service}: {weights}"], [f"retries {retries}"], [f"denied by the budget {denied}"] if denied else []))
        for env, effective in r.effective.items():
            actual = r.actual[env]
            print_parts(console, clauses([
                f"  {service}@{env}: success {effective.success_ratio:.3%} effective ({effective.requests:,} routed there first)",
                f"{actual.success_ratio:.3%} per attempt ({actual.requests:,} attempts)",
            ]), indent="    ")
