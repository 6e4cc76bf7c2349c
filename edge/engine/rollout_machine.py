"""A progressive rollout's decisions as a pure state machine: ``step(state, event) -> (state, actions)``.

Nothing here reads a clock, a metric or a random number, or touches an actor: the controller
(``edge.engine.rollout``) measures each analysis window, turns timers and approvals into events,
and applies the actions this returns, in order. So every decision can be tested by feeding events.

Phases and what moves them (``Start``, ``PauseOver``, ``Approve``, ``Analysis``; an operator's
``Hold``, ``Resume`` and ``Abort``):

* pending -> progressing (or waiting, if the first step has a pause or needs an approval): Start.
* progressing -> progressing at the next step: an analysis passes before the last step.
* progressing -> waiting: a pass leads to a step with a pause or a manual approval.
* waiting -> progressing: the pause is over (PauseOver) and any approval is given (Approve).
* progressing -> promoted: the last step's analysis passes.
* progressing -> rolled back: ``failure_limit`` failed analyses, or the sequential test's upper bound.
* pending, progressing or waiting -> paused: Hold (``edge rollout pause``). Nothing is analysed
  and no step is taken; the weight stays where it is, or where the operator sets it.
* paused -> progressing or waiting, where it was: Resume. The step's weight is set again and its
  analysis window starts afresh; a step's pause or an approval that came meanwhile counts.
* any phase but the final ones -> rolled back: Abort.
* promoted, rolled back: final; later events change nothing.

The order of one analysis (the report's history depends on it): the sequential test, which may
roll back at once or settle for the rest of the rollout; then too few answers ("no data", which
counts as the scenario says); then the gates and the latency comparison, all judged together.
"""

from __future__ import annotations

import dataclasses
import enum
import math

import msgspec

from edge.platform.units import format_duration
from edge.scenario.thresholds import Threshold


