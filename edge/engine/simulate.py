"""The virtual-time driver: a scenario's traffic run on a ``VirtualClock``, as fast as it computes."""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
import trio

from edge.scenario.resolved import LoadedScenario
from edge.platform import runs, watchdog
from edge.platform.clock import VirtualClock
from edge.platform.trio_internals import seed_scheduler
from edge.metrics.recorders import RunMetrics
from edge.metrics.series import Series, SeriesRecorder, default_interval
from edge.engine.front_door import FrontDoor
from edge.engine.rollout import RolloutReport, schedule_rollouts
from edge.engine.timeline import schedule_timeline
from edge.engine.topology import Topology, build, start_actors
from edge.engine.traffic import start_traffic
from edge.platform.versions import Deployment, Version
from edge.scenario.values import EnvironmentKey


class EnvironmentOutcome(msgspec.Struct):
    """What one environment ended a run as: the version serving, and how it got there."""

    version: str
    versions: list[Version]
    deployments: list[Deployment]


class RunResult:
    def __init__(
        self, loaded: LoadedScenario, seed: int, duration: float, simulated: float, metrics: RunMetrics,
        topology: Topology, events: int, unanswered: int, timeline: list[Any], series: Series,
        stopped: tuple[float, str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.seed = seed
        self.duration = duration
        self.simulated = simulated
        self.metrics = metrics
        self.topology = topology
        self.events = events
        self.unanswered = unanswered
        self.timeline = timeline
        self.series = series
        self.stopped = stopped
        """(simulated time, why) when ``stop_when`` ended the traffic early."""

    # What the run ended as, read from its actors once, at the first asking (after the run): the
    # report reads these records, never the actors (``topology`` stays for tests and for
    # ``stop_when``, which watches the run as it goes).

    @functools.cached_property
    def environments(self) -> dict[EnvironmentKey, EnvironmentOutcome]:
        return {
            key: EnvironmentOutcome(actor.version, list(actor.history.versions), list(actor.history.deployments))
            for key, actor in self.topology.environments.items()
        }

    @functools.cached_property
    def routed(self) -> dict[str, list[str]]:
        """Per service with a router, the environments it shares traffic between."""
        return {service: list(router.targets) for service, router in self.topology.routers.items()}

    @functools.cached_property
    def rollouts(self) -> dict[str, RolloutReport]:
        return {service: controller.report() for service, controller in self.topology.rollouts.items()}

    @property
    def cores(self) -> int:
        return self.topology.cores.cores

    @property
    def cpu_busy_s(self) -> float:
        """Core-seconds the node's cores spent running workers."""
        return self.topology.cores.busy_seconds


def simulate(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    duration: float | None = None,
    interval: float | None = None,
    setup: Callable[[Topology, FrontDoor, VirtualClock], Any] | None = None,
    stop_when: Callable[[RunResult], str | None] | None = None,
    stop_every: float | None = None,
) -> RunResult:
    """Run the scenario's traffic for ``duration`` simulated seconds on a virtual clock.

    Deterministic: the seed decides every random draw and trio's scheduling order, and nothing reads
    the wall clock. The run is also read every ``interval`` simulated seconds (``RunResult.series``;
    by default the smallest round interval giving at most 120 points). ``setup`` lets tests and tools reach the built model before
    traffic starts. ``stop_when`` is asked every ``stop_every`` (default: every interval), with
    the run so far: a reason (a string) stops the traffic there; the run then drains and ends as it
    would have at its end.

    A run of its own (``runs.new``) from before its actors are built: simulations in other threads
    of the process run beside it without seeing its fibers, secrets or scheduler draws.
    """
    meta = loaded.spec.scenario
    seed = meta.seed if seed is None else seed
    duration = meta.duration.seconds if duration is None else duration
    with _fewer_collections(), runs.new():
        return _simulate(loaded, seed, duration, interval, setup, stop_when, stop_every)


def _simulate(
    loaded: LoadedScenario, seed: int, duration: float, interval: float | None,
    setup: Callable[[Topology, FrontDoor, VirtualClock], Any] | None,
    stop_when: Callable[[RunResult], str | None] | None, stop_every: float | None,
) -> RunResult:
    meta = loaded.spec.scenario
    clock = VirtualClock()
    metrics = RunMetrics()
    topology = build(loaded, seed=seed, clock=clock, metrics=metrics)
    front = FrontDoor(topology, meta, clock, metrics)
    state: dict[str, Any] = {}
    timeline: list[Any] = []  # what the scenario's timeline did, in order
    interval = interval or default_interval(duration)
    recorder = SeriesRecorder(metrics, clock, interval, duration)
    every = stop_every or interval
    stop = trio.CancelScope()

    def so_far() -> RunResult:
        return RunResult(loaded, seed, duration, clock.now(), metrics, topology, clock.events, 0, timeline, recorder.series)

    def check() -> None:
        assert stop_when is not None
        why = stop_when(so_far())
        if why is not None:
            state["stopped"] = (clock.now(), why)
            stop.cancel()
        elif clock.now() + every <= duration:
            clock.call_later(every, check)

    async def main() -> None:
        # Inside trio.run: the watchdog's Ctrl-C handler wraps trio's. Around the whole nursery:
        # while a Ctrl-C unwinds it, timers still fire, and a step that spins must still end.
        step_limit = watchdog.STEP_LIMIT_VIRTUAL if meta.step_limit is None else meta.step_limit.seconds
        with watchdog.armed(step_limit, sigint=True):
            try:
                await run_model()
            finally:
                clock.close()  # an interrupted run fires nothing more while trio winds down

    async def run_model() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = start_actors(topology, nursery)
            if setup is not None:
                setup(topology, front, clock)
            recorder.begin()
            if stop_when is not None:
                clock.call_later(every, check)
            groups = start_traffic(loaded, front, clock, metrics, seed=seed, until=duration)
            schedule_timeline(loaded.spec, topology, clock, timeline)
            schedule_rollouts(loaded.spec, topology, clock, metrics)
            with stop:
                await clock.sleep(duration)
            for group in groups:
                group.stop()
            await front.drained(meta.drain.seconds)
            state["unanswered"] = front.close()
            state["simulated"] = clock.now()
            recorder.take()  # the drain, and any part of an interval left at the end
            clock.close()
            supervisor.stop()

    seed_scheduler(seed)
    try:
        trio.run(main, clock=clock)
    finally:
        topology.release()
    return RunResult(loaded, seed, duration, state["simulated"], metrics, topology, clock.events, state["unanswered"], timeline, recorder.series,
                     state.get("stopped"))


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic collector's thresholds during a run (CPython's defaults: 700, 10, 10)."""


class _Collections:
    """The runs in the process's threads that want fewer collections, and the thresholds before."""

    def __init__(self) -> None:
        self.runs = 0
        self.before = gc.get_threshold()
        self.lock = threading.Lock()


_collections = _Collections()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run with the cyclic collector's generations collected about thirty times less often.

    Why: a run keeps allocating objects that live until its end (slots, their contexts and
    bindings, histograms, series columns), and almost nothing it makes is cyclic garbage: what a
    request allocates is freed by reference counting. With CPython's default thresholds a
    topology of 10,000 services spent a third of its run in collections that found nothing; the
    young generation still bounds any garbage cycles to what tens of thousands of allocations
    leave behind. The thresholds are the process's, so they are put back afterwards, by the last
    of the runs in the process's threads to end (each putting back what it found would leave
    a run's thresholds behind when runs overlap).
    """
    shared = _collections
    with shared.lock:
        if shared.runs == 0:
            shared.before = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
        shared.runs += 1
    try:
        yield
    finally:
        with shared.lock:
            shared.runs -= 1
            if shared.runs == 0:
                gc.set_threshold(*shared.before)


def default_scenario_path() -> Path:
    return Path(__file__).parent.parent / "bundled" / "default.toml"

