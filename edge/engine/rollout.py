"""Progressive rollouts: a controller per service moves its router's weights step by step, as
Flagger and Argo Rollouts do, analysing the canary at every interval.

The decisions are ``edge.engine.rollout_machine``'s pure ``step``; the controller here is the thin
part that touches the world. It turns the clock's callbacks (the start, a pause's end, an interval's
end) and approvals into events, and applies the actions that come back: to the topology only
through the router (``set_weight``) and the environments (``adopt`` on promotion), to the run's
metrics, and to the clock (the next callback). It also does the measuring: each interval it reads
what changed in the canary's recorders since the window began (counts as differences, latency from
the difference of histogram bins), so each verdict is about that interval alone:

* ``gates`` are thresholds on the canary over the interval (``p99 latency < 200ms``);
* ``compare`` is a one-sided Mann-Whitney U test of the canary's latency against the stable
  environment's over the same interval (run here; the machine compares its p-value and shift);
* ``sequential`` (Wald's SPRT) and ``min_requests`` need only the window's counts.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import msgspec

from edge.scenario.schema import Rollout, Scenario, rollout_steps
from edge.platform.clock import ModelClock
from edge.metrics.histogram import Bins
from edge.metrics.recorders import EnvironmentStats, RunMetrics
from edge.engine import rollout_machine as machine
from edge.engine.rollout_machine import Phase
from edge.engine.topology import Topology
from edge.scenario.thresholds import Threshold
from edge.scenario.values import EnvironmentKey


class RolloutEvent(msgspec.Struct, omit_defaults=True):
    at_s: float
    event: str
    """start, step, pass, fail, no_data, hold, settled (the sequential test), waiting, approved,
    rollback, promote."""
    weight: float
    """The canary's weight after the event."""
    detail: str
    checks: list[machine.Check] = []
    """An analysis's criteria (gates, answers needed, the comparison, the sequential test), pass
    or fail, each with its measured value, sample size and limit."""


MARKED_EVENTS = frozenset({"start", "step", "rollback", "promote", "waiting", "approved", "paused", "resumed"})
"""Rollout events worth a line on a chart (the report's, the live dashboard's): the decisions and
the operator's actions, not every analysis."""


class RolloutReport(msgspec.Struct):
    canary: str
    stable: str
    phase: str
    """pending, progressing, waiting (a pause or an approval), paused (by the operator), promoted
    or rolled back."""
    weight: float
    step: int
    """The step whose weight the canary has, from 1 (0 before the first)."""
    steps: int
    steps_passed: int
    failures: int
    failure_limit: int
    ended_at_s: float | None
    """When it was promoted or rolled back, in seconds since the run's (or the server's) start,
    as every time of its events is."""
    canary_requests: int
    """Calls the canary answered from the rollout's start to its end (or the run's)."""
    canary_errors: int
    events: list[RolloutEvent]


class _Reading:
    """An environment's recorders at one instant."""

    def __init__(self, stats: EnvironmentStats) -> None:
        totals = stats.totals()
        self.answered = sum(totals)
        self.errors = totals[4]
        self.shed = stats.shed
        self.latency = stats.latency.bins()
        self.queue_wait = stats.queue_wait.bins()


def plan_of(rollout: Rollout) -> machine.Plan:
    """The scenario's rollout settings as the machine's numbers (decoded and checked at load)."""
    steps = tuple(
        machine.Step(weight=float(s.weight), pause_s=None if s.pause is None else s.pause.seconds, pause_label="" if s.pause is None else str(s.pause), manual=s.manual)
        for s in rollout_steps(rollout)
    )
    compare = rollout.compare
    sequential = rollout.sequential
    return machine.Plan(
        steps=steps, interval_s=rollout.interval.seconds, interval_label=str(rollout.interval), stable=rollout.stable,
        gates=tuple(rollout.gates),
        min_requests=rollout.min_requests, no_data=machine.NoData(rollout.no_data), failure_limit=rollout.failure_limit,
        compare=None if compare is None else machine.CompareLimits(
            alpha=float(compare.alpha), min_shift_s=compare.min_shift.seconds, min_samples=compare.min_samples, spending=compare.spending,
            levels=comparison_levels(float(compare.alpha), compare.spending, planned_comparisons(steps, rollout.failure_limit))),
        sequential=None if sequential is None else machine.SequentialTest(
            p0=sequential.p0.fraction, p1=sequential.p1.fraction, alpha=float(sequential.alpha), beta=float(sequential.beta)),
    )


