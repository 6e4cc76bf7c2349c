"""``edge tune --power``: each schedule's operating characteristic, bug size by bug size.

The adaptive run answers for one hypothesis; a power curve answers "how big must a bug be before
this schedule catches it?". Every schedule is replicated at every point of ``tune.grid`` (error
ratios, or latency or CPU factors of the canary's model), each point its own bad canary, and once
under a good canary (its false rollbacks: production's own noise). A fixed number of replications
per point, with replication ``i`` on seed ``seed + i`` at every point and under every schedule
(common random numbers: the curves differ by the bug and the schedule, not by luck, and a point
equals an ``edge tune`` run with that bug as ``bad``). The smallest bug caught is read off the
curve at ``limits.caught``: on the point estimate, and surely (the interval's lower bound).
Every simulation is submitted at once, point by point, and each point's P(caught) is said as soon
as its last replication is read: a power run takes minutes, and says something along the way.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

import msgspec

from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import tuned_service
from edge.tune import schedules
from edge.tune.intervals import Estimate, bounded_mean, proportion
from edge.tune.results import EngineUse
from edge.tune.tuner import Replication, Task, engine_use, run_tasks, schedule_label, time_bounds
from edge.tune.wording import percent


class PowerPoint(msgspec.Struct):
    bug: str
    """As the grid wrote it: "1%", "x1.5"."""
    size: float
    """The error ratio, or the factor."""
    caught: Estimate
    time_to_rollback_s: Estimate


class PowerCurve(msgspec.Struct):
    schedule: str
    points: list[PowerPoint]
    false_rollback: Estimate
    """A good canary (as the stable environment) rolled back by noise."""
    smallest_caught: str | None
    """The smallest bug of the grid caught with probability >= the target, on the point
    estimate (and every larger one too); None if none is."""
    smallest_surely_caught: str | None
    """The same on the interval's lower bound: shown to be caught that often."""


class PowerResult(msgspec.Struct):
    scenario: str
    service: str
    seed: int
    confidence: float
    replications: int
    """Per schedule and point, and under the good canary."""
    kind: str
    """What grows: "errors", "latency" or "cpu"."""
    target: float
    """P(caught) the smallest bug is read at: ``limits.caught``."""
    curves: list[PowerCurve]
    engine: EngineUse


class Progress(Protocol):
    """What ``power`` tells whoever shows its progress (``edge.tune.progress``)."""

    def started(self, description: str, simulations: int) -> None: ...
    def simulation_done(self) -> None: ...
    def said(self, line: str) -> None: ...


def power(loaded: LoadedScenario, *, replications: int | None = None, confidence: float = 0.95, seed: int | None = None,
          executor: Executor | None = None, per_request: bool = False, progress: Progress | None = None) -> PowerResult:
    tune = loaded.spec.tune
    assert tune is not None and tune.grid is not None
    grid = tune.grid
    n = replications or grid.replications
    seed = loaded.spec.scenario.seed if seed is None else seed
    scenario = str(Path(loaded.file).resolve())
    rollouts = schedules.candidates(loaded)
    hypotheses = [f"grid {g}" for g in range(len(grid.bugs))] + ["good"]
    tasks = [Task(scenario, i, h, seed + k, per_request) for h in hypotheses for i in range(len(rollouts)) for k in range(n)]
    if progress is not None:
        progress.said(f"edge tune --power: {len(tasks):,} simulations ({len(rollouts)} schedule(s), {len(grid.bugs)} bugs "
                      f"and a good canary, {n} replications each)")
        progress.started(f"--power: {len(hypotheses)} points", len(tasks))
    done = run_tasks(tasks, executor, None if progress is None else _points_said(progress, grid.bugs, len(rollouts), n))
    target = tune.limits.caught.fraction
    curves = []
    for i, rollout in enumerate(rollouts):
        def of(hypothesis: str):
            return [r for r in done if r.candidate == i and r.hypothesis == hypothesis]

        soonest, _, latest = time_bounds(loaded, rollout)
        rollback_range = (soonest, latest)
        points = []
        for g, (bug, size) in enumerate(zip(grid.bugs, grid.sizes)):
            caught = [r for r in of(f"grid {g}") if r.phase == "rolled back"]
            points.append(PowerPoint(
                bug=bug, size=size, caught=proportion(len(caught), n, confidence),
                time_to_rollback_s=bounded_mean([r.ended_at_s for r in caught if r.ended_at_s is not None], confidence, *rollback_range),
            ))
        curves.append(PowerCurve(
            schedule=schedule_label(loaded, i, rollout), points=points,
            false_rollback=proportion(sum(r.phase == "rolled back" for r in of("good")), n, confidence),
            smallest_caught=_smallest(points, lambda e: e.value, target),
            smallest_surely_caught=_smallest(points, lambda e: e.low, target),
        ))
    return PowerResult(
        scenario=loaded.spec.scenario.name, service=tuned_service(loaded.spec).name, seed=seed, confidence=confidence,
        replications=n, kind=grid.kind, target=target, curves=curves, engine=engine_use(scenario, done),
    )


def _points_said(progress: Progress, bugs: list[str], schedules: int, n: int) -> Callable[[Replication], None]:
    """Counts each replication read, and says a point's P(caught) per schedule (the false
    rollbacks for the good canary) once its last one is."""
    read: list[Replication] = []

    def done(replication: Replication) -> None:
        read.append(replication)
        progress.simulation_done()
        if len(read) % (schedules * n):
            return
        point = len(read) // (schedules * n) - 1
        rolled_back = [sum(r.phase == "rolled back" for r in read[-schedules * n:] if r.candidate == i) / n for i in range(schedules)]
        what = f"bug {bugs[point]} ({point + 1} of {len(bugs)}), caught" if point < len(bugs) else "good canary, rolled back"
        progress.said(f"edge tune --power: {what}: " + ", ".join(f"#{i} {percent(p)}" for i, p in enumerate(rolled_back)))

    return done


def _smallest(points: list[PowerPoint], read, target: float) -> str | None:
    """The first bug from which every larger one is caught at least ``target`` of the time (a
    noisy dip above it would make a single crossing claim too much)."""
    smallest = None
    for point in reversed(points):
        value = read(point.caught)
        if value is None or value < target:
            break
        smallest = point.bug
    return smallest
