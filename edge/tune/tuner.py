"""``edge tune``: how would each rollout schedule behave, before anyone rolls anything out?

For every candidate schedule and both hypotheses (the canary is *bad*: the scenario's ``tune.bad``
behaviour; or *good*: it behaves as the stable environment), the scenario is simulated
``replications`` times, each until its rollout is promoted or rolled back. Replication ``i`` uses
seed ``seed + i`` under every candidate and hypothesis (common random numbers: the same traffic
and draws meet each schedule, so the differences between schedules are the schedules', not luck's).

Replications are independent, so they run on any ``concurrent.futures.Executor``: a process pool
over this machine's cores by default, or a Dask cluster's (``Client.get_executor()``), with no
other change. Estimates come with 95% confidence intervals (Wilson for probabilities, Student's t
for means), and a closed-form figure where one exists: Wald's expected sample size for a
schedule with a sequential test, else the sample a fixed-size test needs (5% level, 80% power).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path

import msgspec

from edge.scenario import config
from edge.tune import schedules
from edge.platform.files import write_output
from edge.report.build import build_report
from edge.engine.simulate import RunResult, simulate

HYPOTHESES = ("bad", "good")


class Task(msgspec.Struct, frozen=True):
    scenario: str
    candidate: int
    hypothesis: str
    seed: int


class Replication(msgspec.Struct):
    candidate: int
    hypothesis: str
    seed: int
    phase: str
    """promoted, rolled back, or unfinished (the scenario's duration ran out first)."""
    ended_at_s: float | None
    requests: int
    """Calls to the tuned service until the end (what its callers sent)."""
    canary_requests: int
    canary_errors_seen: int
    """Calls first routed to the canary that callers got a 5xx for, after fallbacks."""
    canary_errors: int
    """The canary's own 5xx answers: what callers would have got without the fallback."""
    retries: int


class Estimate(msgspec.Struct):
    value: float
    low: float
    high: float
    """The 95% confidence interval."""
    n: int
    """Replications it is estimated from."""


class CandidateResult(msgspec.Struct):
    schedule: str
    steps: list[float]
    interval_s: float
    caught: Estimate
    """P(a bad canary is rolled back)."""
    time_to_rollback_s: Estimate
    canary_requests_to_rollback: Estimate
    errors_seen: Estimate
    """Bad canary: requests answered with its errors, after the fallback."""
    errors_without_fallback: Estimate
    extra_load: Estimate
    """Bad canary: retries per request to the service."""
    false_rollback: Estimate
    """P(a good canary is rolled back)."""
    rollout_time_s: Estimate
    """Good canary: time to promotion."""
    completed: Estimate
    """P(a good canary is promoted before the scenario's duration runs out)."""
    closed_form_requests: float | None
    """Canary requests the analysis needs in theory: with a sequential test, Wald's expected
    number to reject p0 when the truth is p1; otherwise the sample a fixed-size one-sided test
    needs to detect p1 against p0 (5% level, 80% power). None when p0 or p1 is not a known number."""
    meets_limits: bool


class TuneResult(msgspec.Struct):
    scenario: str
    service: str
    replications: int
    seed: int
    candidates: list[CandidateResult]
    recommended: int | None
    """Index of the fastest schedule meeting the limits, if any does."""
    limits: dict[str, float]


@functools.lru_cache(maxsize=4)
def _loaded(path: str) -> config.LoadedScenario:
    return config.load(path)


def replicate(task: Task) -> Replication:
    """One simulated rollout (a top-level function: it crosses process and machine boundaries)."""
    loaded = _loaded(task.scenario)
    tune = loaded.spec.tune
    assert tune is not None
    service = config.tuned_service(loaded.spec)
    rollout = schedules.candidates(loaded)[task.candidate]
    spec = msgspec.structs.replace(
        loaded.spec,
        services=[msgspec.structs.replace(s, rollout=rollout) if s.name == service.name else s for s in loaded.spec.services],
        thresholds=[],
    )
    run_loaded = msgspec.structs.replace(loaded, spec=spec)
    behaviour = tune.bad if task.hypothesis == "bad" else tune.good

    def setup(topology, front, clock) -> None:
        canary = topology.environments[f"{service.name}@{rollout.canary}"]
        stable = topology.environments[f"{service.name}@{rollout.stable}"]
        _apply(behaviour, canary, stable)

    def ended(result: RunResult) -> str | None:
        return "rollout over" if result.topology.rollouts[service.name].ended else None

    result = simulate(run_loaded, seed=task.seed, setup=setup, stop_when=ended, stop_every=_check_every(rollout))
    report = build_report(result)
    r = report.rollouts[service.name]
    router = report.routers[service.name]
    return Replication(
        candidate=task.candidate, hypothesis=task.hypothesis, seed=task.seed,
        phase=r.phase if r.phase in ("promoted", "rolled back") else "unfinished", ended_at_s=r.ended_at_s,
        requests=sum(o.requests for o in router.effective.values()),
        canary_requests=r.canary_requests, canary_errors_seen=router.effective[rollout.canary].errors,
        canary_errors=r.canary_errors, retries=sum(router.retries.values()),
    )


def _check_every(rollout: config.Rollout) -> float:
    """How often the run asks whether the rollout is over: a tenth of an interval."""
    return rollout.interval.seconds / 10


def _apply(behaviour: config.Behaviour | None, canary, stable) -> None:
    """Give the canary its hypothesised behaviour, as a timeline ``set`` at time 0 would."""
    from edge.engine.timeline import change_behaviour
    from edge.platform.workers import ModelWorker

    if behaviour is None:  # good by default: as the stable environment
        if isinstance(canary.worker, ModelWorker) and isinstance(stable.worker, ModelWorker):
            for name in ("cpu", "latency", "errors", "error_status", "size"):
                setattr(canary.worker, name, getattr(stable.worker, name))
        return
    change_behaviour(canary, behaviour)


def tasks(scenario: str, candidates: int, replications: int, seed: int) -> list[Task]:
    return [
        Task(scenario, c, h, seed + i)
        for i in range(replications) for c in range(candidates) for h in HYPOTHESES
    ]


def run_tasks(all_tasks: list[Task], executor: Executor | None, progress=None) -> list[Replication]:
    """Every replication, on ``executor`` (None: in this process), in the tasks' order."""
    if executor is None:
        mapped: Iterable[Replication] = map(replicate, all_tasks)
    else:  # a few chunks per worker: fewer round trips, and the last ones still balance
        size = max(1, len(all_tasks) // (8 * (os.cpu_count() or 1)))
        # Submitted and read in order, never cancelled here (``Executor.map`` cancels what is left
        # when interrupted): on Ctrl-C the command stops the pool's processes and the broken pool
        # fails what was pending; a cancel racing with that makes Python 3.11's pool thread print
        # an InvalidStateError traceback.
        futures = [executor.submit(replicate_chunk, all_tasks[i : i + size]) for i in range(0, len(all_tasks), size)]
        mapped = (result for future in futures for result in future.result())
    results = []
    for result in mapped:
        results.append(result)
        if progress is not None:
            progress()
    return results


def replicate_chunk(chunk: list[Task]) -> list[Replication]:
    """Several replications in one round trip to a worker process."""
    return [replicate(task) for task in chunk]


# -- statistics --------------------------------------------------------------------------------


def proportion(successes: int, n: int) -> Estimate:
    """Wilson's 95% interval: sound at 0 and 1 and for few trials, where the normal one is not."""
    from scipy.stats import binomtest

    if n == 0:
        return Estimate(0.0, 0.0, 1.0, 0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Estimate(_r(successes / n), _r(ci.low), _r(ci.high), n)


def mean(values: list[float]) -> Estimate:
    """Student's t 95% interval of the mean."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = sum(values) / n
    if n == 1:
        return Estimate(_r(m), math.nan, math.nan, 1)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Estimate(_r(m), _r(m - half), _r(m + half), n)


def wald_expected_requests(p0: float, p1: float, alpha: float, beta: float) -> float:
    """Wald's approximation of the expected number of observations an SPRT of p0 against p1
    needs when the truth is p1."""
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    drift = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return ((1 - beta) * upper + beta * lower) / drift


def _shown(field: str, value: object) -> str:
    """A candidate's own setting, compactly: "sequential 0.1%/0.5%", "gates error ratio < 0.5%"."""
    if field == "sequential" and isinstance(value, dict):
        return f"SPRT {value.get('p0')}/{value.get('p1')}"
    if isinstance(value, list):
        return f"{field.replace('_', ' ')} {', '.join(map(str, value))}"
    return f"{field.replace('_', ' ')} {value}"


def fixed_sample_requests(p0: float, p1: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Canary answers a one-sided test of "error ratio p0" needs to detect p1 with ``power`` at
    level ``alpha`` (normal approximation of the binomial): what a fixed-size analysis must see."""
    from scipy.stats import norm

    z_alpha, z_beta = float(norm.ppf(1 - alpha)), float(norm.ppf(power))
    return ((z_alpha * math.sqrt(p0 * (1 - p0)) + z_beta * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def summarise(loaded: config.LoadedScenario, replications: list[Replication], seed: int, count: int) -> TuneResult:
    tune = loaded.spec.tune
    assert tune is not None
    service = config.tuned_service(loaded.spec)
    limits = tune.limits
    false_limit, caught_limit = limits.false_rollback.fraction, limits.caught.fraction
    rates = _error_rates(loaded, service)
    results = []
    for index, rollout in enumerate(schedules.candidates(loaded)):
        bad = [r for r in replications if r.candidate == index and r.hypothesis == "bad"]
        good = [r for r in replications if r.candidate == index and r.hypothesis == "good"]
        caught = [r for r in bad if r.phase == "rolled back"]
        promoted = [r for r in good if r.phase == "promoted"]
        steps = [float(s.weight) for s in config.rollout_steps(rollout)]
        closed = None
        if rollout.sequential is not None:
            s = rollout.sequential
            closed = _r(wald_expected_requests(s.p0.fraction, s.p1.fraction, float(s.alpha), float(s.beta)))
        elif rates is not None:
            closed = _r(fixed_sample_requests(*rates))
        extras = {k: v for k, v in (tune.candidates[index] if tune.candidates else {}).items() if k not in config.SCHEDULE_FIELDS}
        result = CandidateResult(
            schedule=f"{'/'.join(f'{w:g}' for w in steps)} every {rollout.interval}" + "".join(f"; {_shown(k, v)}" for k, v in extras.items()),
            steps=steps, interval_s=rollout.interval.seconds,
            caught=proportion(len(caught), len(bad)),
            time_to_rollback_s=mean([r.ended_at_s for r in caught if r.ended_at_s is not None]),
            canary_requests_to_rollback=mean([float(r.canary_requests) for r in caught]),
            errors_seen=mean([float(r.canary_errors_seen) for r in bad]),
            errors_without_fallback=mean([float(r.canary_errors) for r in bad]),
            extra_load=mean([r.retries / r.requests if r.requests else 0.0 for r in bad]),
            false_rollback=proportion(sum(r.phase == "rolled back" for r in good), len(good)),
            rollout_time_s=mean([r.ended_at_s for r in promoted if r.ended_at_s is not None]),
            completed=proportion(len(promoted), len(good)),
            closed_form_requests=closed,
            meets_limits=False,
        )
        result.meets_limits = (
            result.false_rollback.value <= false_limit
            and result.caught.value >= caught_limit
            and (limits.errors_seen is None or result.errors_seen.value <= limits.errors_seen)
            and result.completed.value > 0
        )
        results.append(result)
    eligible = [i for i, r in enumerate(results) if r.meets_limits]
    recommended = min(eligible, key=lambda i: results[i].rollout_time_s.value) if eligible else None
    return TuneResult(
        scenario=loaded.spec.scenario.name, service=service.name, replications=count, seed=seed,
        candidates=results, recommended=recommended,
        limits={"false_rollback": false_limit, "caught": caught_limit, **({"errors_seen": float(limits.errors_seen)} if limits.errors_seen is not None else {})},
    )


def _error_rates(loaded: config.LoadedScenario, service: config.Service) -> tuple[float, float] | None:
    """(p0, p1): the stable environment's modelled error ratio and the bad canary's, when both
    are known numbers (a code worker's is not)."""
    tune = loaded.spec.tune
    assert tune is not None and service.rollout is not None
    stable = config.environments_of(service)[service.rollout.stable]
    model = stable.model or service.model
    if model is None or tune.bad.errors is None:
        return None
    p0, p1 = model.errors.fraction, tune.bad.errors.fraction
    return (p0, p1) if 0 < p0 < p1 < 1 else None


def tune(loaded: config.LoadedScenario, *, replications: int | None = None, seed: int | None = None,
         executor: Executor | None = None, progress=None) -> TuneResult:
    spec = loaded.spec
    assert spec.tune is not None
    count = replications or spec.tune.replications
    seed = spec.scenario.seed if seed is None else seed
    candidates = len(schedules.candidates(loaded))
    all_tasks = tasks(str(Path(loaded.file).resolve()), candidates, count, seed)
    return summarise(loaded, run_tasks(all_tasks, executor, progress), seed, count)


def write_json(result: TuneResult, path: str | Path) -> None:
    write_output(path, msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")


def task_count(loaded: config.LoadedScenario, replications: int | None) -> int:
    assert loaded.spec.tune is not None
    return len(schedules.candidates(loaded)) * len(HYPOTHESES) * (replications or loaded.spec.tune.replications)


def print_table(result: TuneResult, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:  # piped output keeps whole rows
        console = Console() if sys.stdout.isatty() else Console(width=220)

    def p(e: Estimate) -> str:
        return f"{e.value:.1%} [dim]({e.low:.1%}–{e.high:.1%})[/dim]"

    def m(e: Estimate, unit: str = "") -> str:
        if e.n == 0 or math.isnan(e.value):
            return "—"
        if math.isnan(e.low):
            return f"{e.value:,.0f}{unit}"
        return f"{e.value:,.0f}{unit} [dim]±{(e.high - e.low) / 2:,.0f}[/dim]"

    table = Table(
        title=f"edge tune: {result.scenario}, rollout of {result.service}, {result.replications} replications per schedule "
        f"and hypothesis (seeds {result.seed}–{result.seed + result.replications - 1}); 95% intervals",
        title_justify="left",
    )
    for column in ("#", "schedule", "bad: caught", "time to rollback", "canary req. to rollback", "closed form",
                   "errors seen", "without fallback", "extra load", "good: false rollback", "rollout time", "meets limits"):
        table.add_column(column, justify="left" if column in ("#", "schedule") else "right")
    for index, c in enumerate(result.candidates):
        mark = "[bold green]★ recommended[/bold green]" if index == result.recommended else ("yes" if c.meets_limits else "[red]no[/red]")
        table.add_row(
            str(index), c.schedule, p(c.caught), m(c.time_to_rollback_s, " s"), m(c.canary_requests_to_rollback),
            "—" if c.closed_form_requests is None else f"{c.closed_form_requests:,.0f}",
            m(c.errors_seen), m(c.errors_without_fallback), f"{c.extra_load.value:.3%}",
            p(c.false_rollback), m(c.rollout_time_s, " s"), mark,
        )
    console.print(table)
    limits = ", ".join(f"{k} {v:g}" for k, v in result.limits.items())
    if result.recommended is None:
        console.print(f"[bold red]no schedule meets the limits[/bold red] ({limits})")
    else:
        best = result.candidates[result.recommended]
        console.print(
            f"recommended: [bold]{best.schedule}[/bold], the fastest of those meeting the limits ({limits}; on the point "
            f"estimates: more replications narrow the intervals)"
        )