def planned_comparisons(steps: tuple[machine.Step, ...], failure_limit: int) -> int:
    """The most comparisons a rollout makes without holding: one at the analysis of each step
    where the stable environment still has traffic (not at 100%), and one more for each failure
    it may survive."""
    return sum(1 for step in steps if step.weight < 100) + failure_limit - 1


def comparison_levels(alpha: float, spending: str, looks: int) -> tuple[float, ...]:
    """Each planned comparison's own level. Spent (``"pocock"``, ``"obrien-fleming"``): the
    probability that a canary no slower than the stable environment fails any of the ``looks``
    comparisons is ``alpha``, the k-th taking what the spending function allots to k / looks of
    the rollout. Windows do not overlap, so the comparisons are independent: level k is
    (spent(k) - spent(k - 1)) / (1 - spent(k - 1)), and their joint false-failure rate is exactly
    spent(1) = alpha. ``"per-look"``: ``alpha`` at each (about looks x alpha over the rollout)."""
    if spending == "per-look":
        return (alpha,) * looks
    normal = statistics.NormalDist()

    def spent(t: float) -> float:
        if spending == "pocock":
            return alpha * math.log(1 + (math.e - 1) * t)
        return 2 * (1 - normal.cdf(normal.inv_cdf(1 - alpha / 2) / math.sqrt(t)))

    levels, before = [], 0.0
    for k in range(1, looks + 1):
        now = alpha if k == looks else spent(k / looks)  # the whole alpha at the end, not its rounding
        levels.append((now - before) / (1 - before))
        before = now
    return tuple(levels)


