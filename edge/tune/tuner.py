"""``edge tune``: how would each rollout schedule behave, before anyone rolls anything out?

For every candidate schedule and both hypotheses (the canary is *bad*: the scenario's ``tune.bad``
behaviour; or *good*: it behaves as the stable environment), the scenario is simulated until its
rollout is promoted or rolled back, again and again. Replication ``i`` uses seed ``seed + i`` under
every candidate and hypothesis (common random numbers: the same traffic and draws meet each
schedule, so the differences between schedules are the schedules', not luck's).

Replications run in rounds, until the answer is sure (``decide``): each round gives every schedule
still in the running the next seeds; after it, a schedule that surely fails a limit, or is surely
slower than one that surely passes them all, is dropped. The run stops when the recommendation is
decided or the budget is spent: a number of replications (each round's size is then a function of
the replications so far, never of the clock: the same seed gives the same bytes) or wall time.

Replications are independent, so a round runs on any ``concurrent.futures.Executor``: a process
pool over this machine's cores by default, or a Dask cluster's (``Client.get_executor()``), with no
other change. Estimates come with intervals at the chosen confidence (``intervals``), and a
closed-form figure where one exists: Wald's expected sample size for a schedule with a sequential
test, else the sample a fixed-size test needs (5% level, 80% power).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

import msgspec

from edge.scenario.load import SCHEDULE_FIELDS, load
from edge.scenario.resolved import LoadedScenario, ResolvedScenario
from edge.scenario.schema import Behaviour, Compare, Rollout, Service, Tune, TuneLimits, rollout_steps, tuned_service
from edge.tune import decide, schedules
from edge.tune.budget import Budget
from edge.tune.intervals import MIN_N, bounded_mean, mean, proportion, rounded
from edge.tune.results import CandidateResult, EngineUse, TuneResult
from edge.platform.files import write_output
from edge.report.build import build_report
from edge.engine import batched
from edge.engine.simulate import RunResult, simulate
from edge.platform.workers import ModelWorker
from edge.scenario.values import EnvironmentKey

HYPOTHESES = ("bad", "good")


class Task(msgspec.Struct, frozen=True):
    scenario: str
    candidate: int
    hypothesis: str
    seed: int
    per_request: bool = False
    """Run on the per-request engine even where the batched one could (``--per-request``)."""


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
    engine: str = "per-request"
    """"batched" or "per-request" (``edge.engine.batched``)."""
    why: str | None = None
    """Why it ran per request: asked to, the scenario does not qualify, requests could meet too
    often, or (``fell_back``) this replication's draws showed requests that met."""
    fell_back: bool = False
    windows: list[tuple[float, int, int]] = []
    """Each analysis: (time, canary answers, canary 5xx) of its window."""
    simulated_s: float = 0.0


@functools.lru_cache(maxsize=4)
def _loaded(path: str) -> LoadedScenario:
    return load(path)


@functools.lru_cache(maxsize=64)
def _batch_plan(path: str, candidate: int) -> batched.Plan | str:
    loaded = _loaded(path)
    rollout = schedules.candidates(loaded)[candidate]
    return batched.plan_for(loaded, tuned_service(loaded.spec), rollout, _check_every(rollout))


@functools.lru_cache(maxsize=256)
def batch_engine(path: str, candidate: int, hypothesis: str) -> tuple[batched.Plan | None, str | None, float | None]:
    """(plan, None, bound) when this schedule and hypothesis run batched, with the bound on how
    often a replication's requests meet; else (None, why not, bound or None)."""
    plan = _batch_plan(path, candidate)
    if isinstance(plan, str):
        return None, plan, None
    tune = _loaded(path).spec.tune
    assert tune is not None
    stable = plan.models[plan.stable]
    bound, worst = batched.coupling_bound(plan, canary_model(hypothesis_behaviour(tune, hypothesis), plan.models[plan.canary], stable), stable)
    if bound > batched.COUPLING_LIMIT:
        return None, f"requests could meet (P <= {bound:.2g}, mostly {worst})", bound
    return plan, None, bound