class Phase(enum.StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    WAITING = "waiting"
    """For a step's pause, or for an approval."""
    PAUSED = "paused"
    """By the operator: until resumed, nothing is analysed and no step taken."""
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled back"


class NoData(enum.StrEnum):
    """What an analysis with too few canary answers counts as."""

    FAIL = "fail"
    PASS = "pass"
    HOLD = "hold"
    """Neither: the same step is analysed again next interval."""


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"
    """Too few answers, counted as a failure (``NoData.FAIL``); the other choices give PASS or HOLD."""
    HOLD = "hold"
    ROLLBACK = "rollback"
    """The sequential test's upper bound: a rollback without counting failures."""


class Milestone(enum.StrEnum):
    """History entries that are not an analysis's verdict."""

    START = "start"
    STEP = "step"
    SETTLED = "settled"
    WAITING = "waiting"
    APPROVED = "approved"
    PAUSED = "paused"
    RESUMED = "resumed"


class Check(msgspec.Struct, frozen=True, omit_defaults=True):
    """One criterion of an analysis, pass or fail, as Flagger and Argo Rollouts print a metric's
    result: what was measured, over how many answers, against which limit. Plain data, so the
    report's JSON carries it as it is."""

    name: str
    """What was measured: a gate's statistic and metric ("p99 latency"), "canary answers", the
    comparison's "Mann-Whitney p", the sequential test's "log-likelihood ratio"."""
    measured: float
    op: str
    """The comparison that passes: measured OP limit."""
    limit: float
    samples: int
    """The answers the value was measured over."""
    passed: bool
    unit: str = ""
    """"s" for a duration, "%" for a ratio, "" for a count or a statistic."""
    note: str = ""
    """What else decided it (the comparison's median shift)."""

    def shown(self) -> str:
        """"error ratio 5.000% of 240 answers (needs < 1.000%)"; "canary answers 12 (needs >= 100)"."""
        counted = "" if self.name == ANSWERS else f" of {self.samples:,} answers"
        limit = f"{self.limit * 100:.10g}%" if self.unit == "%" else _number(self.limit, self.unit)  # as the scenario wrote it
        text = f"{self.name} {_number(self.measured, self.unit)}{counted} (needs {self.op} {limit})"
        return f"{text}, {self.note}" if self.note else text


ANSWERS = "canary answers"
"""The check of ``min_requests``: its value is its sample size."""


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return format_duration(value)
    if unit == "%":
        return f"{value:.3%}"
    return f"{value:.3g}" if value != int(value) else f"{value:g}"


# -- the plan: a rollout's settings, parsed -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Step:
    weight: float
    pause_s: float | None = None
    pause_label: str = ""
    """The pause as the scenario wrote it, for the history."""
    manual: bool = False


@dataclasses.dataclass(frozen=True)
class CompareLimits:
    """The Mann-Whitney gate fails when both hold: p below the comparison's level and a median
    shift above ``min_shift_s``. The k-th comparison of the rollout is at ``levels[k]``; one past
    the planned comparisons can no longer fail. Without planned levels (None), every comparison
    is at ``alpha``. ``spending``: how ``alpha`` was spent (``edge.engine.rollout.comparison_levels``)."""

    alpha: float
    min_shift_s: float
    min_samples: int = 20
    """Answers each side needs for the test to be run (``edge.engine.rollout.analysis``)."""
    spending: str = "per-look"
    levels: tuple[float, ...] | None = None

    def level(self, index: int) -> float:
        if self.levels is None:
            return self.alpha
        return self.levels[index] if index < len(self.levels) else 0.0

    @property
    def overall(self) -> float:
        """The probability a canary as fast as the stable environment fails some planned comparison."""
        return 1 - math.prod(1 - level for level in self.levels or ())

    def shown(self) -> str:
        """"Mann-Whitney at 0.05 overall over 2 comparisons (O'Brien-Fleming: 0.56%, 4.5%)"."""
        planned = self.levels or ()
        levels = ", ".join(f"{level:.2g}" if level < 0.001 else f"{level:.2%}".replace(".00%", "%") for level in planned)
        count = f"{len(planned)} comparison{'s' if len(planned) != 1 else ''}"
        if self.spending == "per-look":
            return f"Mann-Whitney at {self.alpha:g} per comparison over {count}: {self.overall:.3g} overall"
        name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[self.spending]
        return f"Mann-Whitney at {self.alpha:g} overall over {count} ({name}: {levels})"


@dataclasses.dataclass(frozen=True)
class SequentialTest:
    """Wald's SPRT on the canary's error ratio: H0 ``p0`` against H1 ``p1``."""

    p0: float
    p1: float
    alpha: float
    beta: float


@dataclasses.dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    interval_s: float
    interval_label: str
    """The interval as the scenario wrote it, for the history."""
    stable: str
    """The stable environment's name, for the comparison's failure line."""
    gates: tuple[Threshold, ...] = ()
    min_requests: int = 0
    no_data: NoData = NoData.FAIL
    failure_limit: int = 1
    compare: CompareLimits | None = None
    sequential: SequentialTest | None = None


@dataclasses.dataclass(frozen=True)
class RolloutState:
    plan: Plan
    phase: Phase = Phase.PENDING
    step: int = -1
    """The index of the step whose weight the canary has."""
    failures: int = 0
    approvals: int = 0
    """Approvals given and not yet used by a manual step."""
    paused_for: int = -1
    """The step whose pause is over."""
    awaiting: int = -1
    """The manual step waiting for an approval."""
    llr: float = 0.0
    """The sequential test's log-likelihood ratio over every answer so far."""
    sprt_settled: bool = False
    comparisons: int = 0
    """Latency comparisons judged so far: the next is at the plan's level of that index."""
    sprt_answers: int = 0
    """The answers the sequential test has read."""
    held_from: Phase | None = None
    """The phase an operator's pause interrupted, to resume to."""
    start_missed: bool = False
    """The start came during a pause from pending: the rollout starts when resumed."""

    @property
    def ended(self) -> bool:
        return self.phase in (Phase.PROMOTED, Phase.ROLLED_BACK)


# -- events ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Start:
    """The rollout's ``start`` time has come."""


@dataclasses.dataclass(frozen=True)
class PauseOver:
    """The pause before step ``step`` is over."""

    step: int


@dataclasses.dataclass(frozen=True)
class Approve:
    """An operator's approval, for the manual step waiting or the next one."""


@dataclasses.dataclass(frozen=True)
class Hold:
    """An operator's pause (``edge rollout pause``)."""


@dataclasses.dataclass(frozen=True)
class Resume:
    """An operator's resume after a ``Hold``."""


@dataclasses.dataclass(frozen=True)
class Abort:
    """An operator's abort: roll back now."""

    why: str = "aborted by the operator"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The canary's latency against the stable environment's over the window."""

    p_value: float
    """One-sided: small when the canary is slower."""
    median_shift_s: float
    samples: int = 0
    """The canary's answers compared (the stable environment's are at least ``min_samples`` too)."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the canary did over one interval (the window since the last analysis or step)."""

    answered: int
    errors: int
    gate_values: tuple[float, ...]
    """The measured value of each of the plan's gates, in its order (anything when ``answered`` is 0)."""
    gate_samples: tuple[int, ...] = ()
    """The answers each gate's value was measured over, in the same order; ``answered`` for any
    left out (a latency quantile's are the answers whose latency was recorded)."""
    comparison: Comparison | None = None
    """None when there is nothing to compare: a side answered fewer than ``min_samples``, or
    the stable environment had no weight in the window."""


