"""A change of how an environment behaves: a timeline ``set`` or ``deploy``, or ``edge tune``'s
hypothesis for its canary, both made the same way.

A synthetic worker gets a changed copy of its model (a factor, "x3", scales its distribution);
a code worker gets faults injected before its code runs (an extra wait, extra CPU, a share of
calls answered 500), since its code has no distribution to change.
"""

from __future__ import annotations

import copy

from actors.environment import EnvironmentActor, Faults
from edge.platform.distributions import Distribution
from edge.platform.workers import ModelWorker
from edge.scenario.schema import Behaviour, TimelineEvent
from edge.scenario.values import DurationDistribution, ScaledDistribution


def change_behaviour(actor: EnvironmentActor, event: TimelineEvent | Behaviour) -> str:
    """A ``set`` (or a tune hypothesis): the latency, cpu and errors ``event`` gives; what changed, in words."""
    changes = {
        name: value for name, value in (("latency", event.latency), ("cpu", event.cpu), ("errors", event.errors)) if value is not None
    }
    if not changes:
        return ""
    errors = None if event.errors is None else event.errors.fraction
    if isinstance(actor.worker, ModelWorker):
        # A changed copy: calls in flight finish on the model (the version) they began with.
        actor.worker = changed_model(actor.worker, event)
    else:
        latency = None if event.latency is None else _replacing(event.latency, None)
        cpu = None if event.cpu is None else _replacing(event.cpu, None)
        faults = actor.faults or Faults()
        faults.latency = latency if latency is not None else faults.latency
        faults.cpu = cpu if cpu is not None else faults.cpu
        faults.errors = errors if errors is not None else faults.errors
        actor.faults = faults
    return ", ".join(f"{name} {value}" for name, value in changes.items())


def changed_model(worker: ModelWorker, event: TimelineEvent | Behaviour) -> ModelWorker:
    """A copy of ``worker`` with the latency, cpu and errors ``event`` gives (a factor scales)."""
    worker = copy.copy(worker)
    if event.latency is not None:
        worker.latency = _replacing(event.latency, worker.latency)
        factor = event.latency.factor if isinstance(event.latency, ScaledDistribution) else None
        # A logged request time slows with its model ("x3"); a latency written out replaces both.
        worker.logged_scale = None if factor is None or worker.logged_scale is None else worker.logged_scale * factor
    if event.cpu is not None:
        worker.cpu = _replacing(event.cpu, worker.cpu)
    if event.errors is not None:
        worker.errors = event.errors.fraction
    return worker


def _replacing(value: DurationDistribution | ScaledDistribution, current: Distribution | None) -> Distribution:
    """The distribution ``value`` puts in place of ``current``: a factor ("x3") scales it. Code
    has no distribution to scale; ``checks.check_tuned_service`` refuses a factor for it."""
    if isinstance(value, ScaledDistribution):
        assert value.factor is None or current is not None
        return value.applied_to(current)  # type: ignore[arg-type]
    return value.distribution
