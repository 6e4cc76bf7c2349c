"""Assembles a scenario into actors and runs it: in virtual time here, in real time for ``serve``.

``build`` turns a validated scenario into one ``EnvironmentActor`` per service environment and one
``RouterActor`` per split service, resolves every binding to its target's entry point, and lays out
the public routes. ``FrontDoor`` is where top-level requests come in (from simulated traffic or, live,
from the HTTP ingress): it gives each one its CPU account, posts it to the routed service, and records
what the client saw. ``simulate`` runs the whole thing on a ``VirtualClock``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import cachetools
import trio

from actors.environment import EnvironmentActor, Post
from actors.mailbox import Call
from actors.router import Affinity, RetryBudget, RetryPolicy, RouterActor
from actors.supervisor import Supervisor
from edge.scenario import config
from edge.platform.clock import ModelClock, VirtualClock, random_stream, seed_trio_scheduler
from edge.platform.cpu import CorePool, CpuAccount
from edge.platform.errors import ERROR_HEADER, NOT_FOUND, platform_error
from edge.platform.fetch import Request, Response
from edge.metrics.recorders import STATUS_CLASSES, ClientStats, RunMetrics, status_class
from edge.platform.routes import RouteTable
from edge.metrics.series import Series, SeriesRecorder, default_interval
from edge.platform.workers import ModelWorker, load_worker

DEFAULT_CONCURRENCY = 256
DEFAULT_MAILBOX = 1024
DEFAULT_KEEP_WARM = 300.0  # seconds


class Topology:
    """The actors of one run and how to reach them."""

    def __init__(self, cores: CorePool) -> None:
        self.cores = cores
        self.environments: dict[str, EnvironmentActor] = {}
        self.routers: dict[str, RouterActor] = {}
        self.entries: dict[str, Post] = {}  # service -> where its (unpinned) traffic goes
        self.routes: RouteTable[str] = RouteTable()
        self.rollouts: dict[str, Any] = {}  # service -> its rollout controller (edge.engine.rollout)

    def actors(self) -> list[tuple[str, Any]]:
        return [*self.environments.items(), *((f"{s}@router", r) for s, r in self.routers.items())]


def build(loaded: config.LoadedScenario, *, seed: int, clock: ModelClock, metrics: RunMetrics, live: bool = False) -> Topology:
    """The scenario's actors; ``live`` for real time (measured CPU, cancellable calls)."""
    spec = loaded.spec
    meta = spec.scenario
    cores = CorePool(meta.cores, clock)
    topology = Topology(cores)
    pending_bindings: list[tuple[dict[str, tuple[str, Post]], dict[str, config.Target]]] = []

    for service in spec.services:
        for env_name, env in config.environments_of(service).items():
            bindings: dict[str, tuple[str, Post]] = {}
            pending_bindings.append((bindings, {**service.bindings, **env.bindings}))
            secrets = {**service.secrets, **env.secrets}
            model = env.model or (service.model if env.worker is None else None)
            if model is not None:
                worker = ModelWorker(model.cpu.distribution, model.latency.distribution, model.errors.fraction, model.error_status, model.size.distribution)
            else:
                worker = load_worker(Path(loaded.base_dir) / (env.worker or service.worker))  # type: ignore[operator]
            cold_start = env.cold_start if env.cold_start is not None else service.cold_start
            actor = EnvironmentActor(
                service=service.name,
                environment=env_name,
                version=env.version or service.version or 1,
                worker=worker,
                values={**service.vars, **env.vars, **secrets},
                bindings=bindings,
                secrets=list(secrets.values()),
                concurrency=env.concurrency or service.concurrency or DEFAULT_CONCURRENCY,
                mailbox=_first(env.mailbox, service.mailbox, DEFAULT_MAILBOX),
                clock=clock,
                cores=cores,
                rng=random_stream(seed, "environment", service.name, env_name),
                metrics=metrics,
                cold_start=None if cold_start is None else cold_start.distribution,
                keep_warm=_keep_warm(env, service),
                live=live,
            )
            actor.tags = {**service.tags, **env.tags}
            topology.environments[actor.key] = actor

        serving = config.serving_environments(service)
        if service.split is not None and len(config.environments_of(service)) > 1:
            split = service.split
            router = RouterActor(
                service=service.name,
                targets={name: topology.environments[f"{service.name}@{name}"].post for name in config.environments_of(service)},
                weights={k: float(v) for k, v in split.weights.items()},
                retry=None if split.retry is None else _retry_policy(split.retry),
                rng=random_stream(seed, "router", service.name),
                clock=clock,
                metrics=metrics,
                affinity=None if split.affinity is None else Affinity(split.affinity.header, split.affinity.cookie),
                override=split.override,
            )
            topology.routers[service.name] = router
            topology.entries[service.name] = router.post
        else:
            topology.entries[service.name] = topology.environments[f"{service.name}@{serving[0]}"].post
        for pattern in service.routes:
            topology.routes.add(pattern, service.name)

    for bindings, targets in pending_bindings:
        for name, target in targets.items():
            post = topology.entries[target.service] if target.environment is None else topology.environments[f"{target.service}@{target.environment}"].post
            bindings[name] = (target.service, post)
    return topology