Event = Start | PauseOver | Approve | Hold | Resume | Abort | Analysis


# -- actions --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SetWeight:
    """The canary's weight, in percent; the router shares the rest among the others as before."""

    weight: float


@dataclasses.dataclass(frozen=True)
class StartWindow:
    """The next analysis measures from now."""


@dataclasses.dataclass(frozen=True)
class ScheduleAnalysis:
    after_s: float


@dataclasses.dataclass(frozen=True)
class SchedulePauseEnd:
    step: int
    after_s: float


@dataclasses.dataclass(frozen=True)
class RecordAnalysis:
    """Count an analysis by verdict (``edge_rollout_checks_total``)."""

    verdict: Verdict


@dataclasses.dataclass(frozen=True)
class Log:
    """An entry of the rollout's history; the controller adds the time and the canary's weight."""

    event: Verdict | Milestone
    detail: str
    checks: tuple[Check, ...] = ()
    """An analysis's criteria, each with its measured value, sample size and limit."""


@dataclasses.dataclass(frozen=True)
class Promote:
    """The stable environment takes the canary's version and all the traffic."""


@dataclasses.dataclass(frozen=True)
class Rollback:
    """The canary's weight goes to 0."""

    why: str
    checks: tuple[Check, ...] = ()
    """The sequential test's, when it decided the rollback."""


Action = SetWeight | StartWindow | ScheduleAnalysis | SchedulePauseEnd | RecordAnalysis | Log | Promote | Rollback


# -- the transition function ----------------------------------------------------------------------
def step(state: RolloutState, event: Event) -> tuple[RolloutState, list[Action]]:
    """The state after ``event`` and what to do about it, in order."""
    if isinstance(event, Start):
        if state.phase is Phase.PAUSED and state.held_from is Phase.PENDING:
            return dataclasses.replace(state, start_missed=True), []
        if state.phase is not Phase.PENDING:
            return state, []
        plan = state.plan
        weights = ", ".join(f"{s.weight:g}%" for s in plan.steps)
        compared = "" if plan.compare is None else f"; {plan.compare.shown()}"
        started = Log(Milestone.START, f"{len(plan.steps)} steps: {weights}, every {plan.interval_label}{compared}")
        state, actions = _enter(dataclasses.replace(state, phase=Phase.PROGRESSING), 0)
        return state, [started, *actions]
    if isinstance(event, PauseOver):
        if state.phase is Phase.PAUSED:  # the step's pause is over; the operator's is not
            return dataclasses.replace(state, paused_for=event.step), []
        if state.phase is not Phase.WAITING:
            return state, []
        return _enter(dataclasses.replace(state, paused_for=event.step), event.step)
    if isinstance(event, Approve):
        return _approve(state)
    if isinstance(event, Hold):
        if state.ended or state.phase is Phase.PAUSED:
            return state, []
        return dataclasses.replace(state, phase=Phase.PAUSED, held_from=state.phase), [Log(Milestone.PAUSED, "by the operator")]
    if isinstance(event, Resume):
        return _resume(state)
    if isinstance(event, Abort):
        if state.ended:
            return state, []
        return _roll_back(state, event.why, [])
    return _analyse(state, event)


