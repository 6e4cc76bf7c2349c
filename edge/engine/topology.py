"""Assembly: a validated scenario turned into its actors, and the start-up both drivers share.

``build`` makes one ``EnvironmentActor`` per service environment and one ``RouterActor`` per split
service, resolves every binding to its target's entry point, and lays out the public routes: a service's
lead to its entry point (the split), an environment's (its own and its preview hostname) to that
environment alone.
``start_actors`` puts them in a nursery under a supervisor. The virtual driver (``simulate``) and
the live one (``edge.live.serve``) both go through these, so that what runs is the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from actors.environment import EnvironmentActor, Post
from actors.gateway import gateway_worker
from actors.router import Affinity, RetryBudget, RetryPolicy, RouterActor
from actors.supervisor import Supervisor
from edge.engine.behaviour import change_behaviour
from edge.metrics.recorders import RunMetrics
from edge.platform.clock import ModelClock, random_stream
from edge.platform.cpu import CorePool
from edge.platform.routes import RouteTable
from edge.platform.workers import ModelWorker, WorkerCode, WorkerLoadError, load_worker, release_worker, worker_source
from edge.scenario.errors import ConfigError
from edge.scenario.resolved import LoadedScenario, ResolvedEnvironment, ResolvedService
from edge.scenario.schema import Model, Retry
from edge.scenario.values import EnvironmentKey


class Topology:
    """The actors of one run and how to reach them."""

    def __init__(self, cores: CorePool) -> None:
        self.cores = cores
        self.environments: dict[EnvironmentKey, EnvironmentActor] = {}
        self.routers: dict[str, RouterActor] = {}
        self.entries: dict[str, Post] = {}  # service -> where its (unpinned) traffic goes
        self.routes: RouteTable[tuple[str, Post]] = RouteTable()  # -> (service, where the request goes)
        self.rollouts: dict[str, Any] = {}  # service -> its rollout controller (edge.engine.rollout)
        self.code: list[WorkerCode] = []  # every worker module loaded for this topology
        self.sources: dict[str, tuple[Path, bytes]] = {}  # a worker file named in the scenario -> its text, read once per build

    def release(self) -> None:
        """The run is over: its worker modules leave ``sys.modules`` (``workers.release_worker``)."""
        for code in self.code:
            release_worker(code)

    def actors(self) -> list[tuple[str, Any]]:
        """Every actor by the name its supervisor knows it by ("app@canary", "app@router")."""
        return [*((str(k), a) for k, a in self.environments.items()), *((f"{s}@router", r) for s, r in self.routers.items())]


def build(loaded: LoadedScenario, *, seed: int, clock: ModelClock, metrics: RunMetrics, live: bool = False) -> Topology:
    """The scenario's actors; ``live`` for real time (measured CPU, cancellable calls)."""
    meta = loaded.spec.scenario
    topology = Topology(CorePool(meta.cores, clock))
    resolved = loaded.resolved
    # Filled once every entry point is known: a binding may name a service defined further down.
    bindings: dict[EnvironmentKey, dict[str, tuple[str, Post]]] = {env.key: {} for env in resolved.environments()}
    for service in resolved.services.values():
        for env in service.environments.values():
            topology.environments[env.key] = EnvironmentActor(
                service=service.name,
                environment=env.name,
                version=env.version,
                worker=_worker(loaded, topology, service, env),
                values={**env.vars, **env.secrets},
                bindings=bindings[env.key],
                secrets=list(env.secrets.values()),
                concurrency=env.concurrency,
                mailbox=env.mailbox,
                clock=clock,
                cores=topology.cores,
                rng=random_stream(seed, "environment", service.name, env.name),
                metrics=metrics,
                cold_start=None if env.cold_start is None else env.cold_start.distribution,
                keep_warm=env.keep_warm_s,
                max_isolates=env.max_isolates,
                live=live,
                tags=env.tags,
                measure_cpu=meta.measure_cpu,
            )
            if env.behaviour is not None:
                change_behaviour(topology.environments[env.key], env.behaviour)
        topology.entries[service.name] = _entry(topology, service, seed=seed, clock=clock, metrics=metrics)
        for pattern in service.routes:
            topology.routes.add(pattern, (service.name, topology.entries[service.name]))
        for env in service.environments.values():
            for pattern in env.routes:
                topology.routes.add(pattern, (service.name, topology.environments[env.key].post))

    for env in resolved.environments():
        for name, target in env.bindings.items():
            bindings[env.key][name] = (target.service, topology.entries[target.service] if target.environment is None else topology.environments[target.key].post)
    return topology


def _entry(topology: Topology, service: ResolvedService, *, seed: int, clock: ModelClock, metrics: RunMetrics) -> Post:
    """Where the service's unpinned traffic goes: its router, else its one serving environment."""
    if not service.routed:
        return topology.environments[EnvironmentKey(service.name, service.serving[0])].post
    split = service.split
    assert split is not None
    router = RouterActor(
        service=service.name,
        targets={env.name: topology.environments[env.key].post for env in service.environments.values()},
        weights={k: float(v) for k, v in split.weights.items()},
        retry=None if split.retry is None else _retry_policy(split.retry),
        rng=random_stream(seed, "router", service.name),
        clock=clock,
        metrics=metrics,
        affinity=None if split.affinity is None else Affinity(split.affinity.header, split.affinity.cookie),
        override=split.override,
    )
    topology.routers[service.name] = router
    return router.post


def _worker(loaded: LoadedScenario, topology: Topology, service: ResolvedService, env: ResolvedEnvironment) -> WorkerCode | ModelWorker:
    if env.gateway is not None:
        return gateway_worker(env.gateway)
    if env.model is not None:
        return model_worker(env.model)
    assert env.worker is not None  # the checks refuse an environment that runs nothing
    # The worker module is run (imported) here for the first time: ``edge check`` only reads it,
    # so what only running it shows (an import that fails) is a configuration error here, named
    # as the check names its problems.
    try:
        read = topology.sources.get(env.worker)
        if read is None:
            path = Path(loaded.base_dir) / env.worker
            read = topology.sources[env.worker] = (path, worker_source(path))
        code = load_worker(*read)
    except WorkerLoadError as exc:
        raise ConfigError(loaded.file, f"services[{service.index}].{env.worker_field}", str(exc)) from None
    topology.code.append(code)  # released when the run ends (Topology.release)
    return code


def model_worker(model: Model) -> ModelWorker:
    """A synthetic model's worker: draws its CPU, latency, errors and size per call."""
    return ModelWorker(model.cpu.distribution, model.latency.distribution, model.errors.fraction, model.error_status, model.size.distribution)


def _retry_policy(retry: Retry) -> RetryPolicy:
    budget = retry.budget
    return RetryPolicy(
        retry.to, frozenset(retry.methods),
        None if budget is None else RetryBudget(float(budget.ratio), float(budget.min_per_second), budget.window.seconds),
    )


def start_actors(topology: Topology, nursery: trio.Nursery) -> Supervisor:
    """Every actor of ``topology`` in ``nursery``, under one supervisor."""
    supervisor = Supervisor(nursery)
    for name, actor in topology.actors():
        supervisor.start(name, actor)
    return supervisor