def replicate(task: Task) -> Replication:
    """One simulated rollout (a top-level function: it crosses process and machine boundaries),
    on the batched engine where the scenario allows it, else (or if its draws show requests that
    met) on the per-request engine."""
    loaded = _loaded(task.scenario)
    tune = loaded.spec.tune
    assert tune is not None
    behaviour = hypothesis_behaviour(tune, task.hypothesis)
    plan, why, _ = batch_engine(task.scenario, task.candidate, task.hypothesis)
    if task.per_request:
        plan, why = None, "--per-request"
    if plan is not None:
        stable = plan.models[plan.stable]
        try:
            out = batched.run(plan, canary_model(behaviour, plan.models[plan.canary], stable), stable, task.seed)
        except batched.Coupled as exc:
            return msgspec.structs.replace(_per_request(loaded, task, behaviour), why=str(exc), fell_back=True)
        return Replication(
            candidate=task.candidate, hypothesis=task.hypothesis, seed=task.seed, phase=out.phase, ended_at_s=out.ended_at_s,
            requests=out.requests, canary_requests=out.canary_requests, canary_errors_seen=out.canary_errors_seen,
            canary_errors=out.canary_errors, retries=out.retries, engine="batched", windows=out.windows, simulated_s=out.simulated_s,
        )
    return msgspec.structs.replace(_per_request(loaded, task, behaviour), why=why)


def _per_request(loaded: LoadedScenario, task: Task, behaviour: Behaviour | None) -> Replication:
    service = tuned_service(loaded.spec)
    rollout = schedules.candidates(loaded)[task.candidate]
    spec = msgspec.structs.replace(
        loaded.spec,
        services=[msgspec.structs.replace(s, rollout=rollout) if s.name == service.name else s for s in loaded.spec.services],
        thresholds=[],
    )
    run_loaded = msgspec.structs.replace(loaded, spec=spec)
    run_loaded.resolved = _under(run_loaded.resolved, service.name, rollout, behaviour)

    def ended(result: RunResult) -> str | None:
        return "rollout over" if result.topology.rollouts[service.name].ended else None

    result = simulate(run_loaded, seed=task.seed, stop_when=ended, stop_every=_check_every(rollout))
    report = build_report(result)
    r = report.rollouts[service.name]
    router = report.routers[service.name]
    controller = result.topology.rollouts[service.name]
    return Replication(
        candidate=task.candidate, hypothesis=task.hypothesis, seed=task.seed,
        phase=r.phase if r.phase in ("promoted", "rolled back") else "unfinished", ended_at_s=r.ended_at_s,
        requests=sum(o.requests for o in router.effective.values()),
        canary_requests=r.canary_requests, canary_errors_seen=router.effective[rollout.canary].errors,
        canary_errors=r.canary_errors, retries=sum(router.retries.values()),
        windows=[(at, a.answered, a.errors) for at, a in controller.analyses], simulated_s=result.simulated,
    )


def hypothesis_behaviour(tune: Tune, hypothesis: str) -> Behaviour | None:
    """The canary under "bad", "good" or "grid N" (point N of ``edge tune --power``'s curve)."""
    if hypothesis.startswith("grid "):
        assert tune.grid is not None
        return tune.grid.behaviour(int(hypothesis.removeprefix("grid ")))
    return tune.bad if hypothesis == "bad" else tune.good


def schedule_label(loaded: LoadedScenario, index: int, rollout: Rollout) -> str:
    """"1/5/25 every 1m; SPRT 0.1%/0.5%": the steps and the candidate's own settings."""
    tune = loaded.spec.tune
    assert tune is not None
    steps = [float(s.weight) for s in rollout_steps(rollout)]
    extras = {k: v for k, v in (tune.candidates[index] if tune.candidates else {}).items() if k not in SCHEDULE_FIELDS}
    return f"{'/'.join(f'{w:g}' for w in steps)} every {rollout.interval}" + "".join(f"; {_shown(k, v)}" for k, v in extras.items())


