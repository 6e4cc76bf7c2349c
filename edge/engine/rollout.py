"""Progressive rollouts: a controller per service moves its router's weights step by step, as
Flagger and Argo Rollouts do, analysing the canary at every interval.

The controller is a chain of clock callbacks, like the timeline: it acts on the topology only
through the router (``set_weight``) and the environments (``adopt`` on promotion). Each interval it
reads what changed in the canary's recorders since the last analysis (counts as differences,
latency from the difference of histogram bins), so each verdict is about that interval alone:

* too few canary answers (``min_requests``) is "no data", which counts as the scenario says:
  a failure (Flagger's choice), a pass, or a hold (analysed again next interval, nothing counted);
* ``gates`` are thresholds on the canary over the interval (``p99 latency < 200ms``);
* ``compare`` is a one-sided Mann-Whitney U test of the canary's latency against the stable
  environment's over the same interval;
* ``sequential`` is Wald's SPRT on the canary's error ratio over the whole rollout: crossing its
  upper bound rolls back at once, crossing the lower one settles that question for good.

A pass moves to the next step (after its ``pause`` or ``manual`` approval, if any); a failure
counts, and ``failure_limit`` of them roll back (canary weight 0). Passing the last step promotes:
the stable environment adopts the canary's version and takes all the traffic.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from edge.scenario import config
from edge.platform.clock import ModelClock
from edge.metrics.recorders import EnvironmentStats, RunMetrics, bins_quantile, bin_mids
from edge.engine.runtime import Topology
from edge.scenario.thresholds import Threshold
from edge.platform.units import format_duration

PHASES = ("pending", "progressing", "waiting", "promoted", "rolled back")


class RolloutEvent(msgspec.Struct):
    at_s: float
    event: str
    """start, step, pass, fail, no_data, hold, settled (the sequential test), waiting, approved,
    rollback, promote."""
    weight: float
    """The canary's weight after the event."""
    detail: str


class RolloutReport(msgspec.Struct):
    canary: str
    stable: str
    phase: str
    """pending, progressing, waiting (a pause or an approval), promoted or rolled back."""
    weight: float
    steps_passed: int
    failures: int
    ended_at_s: float | None
    """When it was promoted or rolled back."""
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