class RolloutController:
    def __init__(self, service: str, rollout: Rollout, topology: Topology, clock: ModelClock, metrics: RunMetrics) -> None:
        self.service = service
        self.rollout = rollout
        self.canary = rollout.canary
        self.stable = rollout.stable
        self.router = topology.routers[service]
        self.canary_actor = topology.environments[EnvironmentKey(service, rollout.canary)]
        self.stable_actor = topology.environments[EnvironmentKey(service, rollout.stable)]
        self.clock = clock
        self.metrics = metrics
        self.state = machine.RolloutState(plan_of(rollout))
        self.origin = clock.now()
        """The clock's time at the run's (or the server's) start: a live clock's is not 0."""
        self.events: list[RolloutEvent] = []
        self.analyses: list[tuple[float, machine.Analysis]] = []
        """Every window analysed, with its time (what ``edge tune``'s agreement tests compare)."""
        self.ended_at: float | None = None
        self._first: _Reading | None = None  # the canary at the start, for its totals
        self._last: _Reading | None = None  # the canary when the window began
        self._last_stable: Bins | None = None
        self._window = 0  # the analysis window's number: an analysis scheduled for an earlier one is stale
        self._show_phase()

    # -- events in --------------------------------------------------------------------------------
    def begin(self) -> None:
        self.clock.call_later(self.rollout.start.seconds, self._start)

    def _start(self) -> None:
        self._first = _Reading(self.metrics.environments[self.canary_actor.key])
        self._feed(machine.Start())

    def _pause_over(self, index: int) -> None:
        self._feed(machine.PauseOver(index))

    def approve(self) -> str:
        """A manual gate's approval (timeline ``approve``, or the admin API live)."""
        resumes = self.state.awaiting >= 0 and self.state.phase is Phase.WAITING
        self._feed(machine.Approve())
        return "approved: the rollout goes on" if resumes else "approved in advance: the next manual step will not wait"

    def hold(self) -> str:
        """The operator's pause: nothing analysed, no step taken, the split left to the operator."""
        if self.state.ended or self.state.phase is Phase.PAUSED:
            return f"nothing to pause: the rollout is {self.phase}"
        self._feed(machine.Hold())
        return f"paused at {self.router.weights.get(self.canary, 0.0):g}%: the split is yours until `edge rollout resume`"

    def resume(self) -> str:
        if self.state.phase is not Phase.PAUSED:
            return f"nothing to resume: the rollout is {self.phase}"
        self._feed(machine.Resume())
        return f"resumed: {self.phase}, the canary at {self.router.weights.get(self.canary, 0.0):g}%"

    def abort(self) -> str:
        if self.state.ended:
            return f"nothing to abort: the rollout is {self.phase}"
        self._feed(machine.Abort())
        return "aborted: rolled back, the canary at 0%"

    @property
    def owns_split(self) -> bool:
        """Whether the rollout sets the split: from its creation until it ends, unless paused."""
        return not self.state.ended and self.state.phase is not Phase.PAUSED

    def _analyse(self, window_number: int) -> None:
        if window_number != self._window:  # scheduled before a pause, for a window since begun again
            return
        window = self._measure()
        self.analyses.append((self.clock.now(), window))
        self._feed(window)

    def _feed(self, event: machine.Event) -> None:
        self.state, actions = machine.step(self.state, event)
        for action in actions:
            self._apply(action)
        self._show_phase()

    # -- actions out ------------------------------------------------------------------------------
    def _apply(self, action: machine.Action) -> None:
        match action:
            case machine.SetWeight(weight):
                self.router.set_weight(self.canary, weight)
            case machine.StartWindow():
                self._window += 1
                self._last = _Reading(self.metrics.environments[self.canary_actor.key])
                self._last_stable = self.metrics.environments[self.stable_actor.key].latency.bins()
            case machine.ScheduleAnalysis(after_s):
                self.clock.call_later(after_s, self._analyse, self._window)
            case machine.SchedulePauseEnd(index, after_s):
                self.clock.call_later(after_s, self._pause_over, index)
            case machine.RecordAnalysis(verdict):
                key = (self.service, verdict.value)
                self.metrics.rollout_checks[key] = self.metrics.rollout_checks.get(key, 0) + 1
            case machine.Log(event, detail, checks):
                self._log(event.value, detail, checks)
            case machine.Promote():
                version = self.stable_actor.adopt(self.canary_actor)
                self.router.set_weights({name: (100.0 if name == self.stable else 0.0) for name in self.router.targets})
                self.ended_at = self._since_start()
                # Logged here, not by the machine: the version is the environment's, after adopting.
                self._log("promote", f"{self.stable} now runs version {version.number} ({version.source}) and takes all traffic")
            case machine.Rollback(why, checks):
                self.router.set_weight(self.canary, 0.0)
                self.ended_at = self._since_start()
                self._log("rollback", why, checks)

    # -- one interval's figures -------------------------------------------------------------------
    def _measure(self) -> machine.Analysis:
        """The window since the last analysis or step, which then starts again from now."""
        now = _Reading(self.metrics.environments[self.canary_actor.key])
        stable_now = self.metrics.environments[self.stable_actor.key].latency.bins()
        last, stable_last = self._last, self._last_stable
        self._last, self._last_stable = now, stable_now
        assert last is not None and stable_last is not None
        return analysis(
            self.state.plan, answered=now.answered - last.answered, errors=now.errors - last.errors, shed=now.shed - last.shed,
            latency=now.latency - last.latency, queue_wait=now.queue_wait - last.queue_wait, stable_latency=stable_now - stable_last,
            stable_weight=self.router.weights.get(self.stable, 0.0),
        )

    # -- records ----------------------------------------------------------------------------------
    def _show_phase(self) -> None:
        for phase in Phase:
            self.metrics.rollout_phase[(self.service, phase.value)] = 1.0 if phase is self.state.phase else 0.0

    def _log(self, event: str, detail: str, checks: tuple[machine.Check, ...] = ()) -> None:
        weight = self.router.weights.get(self.canary, 0.0)
        self.events.append(RolloutEvent(at_s=self._since_start(), event=event, weight=weight, detail=detail, checks=list(checks)))

    def _since_start(self) -> float:
        return round(self.clock.now() - self.origin, 9)

    @property
    def phase(self) -> str:
        return self.state.phase.value

    @property
    def ended(self) -> bool:
        return self.state.ended

    def report(self) -> RolloutReport:
        stats = self.metrics.environments[self.canary_actor.key]
        end = _Reading(stats)
        first = self._first or end
        return RolloutReport(
            canary=self.canary, stable=self.stable, phase=self.phase, weight=self.router.weights.get(self.canary, 0.0),
            step=self.state.step + 1, steps=len(self.state.plan.steps),
            steps_passed=sum(1 for e in self.events if e.event == "pass"),
            failures=self.state.failures, failure_limit=self.state.plan.failure_limit, ended_at_s=self.ended_at,
            canary_requests=end.answered - first.answered, canary_errors=end.errors - first.errors, events=list(self.events),
        )