def _check_every(rollout: Rollout) -> float:
    """How often the run asks whether the rollout is over: a tenth of an interval."""
    return rollout.interval.seconds / 10


def _under(resolved: ResolvedScenario, service: str, rollout: Rollout, behaviour: Behaviour | None) -> ResolvedScenario:
    """The scenario with its canary under a hypothesis: a synthetic canary beside a synthetic
    stable runs the stable's model when good (no behaviour), its own changed by the behaviour
    when not (``canary_model``, as the batched engine does); a canary running code keeps its code,
    with the behaviour's faults when there is one."""
    canary, stable = (resolved.environment(EnvironmentKey(service, name)) for name in (rollout.canary, rollout.stable))
    if behaviour is not None:
        return resolved.with_environment(canary.key, behaviour=behaviour)
    if canary.model is not None and stable.model is not None:
        return resolved.with_environment(canary.key, model=stable.model)
    return resolved


def canary_model(behaviour: Behaviour | None, canary: ModelWorker, stable: ModelWorker) -> ModelWorker:
    """A synthetic canary under a hypothesis: the stable model when good (no behaviour), else its
    own with the behaviour's changes (a factor scales its model)."""
    from edge.engine.behaviour import changed_model

    return copy.copy(stable) if behaviour is None else changed_model(canary, behaviour)


def run_tasks(all_tasks: list[Task], executor: Executor | None, done: Callable[[Replication], None] | None = None) -> list[Replication]:
    """Every replication, on ``executor`` (None: in this process), in the tasks' order, each
    handed to ``done`` as it is read."""
    if executor is None:
        mapped: Iterable[Replication] = map(replicate, all_tasks)
    else:
        # One replication per submission: a replication takes seconds, a round trip a millisecond,
        # and a cluster of any size is kept busy to the end of the round (chunks sized by this
        # machine's cores left most of a large cluster idle). Submitted and read in order, never
        # cancelled here (``Executor.map`` cancels what is left when interrupted): on Ctrl-C the
        # command stops the pool's processes and the broken pool fails what was pending; a cancel
        # racing with that makes Python 3.11's pool thread print an InvalidStateError traceback.
        futures = [executor.submit(replicate, task) for task in all_tasks]
        mapped = (future.result() for future in futures)
    results = []
    for result in mapped:
        results.append(result)
        if done is not None:
            done(result)
    return results


def wald_expected_requests(p0: float, p1: float, alpha: float, beta: float) -> float:
    """Wald's approximation of the expected number of observations an SPRT of p0 against p1
    needs when the truth is p1."""
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    drift = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return ((1 - beta) * upper + beta * lower) / drift


def _shown(field: str, value: object) -> str:
    """A candidate's own setting, compactly: "SPRT 0.1%/0.5%", "Mann-Whitney at 0.01 (pocock)", "gates error ratio < 0.5%"."""
    if field == "sequential" and isinstance(value, dict):
        return f"SPRT {value.get('p0')}/{value.get('p1')}"
    if field == "compare" and isinstance(value, dict):
        return f"Mann-Whitney at {value.get('alpha', Compare().alpha)} ({value.get('spending', Compare().spending)})"
    if isinstance(value, list):
        return f"{field.replace('_', ' ')} {', '.join(map(str, value))}"
    return f"{field.replace('_', ' ')} {value}"