class RolloutController:
    def __init__(self, service: str, rollout: config.Rollout, topology: Topology, clock: ModelClock, metrics: RunMetrics) -> None:
        self.service = service
        self.rollout = rollout
        self.canary = rollout.canary
        self.stable = rollout.stable
        self.router = topology.routers[service]
        self.canary_actor = topology.environments[f"{service}@{rollout.canary}"]
        self.stable_actor = topology.environments[f"{service}@{rollout.stable}"]
        self.clock = clock
        self.metrics = metrics
        self.steps = config.rollout_steps(rollout)
        self.gates = rollout.gates
        self.interval = rollout.interval.seconds
        self.phase = "pending"
        self.step = -1  # index of the step whose weight the canary has
        self.failures = 0
        self.events: list[RolloutEvent] = []
        self.ended_at: float | None = None
        self._approved = 0  # approvals given and not yet used by a manual step
        self._paused_for = -1  # the step whose pause is over
        self._waiting_for = -1  # the manual step waiting for an approval
        self._llr = 0.0  # the SPRT's log-likelihood ratio so far
        self._sprt_settled = False
        self._first: _Reading | None = None  # the canary at the start, for its totals
        self._last: _Reading | None = None
        self._last_stable: np.ndarray | None = None
        self._set_phase("pending")

    # -- the chain of callbacks ---------------------------------------------------------------
    def begin(self) -> None:
        self.clock.call_later(self.rollout.start.seconds, self._start)

    def _start(self) -> None:
        self._first = _Reading(self.metrics.environments[self.canary_actor.key])
        self._log("start", f"{len(self.steps)} steps: {', '.join(f'{s.weight:g}%' for s in self.steps)}, every {self.rollout.interval}")
        self._set_phase("progressing")
        self._enter(0)

    def _enter(self, index: int) -> None:
        """Move to step ``index`` once its pause and approval are behind it."""
        step = self.steps[index]
        if step.pause is not None and self._paused_for != index:
            self._set_phase("waiting")
            self._log("waiting", f"pause of {step.pause} before {step.weight:g}%")
            self.clock.call_later(step.pause.seconds, self._pause_over, index)
            return
        if step.manual:
            if not self._approved:
                self._waiting_for = index
                self._set_phase("waiting")
                self._log("waiting", f"approval before {step.weight:g}%")
                return
            self._approved -= 1
        self._waiting_for = -1
        self._set_phase("progressing")
        self.step = index
        self.router.set_weight(self.canary, float(step.weight))
        self._last = _Reading(self.metrics.environments[self.canary_actor.key])
        self._last_stable = self.metrics.environments[self.stable_actor.key].latency.bins()
        self._log("step", f"step {index + 1} of {len(self.steps)}")
        self.clock.call_later(self.interval, self._analyse)

    def _pause_over(self, index: int) -> None:
        self._paused_for = index
        self._enter(index)

    def approve(self) -> str:
        """A manual gate's approval (timeline ``approve``, or the admin API live)."""
        self._approved += 1
        if self._waiting_for >= 0:
            self._log("approved", "")
            self._enter(self._waiting_for)
            return "approved: the rollout goes on"
        return "approved in advance: the next manual step will not wait"

    def _analyse(self) -> None:
        if self.phase != "progressing":
            return
        verdict, detail = self._verdict()
        self.metrics.rollout_checks[(self.service, verdict)] = self.metrics.rollout_checks.get((self.service, verdict), 0) + 1
        if verdict != "rollback":  # a rollback is logged once, by the ending
            self._log(verdict, detail)
        if verdict == "rollback":
            self._end_with_rollback(detail)
        elif verdict == "pass":
            if self.step + 1 < len(self.steps):
                self._enter(self.step + 1)
            else:
                self._promote()
        elif verdict in ("fail", "no_data"):
            self.failures += 1
            if self.failures >= self.rollout.failure_limit:
                self._end_with_rollback(f"{self.failures} failed analyses (limit {self.rollout.failure_limit})")
            else:
                self.clock.call_later(self.interval, self._analyse)
        else:  # hold
            self.clock.call_later(self.interval, self._analyse)

    # -- one interval's verdict ---------------------------------------------------------------------
    def _verdict(self) -> tuple[str, str]:
        now = _Reading(self.metrics.environments[self.canary_actor.key])
        stable_now = self.metrics.environments[self.stable_actor.key].latency.bins()
        last, stable_last = self._last, self._last_stable
        self._last, self._last_stable = now, stable_now
        assert last is not None and stable_last is not None
        answered, errors = now.answered - last.answered, now.errors - last.errors
        if self.rollout.sequential is not None and not self._sprt_settled:
            decided = self._sprt(answered, errors)
            if decided is not None:
                return decided
        if answered < max(self.rollout.min_requests, 1):
            no_data = self.rollout.no_data
            reason = f"{answered} canary answers (needs {self.rollout.min_requests})"
            return ("no_data" if no_data == "fail" else no_data), reason
        window = {
            "requests": float(answered), "errors": float(errors), "error ratio": errors / answered,
            "shed": float(now.shed - last.shed), "latency": now.latency - last.latency, "queue wait": now.queue_wait - last.queue_wait,
        }
        failed = [gate.text for gate in self.gates if not gate.holds(_value(gate, window))]
        compare = self.rollout.compare
        if compare is not None:
            shown = self._compare(compare, window["latency"], stable_now - stable_last)  # type: ignore[arg-type]
            if shown:
                failed.append(shown)
        if failed:
            return "fail", "; ".join(failed)
        return "pass", f"{answered} canary answers, {errors} errors"

    def _sprt(self, answered: int, errors: int) -> tuple[str, str] | None:
        s = self.rollout.sequential
        assert s is not None
        p0, p1 = s.p0.fraction, s.p1.fraction
        self._llr += errors * math.log(p1 / p0) + (answered - errors) * math.log((1 - p1) / (1 - p0))
        upper = math.log((1 - s.beta) / s.alpha)
        lower = math.log(s.beta / (1 - s.alpha))
        if self._llr >= upper:
            return "rollback", f"sequential test: error ratio nearer {p1:.3%} than {p0:.3%} (log-likelihood ratio {self._llr:.2f} >= {upper:.2f})"
        if self._llr <= lower:
            self._sprt_settled = True
            self._log("settled", f"sequential test: error ratio nearer {p0:.3%} (log-likelihood ratio {self._llr:.2f} <= {lower:.2f})")
        return None

    def _compare(self, compare: config.Compare, canary: np.ndarray, stable: np.ndarray) -> str:
        """The Mann-Whitney gate's failure line, or "" when it passes (or has nothing to compare)."""
        from scipy.stats import mannwhitneyu  # a second's import, paid only by rollouts that compare

        if canary.sum() == 0 or stable.sum() == 0:
            return ""
        mids = bin_mids()
        a, b = np.repeat(mids, canary), np.repeat(mids, stable)
        p = float(mannwhitneyu(a, b, alternative="greater", method="asymptotic").pvalue)
        shift = bins_quantile(canary, 0.5) - bins_quantile(stable, 0.5)
        if p < float(compare.alpha) and shift > compare.min_shift.seconds:
            return f"latency above {self.stable}'s (Mann-Whitney p={p:.2g}, median +{format_duration(shift)})"
        return ""

    # -- endings ----------------------------------------------------------------------------------
    def _end_with_rollback(self, why: str) -> None:
        self.router.set_weight(self.canary, 0.0)
        self.ended_at = self.clock.now()
        self._set_phase("rolled back")
        self._log("rollback", why)

    def _promote(self) -> None:
        self.stable_actor.adopt(self.canary_actor)
        self.router.set_weights({name: (100.0 if name == self.stable else 0.0) for name in self.router.targets})
        self.ended_at = self.clock.now()
        self._set_phase("promoted")
        self._log("promote", f"{self.stable} now runs version {self.stable_actor.version} and takes all traffic")

    # -- records ----------------------------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        for name in PHASES:
            self.metrics.rollout_phase[(self.service, name)] = 1.0 if name == phase else 0.0

    def _log(self, event: str, detail: str) -> None:
        weight = self.router.weights.get(self.canary, 0.0)
        self.events.append(RolloutEvent(at_s=round(self.clock.now(), 9), event=event, weight=weight, detail=detail))

    @property
    def ended(self) -> bool:
        return self.phase in ("promoted", "rolled back")

    def report(self) -> RolloutReport:
        stats = self.metrics.environments[self.canary_actor.key]
        end = _Reading(stats)
        first = self._first or end
        return RolloutReport(
            canary=self.canary, stable=self.stable, phase=self.phase, weight=self.router.weights.get(self.canary, 0.0),
            steps_passed=sum(1 for e in self.events if e.event == "pass"),
            failures=self.failures, ended_at_s=None if self.ended_at is None else round(self.ended_at, 9),
            canary_requests=end.answered - first.answered, canary_errors=end.errors - first.errors, events=list(self.events),
        )


def _value(gate: Threshold, window: dict[str, Any]) -> float:
    value = window[gate.metric]
    if isinstance(value, np.ndarray):  # latency or queue wait bins over the interval
        if gate.stat == "max":
            nonzero = np.flatnonzero(value)
            return float(bin_mids()[nonzero[-1]]) if len(nonzero) else 0.0
        return bins_quantile(value, {"p50": 0.5, "p90": 0.9, "p99": 0.99}[gate.stat])  # type: ignore[index]
    return float(value)


def schedule_rollouts(spec: config.Scenario, topology: Topology, clock: ModelClock, metrics: RunMetrics) -> dict[str, RolloutController]:
    """A controller for every service with a ``rollout``, started at its ``start`` (from now)."""
    controllers = {}
    for service in spec.services:
        if service.rollout is not None:
            controller = controllers[service.name] = RolloutController(service.name, service.rollout, topology, clock, metrics)
            controller.begin()
    topology.rollouts.update(controllers)  # in place: the admin API holds this dict
    return controllers
