"""The scenario's timeline: faults, deploys, weight changes and promotions at their times.

Each event is a clock callback that changes the running topology the way an operator (or an
incident) would: it touches actors and routers only through the few methods they offer for it
(``set_weights``, ``new_version``, ``adopt``, ``rollback``, ``go_cold``, ``down``, ``faults``), and
records what it did, so the report tells the story next to its consequences. Every change of what
an environment runs (``set``, ``deploy``, ``promote``) is a new version of it; ``rollback`` serves
an earlier one again. ``edge check`` replays the numbering (``checks.check_timeline_versions``), so
a refusal here ("refused: ...", in the event's detail) only happens when a rollout's promotion,
which the check cannot place in time, took the number first.
"""

from __future__ import annotations

from typing import Any

import msgspec

from edge.engine.behaviour import change_behaviour
from edge.engine.topology import Topology
from edge.platform.clock import ModelClock
from edge.platform.versions import VersionError
from edge.scenario.schema import Scenario, TimelineEvent
from edge.scenario.values import EnvironmentKey


class TimelineEntry(msgspec.Struct):
    """What a timeline event did, for the report."""

    at_s: float
    action: str
    target: str
    detail: str


def schedule_timeline(spec: Scenario, topology: Topology, clock: ModelClock, log: list[TimelineEntry]) -> None:
    """Set every timeline event of ``spec`` to happen at its time (from now)."""
    for event in spec.timeline:
        clock.call_later(event.at.seconds, _apply, event, topology, clock, log)


def _apply(event: TimelineEvent, topology: Topology, clock: ModelClock, log: list[TimelineEntry]) -> None:
    detail = _ACTIONS[event.action](event, topology, clock)
    log.append(TimelineEntry(at_s=round(clock.now(), 9), action=event.action, target=str(event.target), detail=detail))


def _set(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    actor = topology.environments[event.target.key]
    changed = change_behaviour(actor, event)
    if not changed:
        return "no change"
    version = actor.new_version(event.message or f"set {changed}")
    return f"version {version.number}; {changed}"


def _crash(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    actor = topology.environments[event.target.key]
    actor.down = True

    def restart() -> None:
        actor.down = False
        actor.go_cold()

    assert event.duration is not None  # a crash has one (TimelineEvent)
    length = event.duration.seconds
    clock.call_later(length, restart)
    return f"down for {event.duration}, then restarts cold"


def _cold(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    topology.environments[event.target.key].go_cold()
    return "every slot cold"


def _weights(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    weights = {name: float(w) for name, w in event.weights.items()}
    topology.routers[event.target.service].set_weights(weights)
    return ", ".join(f"{name} {w:g}%" for name, w in weights.items())


def _deploy(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    actor = topology.environments[event.target.key]
    try:
        actor.history.next_number(event.version)
    except VersionError as exc:
        return f"refused: {exc}"
    behaviour = change_behaviour(actor, event)
    version = actor.new_version(event.message or "deploy", number=event.version, tags={**actor.tags, **event.tags}, vars=event.vars)
    parts = [f"version {version.number}"]
    parts += [f"{k}={v}" for k, v in event.tags.items()]
    parts += [f"vars {', '.join(sorted(event.vars))}"] if event.vars else []
    return "; ".join(parts + ([behaviour] if behaviour else []))


def _promote(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    service = event.target.service
    source = topology.environments[event.target.key]
    target = topology.environments[EnvironmentKey(event.target.service, event.to)]
    version = target.adopt(source)
    router = topology.routers.get(service)
    if router is not None:
        router.set_weights({name: (100.0 if name == event.to else 0.0) for name in router.targets})
    return f"{event.to} now runs version {version.number} ({version.source}) and takes all traffic"


def _rollback(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    actor = topology.environments[event.target.key]
    before = actor.version
    try:
        number = actor.rollback(event.version, event.message)
    except VersionError as exc:
        return f"refused: {exc}"
    return f"version {number} serves again (rollback from v{before})"


def _approve(event: TimelineEvent, topology: Topology, clock: ModelClock) -> str:
    return topology.rollouts[event.target.service].approve()


_ACTIONS: dict[str, Any] = {
    "set": _set, "crash": _crash, "cold": _cold, "weights": _weights, "deploy": _deploy, "promote": _promote, "rollback": _rollback,
    "approve": _approve,
}