def analysis(plan: machine.Plan, *, answered: int, errors: int, shed: int, latency: Bins, queue_wait: Bins,
             stable_latency: Bins, stable_weight: float) -> machine.Analysis:
    """One window's figures as the machine's event: the gates' values and the latency comparison.
    The per-request controller and the batched engine (``edge.engine.batched``) both measure
    through here, so a gate reads the same figure whichever engine counted the answers.

    The comparison needs ``min_samples`` answers a side, and a stable environment that had
    traffic: at the 100% step its only answers are the few still in flight when the weight
    moved, and one of them once decided a rollback (p = 0.043 against 1,562 canary answers)."""
    window = {
        "requests": float(answered), "errors": float(errors), "error ratio": errors / answered if answered else 0.0,
        "shed": float(shed), "latency": latency, "queue wait": queue_wait,
    }
    comparison = None
    limits = plan.compare
    if limits is not None and stable_weight > 0 and min(latency.count, stable_latency.count) >= limits.min_samples:
        comparison = _compare(latency, stable_latency)
    return machine.Analysis(
        answered=answered, errors=errors, gate_values=tuple(_value(gate, window) for gate in plan.gates),
        gate_samples=tuple(_samples(gate, window, answered) for gate in plan.gates), comparison=comparison)


def _compare(canary: Bins, stable: Bins) -> machine.Comparison:
    """The Mann-Whitney test of the two windows' latency bins read as samples."""
    from scipy.stats import mannwhitneyu  # a second's import, paid only by rollouts that compare

    p = float(mannwhitneyu(canary.samples(), stable.samples(), alternative="greater", method="asymptotic").pvalue)
    return machine.Comparison(p_value=p, median_shift_s=canary.quantile(0.5) - stable.quantile(0.5), samples=canary.count)


def _value(gate: Threshold, window: dict[str, Any]) -> float:
    value = window[gate.metric]
    if isinstance(value, Bins):  # latency or queue wait over the interval
        if gate.stat == "max":
            return value.largest()
        return value.quantile({"p50": 0.5, "p90": 0.9, "p99": 0.99}[gate.stat])  # type: ignore[index]
    return float(value)


def _samples(gate: Threshold, window: dict[str, Any], answered: int) -> int:
    """A latency quantile is read from the answers whose latency was recorded; the rest from all."""
    value = window[gate.metric]
    return value.count if isinstance(value, Bins) else answered


def schedule_rollouts(spec: Scenario, topology: Topology, clock: ModelClock, metrics: RunMetrics) -> dict[str, RolloutController]:
    """A controller for every service with a ``rollout``, started at its ``start`` (from now)."""
    controllers = {}
    for service in spec.services:
        if service.rollout is not None:
            controller = controllers[service.name] = RolloutController(service.name, service.rollout, topology, clock, metrics)
            controller.begin()
    topology.rollouts.update(controllers)  # in place: the admin API holds this dict
    return controllers