def fixed_sample_requests(p0: float, p1: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Canary answers a one-sided test of "error ratio p0" needs to detect p1 with ``power`` at
    level ``alpha`` (normal approximation of the binomial): what a fixed-size analysis must see."""
    from scipy.stats import norm

    z_alpha, z_beta = float(norm.ppf(1 - alpha)), float(norm.ppf(power))
    return ((z_alpha * math.sqrt(p0 * (1 - p0)) + z_beta * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2


def summarise(loaded: LoadedScenario, replications: list[Replication], seed: int, confidence: float) -> list[CandidateResult]:
    """Every schedule's estimates from its replications, and its limits judged on them."""
    tune = loaded.spec.tune
    assert tune is not None
    service = tuned_service(loaded.spec)
    limits = _limits(tune.limits)
    rates = _error_rates(loaded, service)
    results = []
    for index, rollout in enumerate(schedules.candidates(loaded)):
        bad = [r for r in replications if r.candidate == index and r.hypothesis == "bad"]
        good = [r for r in replications if r.candidate == index and r.hypothesis == "good"]
        caught = [r for r in bad if r.phase == "rolled back"]
        promoted = [r for r in good if r.phase == "promoted"]
        steps = [float(s.weight) for s in rollout_steps(rollout)]
        closed = None
        if rollout.sequential is not None:
            s = rollout.sequential
            closed = rounded(wald_expected_requests(s.p0.fraction, s.p1.fraction, float(s.alpha), float(s.beta)))
        elif rates is not None:
            closed = rounded(fixed_sample_requests(*rates))

        def average(field: int, values: list[float]):
            # Each mean resamples from its own stream: a function of the seed, the schedule and the figure.
            return mean(values, confidence, (seed, index, field))

        soonest_rollback, soonest_promotion, latest = time_bounds(loaded, rollout)

        result = CandidateResult(
            schedule=schedule_label(loaded, index, rollout),
            steps=steps, interval_s=rollout.interval.seconds, replications=len(good), dropped=None, dropped_after=None, paused=None,
            caught=proportion(len(caught), len(bad), confidence),
            time_to_rollback_s=bounded_mean([r.ended_at_s for r in caught if r.ended_at_s is not None], confidence, soonest_rollback, latest),
            canary_requests_to_rollback=average(1, [float(r.canary_requests) for r in caught]),
            errors_seen=average(2, [float(r.canary_errors_seen) for r in bad]),
            errors_without_fallback=average(3, [float(r.canary_errors) for r in bad]),
            extra_load=bounded_mean([r.retries / r.requests if r.requests else 0.0 for r in bad], confidence, 0.0, 1.0),
            false_rollback=proportion(sum(r.phase == "rolled back" for r in good), len(good), confidence),
            rollout_time_s=bounded_mean([r.ended_at_s for r in promoted if r.ended_at_s is not None], confidence, soonest_promotion, latest),
            completed=proportion(len(promoted), len(good), confidence),
            closed_form_requests=closed, checks=[], meets_limits=False,
        )
        result.checks = decide.checks(result, limits, confidence)
        result.meets_limits = _meets_on_points(result, limits)
        results.append(result)
    return results


def time_bounds(loaded: LoadedScenario, rollout: Rollout) -> tuple[float, float, float]:
    """Where a replication's rollback and promotion times can lie: (soonest rollback, soonest
    promotion, latest end). A rollback comes at an analysis, the first one an interval after the
    start; a promotion after every step's interval and pause; either by the end of the drain.
    The times' confidence sequences are taken over these ranges."""
    meta = loaded.spec.scenario
    steps = rollout_steps(rollout)
    start, interval = rollout.start.seconds, rollout.interval.seconds
    pauses = math.fsum(step.pause.seconds for step in steps if step.pause is not None)
    latest = meta.duration.seconds + meta.drain.seconds
    return min(start + interval, latest), min(start + pauses + len(steps) * interval, latest), latest


def _limits(limits: TuneLimits) -> dict[str, float]:
    return {"false_rollback": limits.false_rollback.fraction, "caught": limits.caught.fraction,
            **({"errors_seen": float(limits.errors_seen)} if limits.errors_seen is not None else {})}


def _meets_on_points(c: CandidateResult, limits: dict[str, float]) -> bool:
    def value(e) -> float:
        return math.nan if e.value is None else e.value  # NaN compares false: no data meets nothing

    return (
        value(c.false_rollback) <= limits["false_rollback"]
        and value(c.caught) >= limits["caught"]
        and ("errors_seen" not in limits or value(c.errors_seen) <= limits["errors_seen"])
        and value(c.completed) > 0
    )


def _error_rates(loaded: LoadedScenario, service: Service) -> tuple[float, float] | None:
    """(p0, p1): the stable environment's modelled error ratio and the bad canary's, when both
    are known numbers (a code worker's is not)."""
    tune = loaded.spec.tune
    assert tune is not None and service.rollout is not None
    model = loaded.resolved.environment(EnvironmentKey(service.name, service.rollout.stable)).model
    if model is None or tune.bad.errors is None:
        return None
    p0, p1 = model.errors.fraction, tune.bad.errors.fraction
    return (p0, p1) if 0 < p0 < p1 < 1 else None


# -- the adaptive loop -------------------------------------------------------------------------


ROUND_TASKS = 16
"""A round runs at least this many simulations (so a round keeps several cores busy to its end),
and a quarter of the replications so far, or fewer if the open questions seem that close to
settled (so the rounds' own cost stays small while the decision is overshot by little). A
constant, not the machine's core count: the answer must not depend on where it ran."""


class Progress(Protocol):
    """What ``tune`` tells whoever shows its progress (``edge.tune.progress``)."""

    def round_started(self, number: int, seeds: dict[int, range], simulations: int) -> None: ...
    def simulation_done(self) -> None: ...
    def round_finished(self, result: TuneResult) -> None: ...


def tune(loaded: LoadedScenario, *, budget: Budget | None = None, confidence: float = 0.95, seed: int | None = None,
         executor: Executor | None = None, progress: Progress | None = None, per_request: bool = False) -> TuneResult:
    """Rounds of replications until the recommendation is decided or ``budget`` is spent (by
    default the scenario's ``tune.replications`` per schedule); ``per_request`` keeps every
    simulation on the per-request engine."""
    spec = loaded.spec
    assert spec.tune is not None
    budget = budget or Budget(replications=spec.tune.replications)
    seed = spec.scenario.seed if seed is None else seed
    scenario = str(Path(loaded.file).resolve())
    running = list(range(len(schedules.candidates(loaded))))
    seeds_used = dict.fromkeys(running, 0)
    dropped: dict[int, tuple[str, int]] = {}
    paused: dict[int, str] = {}
    replications: list[Replication] = []
    rounds, started, more = 0, time.monotonic(), None
    while True:
        active = [i for i in running if i not in paused]
        count = _round_size(budget, max(seeds_used.values()), len(active), time.monotonic() - started, replications, more)
        if budget.replications is not None:
            active = [i for i in active if seeds_used[i] < budget.replications]
        # Each schedule takes its own next seeds: one paused for a while catches up on those it missed.
        plan = {i: range(seeds_used[i], seeds_used[i] + _capped(count, seeds_used[i], budget)) for i in active}
        rounds += 1
        round_tasks = [Task(scenario, i, h, seed + k, per_request) for i in active for k in plan[i] for h in HYPOTHESES]
        if progress is not None:
            progress.round_started(rounds, {i: range(seed + r.start, seed + r.stop) for i, r in plan.items()}, len(round_tasks))
        replications += run_tasks(round_tasks, executor, None if progress is None else lambda _: progress.simulation_done())
        for i in active:
            seeds_used[i] = plan[i].stop
        results = summarise(loaded, replications, seed, confidence)
        for i, reason in decide.drops(results, running).items():
            dropped[i] = (reason, rounds)
        running = [i for i in running if i not in dropped]
        paused = decide.paused(results, running) if budget.fixed is None else {}  # a fixed run has no next round to wait for
        result = _answer(loaded, results, running, dropped, paused, budget, seed, confidence, max(seeds_used.values()), rounds,
                         engine_use(scenario, replications))
        more = result.more_replications
        spent = budget.fixed is not None or (
            all(seeds_used[i] >= budget.replications for i in running if i not in paused) if budget.seconds is None
            else time.monotonic() - started >= budget.seconds)
        over = result.decided or spent or not running
        if over:
            result.stopped = "fixed" if budget.fixed is not None else ("decided" if result.decided else "budget")
        if progress is not None:
            progress.round_finished(result)
        if over:
            return result


def _round_size(budget: Budget, done: int, active: int, elapsed: float, replications: list[Replication], more: int | None) -> int:
    if budget.fixed is not None:
        return budget.fixed
    growth = math.ceil(done / 4) if more is None else min(math.ceil(done / 4), more)  # no further than the answer seems to be
    count = max(math.ceil(ROUND_TASKS / (active * len(HYPOTHESES))), growth, MIN_N - done)
    if budget.seconds is not None and replications:  # fit the round into the time left, at the pace so far
        per_replication = elapsed / len(replications) * active * len(HYPOTHESES)
        count = min(count, max(1, int((budget.seconds - elapsed) / per_replication)))
    return count


def _capped(count: int, used: int, budget: Budget) -> int:
    return count if budget.replications is None else min(count, budget.replications - used)


def _answer(loaded: LoadedScenario, results: list[CandidateResult], running: list[int], dropped: dict[int, tuple[str, int]],
            paused: dict[int, str], budget: Budget, seed: int, confidence: float, done: int, rounds: int, engine: EngineUse) -> TuneResult:
    assert loaded.spec.tune is not None
    for i, (reason, after) in dropped.items():
        results[i].dropped, results[i].dropped_after = reason, after
    for i, reason in paused.items():
        results[i].paused = reason
    decided = decide.is_decided(results, running)
    if decided:
        undecided: list[tuple[str, int | None]] = []
        recommended = next((i for i in running if all(c.status == "passes" for c in results[i].checks)), None)
    else:
        recommended = decide.leader(results, running)
        undecided = decide.open_questions(results, running, recommended)
    mores = [m for _, m in undecided]
    return TuneResult(
        scenario=loaded.spec.scenario.name, service=tuned_service(loaded.spec).name, seed=seed,
        confidence=confidence, budget=str(budget), replications=done, rounds=rounds, stopped="budget", decided=decided,
        candidates=results, recommended=recommended,
        undecided=[f"{what}: {_more(m)}" for what, m in undecided],
        more_replications=max(mores) if mores and None not in mores else None,  # type: ignore[type-var]
        limits=_limits(loaded.spec.tune.limits), engine=engine,
    )


def engine_use(scenario: str, replications: list[Replication]) -> EngineUse:
    """Which engine ran ``replications`` of the scenario at ``scenario`` (a resolved path), and why."""
    batched_runs = [r for r in replications if r.engine == "batched"]
    tried = {(r.candidate, r.hypothesis) for r in replications if r.engine == "batched" or r.fell_back}
    bounds = [bound for c, h in tried if (bound := batch_engine(scenario, c, h)[2]) is not None]
    return EngineUse(
        batched=len(batched_runs), per_request=len(replications) - len(batched_runs), fell_back=sum(r.fell_back for r in replications),
        coupling_bound=rounded(max(bounds)) if bounds else None,
        simulated_s=rounded(math.fsum(r.simulated_s for r in replications)), batched_s=rounded(math.fsum(r.simulated_s for r in batched_runs)),
        why_per_request=sorted({r.why for r in replications if r.why is not None and not r.fell_back}),
    )


def _more(m: int | None) -> str:
    return f"about {m:,} more replications" if m is not None else "no number of replications would decide it on these estimates"


def write_json(result: TuneResult, path: str | Path) -> None:
    write_output(path, msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")