def _resume(state: RolloutState) -> tuple[RolloutState, list[Action]]:
    """Back where the pause found it: a pending rollout waits for its start, a progressing one
    analyses its step afresh (at the step's weight again), a waiting one goes on once its step's
    pause is over and an approval, if needed, is given (either may have come meanwhile)."""
    if state.phase is not Phase.PAUSED or state.held_from is None:
        return state, []
    was, missed = state.held_from, state.start_missed
    state = dataclasses.replace(state, phase=was, held_from=None, start_missed=False)
    resumed = Log(Milestone.RESUMED, "by the operator")
    if missed:
        state, actions = step(state, Start())
        return state, [resumed, *actions]
    if was is Phase.PROGRESSING:
        weight = state.plan.steps[state.step].weight
        return state, [resumed, SetWeight(weight), StartWindow(), ScheduleAnalysis(state.plan.interval_s)]
    if was is Phase.WAITING:
        following = state.awaiting if state.awaiting >= 0 else state.step + 1
        target = state.plan.steps[following]
        pause_over = target.pause_s is None or state.paused_for == following
        if pause_over and (state.awaiting < 0 or state.approvals):
            state, actions = _enter(state, following)
            return state, [resumed, *actions]
        if state.step >= 0:  # still waiting, at the last step's weight
            return state, [resumed, SetWeight(state.plan.steps[state.step].weight)]
    return state, [resumed]


def _enter(state: RolloutState, index: int) -> tuple[RolloutState, list[Action]]:
    """Move to step ``index`` once its pause and approval are behind it."""
    target = state.plan.steps[index]
    if target.pause_s is not None and state.paused_for != index:
        waiting = dataclasses.replace(state, phase=Phase.WAITING)
        return waiting, [Log(Milestone.WAITING, f"pause of {target.pause_label} before {target.weight:g}%"), SchedulePauseEnd(index, target.pause_s)]
    approvals = state.approvals
    if target.manual:
        if not approvals:
            waiting = dataclasses.replace(state, phase=Phase.WAITING, awaiting=index)
            return waiting, [Log(Milestone.WAITING, f"approval before {target.weight:g}%")]
        approvals -= 1
    moved = dataclasses.replace(state, phase=Phase.PROGRESSING, step=index, approvals=approvals, awaiting=-1)
    shown = Log(Milestone.STEP, f"step {index + 1} of {len(state.plan.steps)}")
    return moved, [SetWeight(target.weight), StartWindow(), shown, ScheduleAnalysis(state.plan.interval_s)]


def _approve(state: RolloutState) -> tuple[RolloutState, list[Action]]:
    """An approval resumes a waiting manual step, or is kept for the next one (even after the end:
    it is harmless there, and an operator's early approval must not be lost)."""
    state = dataclasses.replace(state, approvals=state.approvals + 1)
    if state.awaiting < 0 or state.phase is Phase.PAUSED:  # a paused rollout uses it when resumed
        return state, []
    state, actions = _enter(state, state.awaiting)
    return state, [Log(Milestone.APPROVED, ""), *actions]


def _analyse(state: RolloutState, window: Analysis) -> tuple[RolloutState, list[Action]]:
    if state.phase is not Phase.PROGRESSING:
        return state, []
    plan = state.plan
    actions: list[Action] = []
    verdict: tuple[Verdict, str, tuple[Check, ...]] | None = None
    if plan.sequential is not None and not state.sprt_settled:
        state, verdict, settled = _sprt(state, plan.sequential, window)
        if settled:
            actions.append(settled)
    if verdict is None:
        *verdict, compared = _judge(plan, window, state.comparisons)
        if compared:
            state = dataclasses.replace(state, comparisons=state.comparisons + 1)
    kind, detail, checks = verdict
    actions.append(RecordAnalysis(kind))
    if kind is Verdict.ROLLBACK:
        return _roll_back(state, detail, actions, checks)
    actions.append(Log(kind, detail, checks))
    if kind is Verdict.PASS:
        if state.step + 1 < len(plan.steps):
            state, entered = _enter(state, state.step + 1)
            return state, actions + entered
        return dataclasses.replace(state, phase=Phase.PROMOTED), [*actions, Promote()]
    if kind in (Verdict.FAIL, Verdict.NO_DATA):
        state = dataclasses.replace(state, failures=state.failures + 1)
        if state.failures >= plan.failure_limit:
            return _roll_back(state, f"{state.failures} failed analyses (limit {plan.failure_limit})", actions)
    return state, [*actions, ScheduleAnalysis(plan.interval_s)]