def _retry_policy(retry: config.Retry) -> RetryPolicy:
    budget = retry.budget
    return RetryPolicy(
        retry.to, frozenset(retry.methods),
        None if budget is None else RetryBudget(float(budget.ratio), float(budget.min_per_second), budget.window.seconds),
    )


def _keep_warm(env: config.Environment, service: config.Service) -> float:
    keep_warm = env.keep_warm if env.keep_warm is not None else service.keep_warm
    return DEFAULT_KEEP_WARM if keep_warm is None else keep_warm.seconds


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


_WAITING, _ANSWERED, _GAVE_UP = "waiting", "answered", "gave up"  # a top-level call's client side

LIVE_GROUP = "http"
"""The traffic group of requests that came in through the live ingress."""

SETTLE_EVERY = 4096
"""Top-level requests between two ``RunMetrics.settle()`` calls: bounds the histograms' unbinned
values to a few tens of thousands whatever the run's length."""


class FrontDoor:
    """Top-level requests: route by host and path, give each a CPU account, record the outcome."""

    def __init__(self, topology: Topology, meta: config.Meta, clock: ModelClock, metrics: RunMetrics) -> None:
        self.topology = topology
        self.clock = clock
        self.metrics = metrics
        self.cpu_limit = meta.cpu_limit.seconds
        self.max_invocations = meta.max_invocations
        self.inflight = 0
        # Every routed service's timeout counter exists from the start: a dashboard shows 0, not "no data".
        for service in topology.entries:
            metrics.timeouts.setdefault(service, 0)
        self._until_settle = SETTLE_EVERY
        self._drained: trio.Event | None = None
        # URL -> service: parsing and matching every request's URL is a visible share of a hop;
        # simulated traffic repeats a few URLs, live traffic may not, hence a bounded LRU.
        self._routed: cachetools.LRUCache[str, str | None] = cachetools.LRUCache(maxsize=4096)

    def submit(
        self, request: Request, sent_at: float, done: Callable[[Response | None], None] | None = None,
        timeout: float | None = None, client: ClientStats | None = None,
    ) -> Call | None:
        """Send a top-level request; ``sent_at`` is when the client meant to send it; what the
        client saw is recorded in ``client`` (its traffic group's stats; by default, "http").

        Latency counts from ``sent_at``, not from when the model got round to it, so that a stalled
        system shows its stall in the latency it causes (no coordinated omission). A client with a
        ``timeout`` gives up that long after ``sent_at``: the request counts as a timeout then,
        ``done(None)`` is called, and the answer that may come later is recorded for the service
        but not for the client. Returns the call, for the caller to cancel if its client goes
        away (None when no route matched).
        """
        self._until_settle -= 1
        if not self._until_settle:
            self._until_settle = SETTLE_EVERY
            self.metrics.settle()
        if client is None:
            client = self.metrics.group(LIVE_GROUP)
        url = request.url
        try:
            service = self._routed[url]
        except KeyError:
            service = self._routed[url] = self.topology.routes.match(request.host, request.path)
        if service is None:
            self._record_client(client, None, platform_error(NOT_FOUND), sent_at, done)
            return None
        account = CpuAccount(self.cpu_limit, self.max_invocations)
        call = Call(request, account, self._completed, sent_at)
        call.args = [service, done, _WAITING, client]
        self.inflight += 1
        if timeout is not None:
            self.clock.call_later(sent_at + timeout - self.clock.now(), self._give_up, call, timeout)
        immediate = self.topology.entries[service](call)
        if immediate is not None:
            self._completed(call, immediate)
        return call

    def _completed(self, call: Call, response: Response) -> None:
        self.inflight -= 1
        service, done, state, client = call.args
        call.args[2] = _ANSWERED
        self._record_service(call, service, client)
        if call.routed_to is not None:
            self.metrics.count_routed(service, call.routed_to, response.status)
        if state is _WAITING:
            self._record_client(client, service, response, call.posted_at, done)
        if self.inflight == 0 and self._drained is not None:
            self._drained.set()

    def _give_up(self, call: Call, timeout: float) -> None:
        service, done, state, clients = call.args
        if state is not _WAITING:
            return
        call.args[2] = _GAVE_UP
        clients.requests += 1
        clients.timeouts += 1
        clients.latency.observe(timeout)
        self.metrics.timeouts[service] = self.metrics.timeouts.get(service, 0) + 1
        if done is not None:
            done(None)

    def _record_service(self, call: Call, service: str, client: ClientStats) -> None:
        """What the entry service did with a top-level request, whether its client waited or not."""
        metrics = self.metrics
        metrics.histogram(metrics.ingress, (service, call.served_by.environment)).observe(self.clock.now() - call.posted_at)
        account = call.account
        metrics.histogram(metrics.request_cpu, service).observe(account.used)
        if account.exceeded_at is not None:
            client.cpu_limit_exceeded += 1
            svc, _, env = account.exceeded_at.partition("@")
            metrics.environment(svc, env).cpu_limit_exceeded += 1

    def _record_client(self, clients: ClientStats, service: str | None, response: Response, sent_at: float, done: Any) -> None:
        """What the client saw."""
        metrics = self.metrics
        status = response.status
        clients.requests += 1
        cls = status_class(status)
        clients.by_class[cls] += 1
        answers = metrics.answers.get(service or "")
        if answers is None:
            answers = metrics.answers[service or ""] = [0] * len(STATUS_CLASSES)
        answers[cls] += 1
        clients.latency.observe(self.clock.now() - sent_at)
        cause = response.headers.get(ERROR_HEADER) if status >= 400 else None  # platform errors are 4xx/5xx
        if cause is not None:
            if cause == "shed":
                clients.shed += 1
            elif cause == "not-found":
                clients.not_found += 1
        if done is not None:
            done(response)

    async def drained(self, timeout: float) -> bool:
        """Wait (model time) until no top-level request is in flight; False if ``timeout`` ran out."""
        if self.inflight == 0:
            return True
        self._drained = trio.Event()
        with trio.move_on_after(timeout):
            await self._drained.wait()
        return self.inflight == 0