def _sprt(state: RolloutState, test: SequentialTest, window: Analysis) -> tuple[RolloutState, tuple[Verdict, str, tuple[Check, ...]] | None, Log | None]:
    """The test over this window's answers too: a rollback verdict, a settled note, or neither."""
    p0, p1 = test.p0, test.p1
    llr = state.llr + window.errors * math.log(p1 / p0) + (window.answered - window.errors) * math.log((1 - p1) / (1 - p0))
    upper = math.log((1 - test.beta) / test.alpha)
    lower = math.log(test.beta / (1 - test.alpha))
    state = dataclasses.replace(state, llr=llr, sprt_answers=state.sprt_answers + window.answered)
    if llr >= upper:
        check = Check("log-likelihood ratio", round(llr, 6), "<", round(upper, 6), state.sprt_answers, False,
                      note=f"sequential test of error ratio {p0:.3%} against {p1:.3%}")
        return state, (Verdict.ROLLBACK, f"sequential test: error ratio nearer {p1:.3%} than {p0:.3%} ({check.shown()})", (check,)), None
    if llr <= lower:
        settled = Log(Milestone.SETTLED, f"sequential test: error ratio nearer {p0:.3%} (log-likelihood ratio {llr:.2f} <= {lower:.2f} "
                                         f"over {state.sprt_answers:,} answers)")
        return dataclasses.replace(state, sprt_settled=True), None, settled
    return state, None, None


def _judge(plan: Plan, window: Analysis, comparisons: int) -> tuple[Verdict, str, tuple[Check, ...], bool]:
    """No data, or the gates and the comparison (the rollout's ``comparisons``-th) over the
    window, each as a ``Check``; and whether a comparison was judged (it spends its level)."""
    needed = max(plan.min_requests, 1)
    enough = Check(ANSWERS, window.answered, ">=", needed, window.answered, window.answered >= needed)
    if not enough.passed:
        verdict = {NoData.FAIL: Verdict.NO_DATA, NoData.PASS: Verdict.PASS, NoData.HOLD: Verdict.HOLD}[plan.no_data]
        return verdict, f"no data: {enough.shown()}", (enough,), False
    checks = [enough] if plan.min_requests > 1 else []
    samples = window.gate_samples or (window.answered,) * len(plan.gates)
    for gate, value, count in zip(plan.gates, window.gate_values, samples, strict=True):
        checks.append(Check(gate.measure, value, gate.op, gate.value, count, gate.holds(value), gate.unit))
    c, limits = window.comparison, plan.compare
    compared = limits is not None and c is not None
    if limits is not None and c is not None:
        level = limits.level(comparisons)
        slower = c.p_value < level and c.median_shift_s > limits.min_shift_s
        which = "" if limits.levels is None else f", comparison {comparisons + 1} of {len(limits.levels)}"
        checks.append(Check(f"Mann-Whitney p against {plan.stable}", float(f"{c.p_value:.6g}"), ">=", float(f"{level:.6g}"), c.samples, not slower,
                            note=f"median {'+' if c.median_shift_s >= 0 else '-'}{format_duration(abs(c.median_shift_s))} "
                                 f"(fails only beyond +{format_duration(limits.min_shift_s)}){which}"))
    failed = [check.shown() for check in checks if not check.passed]
    if failed:
        return Verdict.FAIL, "; ".join(failed), tuple(checks), compared
    passed = f"{window.answered} canary answers, {window.errors} errors"
    return Verdict.PASS, "; ".join([passed, *(check.shown() for check in checks if check is not enough)]), tuple(checks), compared


def _roll_back(state: RolloutState, why: str, actions: list[Action], checks: tuple[Check, ...] = ()) -> tuple[RolloutState, list[Action]]:
    return dataclasses.replace(state, phase=Phase.ROLLED_BACK), [*actions, Rollback(why, checks)]