class RunResult:
    def __init__(
        self, loaded: config.LoadedScenario, seed: int, duration: float, simulated: float, metrics: RunMetrics,
        topology: Topology, events: int, undrained: int, timeline: list[Any], series: Series,
        stopped: tuple[float, str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.seed = seed
        self.duration = duration
        self.simulated = simulated
        self.metrics = metrics
        self.topology = topology
        self.events = events
        self.undrained = undrained
        self.timeline = timeline
        self.series = series
        self.stopped = stopped
        """(simulated time, why) when ``stop_when`` ended the traffic early."""


def simulate(
    loaded: config.LoadedScenario,
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
    by default about a hundred points). ``setup`` lets tests and tools reach the built model before
    traffic starts. ``stop_when`` is asked every ``stop_every`` (default: every interval), with
    the run so far: a reason (a string) stops the traffic there; the run then drains and ends as it
    would have at its end.
    """
    from edge.engine.rollout import schedule_rollouts  # the shell drives the runtime, not vice versa
    from edge.engine.timeline import schedule_timeline
    from edge.engine.traffic import start_traffic

    meta = loaded.spec.scenario
    seed = meta.seed if seed is None else seed
    duration = meta.duration.seconds if duration is None else duration
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
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery)
            for name, actor in topology.actors():
                supervisor.start(name, actor)
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
            drained = await front.drained(meta.drain.seconds)
            state["undrained"] = 0 if drained else front.inflight
            state["simulated"] = clock.now()
            recorder.take()  # the drain, and any part of an interval left at the end
            clock.close()
            supervisor.stop()

    seed_trio_scheduler(seed)
    trio.run(main, clock=clock)
    return RunResult(loaded, seed, duration, state["simulated"], metrics, topology, clock.events, state["undrained"], timeline, recorder.series,
                     state.get("stopped"))


def default_scenario_path() -> Path:
    return Path(__file__).parent.parent / "bundled" / "default.toml"

