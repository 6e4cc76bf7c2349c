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
from edge.scenario import config
from edge.platform.clock import ModelClock, random_stream
from edge.platform.cpu import CorePool
from edge.metrics.recorders import RunMetrics
from edge.platform.routes import RouteTable
from edge.platform.workers import ModelWorker, WorkerCode, WorkerLoadError, load_worker

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
        self.routes: RouteTable[tuple[str, Post]] = RouteTable()  # -> (service, where the request goes)
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

    for index, service in enumerate(spec.services):
        for env_name, env in config.environments_of(service).items():
            bindings: dict[str, tuple[str, Post]] = {}
            pending_bindings.append((bindings, {**service.bindings, **env.bindings}))
            secrets = {**service.secrets, **env.secrets}
            model = env.model or (service.model if env.worker is None else None)
            gateway = config.gateway_of(service, env)
            if gateway is not None:
                worker = gateway_worker(gateway)
            elif model is not None:
                worker = ModelWorker(model.cpu.distribution, model.latency.distribution, model.errors.fraction, model.error_status, model.size.distribution)
            else:
                worker = _loaded_worker(loaded, index, service, env_name, env)
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
                max_isolates=env.max_isolates or service.max_isolates,
                live=live,
                tags={**service.tags, **env.tags},
                measure_cpu=meta.measure_cpu,
            )
            topology.environments[actor.key] = actor

        serving = config.serving_environments(service)
        # An override header needs its router even over one environment: a name it does not know is refused there.
        if service.split is not None and (len(config.environments_of(service)) > 1 or service.split.override is not None):
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
            topology.routes.add(pattern, (service.name, topology.entries[service.name]))
        for env_name, patterns in config.environment_routes(meta, service).items():
            for pattern in patterns:
                topology.routes.add(pattern, (service.name, topology.environments[f"{service.name}@{env_name}"].post))

    for bindings, targets in pending_bindings:
        for name, target in targets.items():
            post = topology.entries[target.service] if target.environment is None else topology.environments[f"{target.service}@{target.environment}"].post
            bindings[name] = (target.service, post)
    return topology


def _loaded_worker(loaded: config.LoadedScenario, index: int, service: config.Service, env_name: str, env: config.Environment) -> WorkerCode:
    """The worker module, run (imported) here for the first time: ``edge check`` only reads it, so
    what only running it shows (an import that fails) is a configuration error here, named as
    the check names its problems."""
    try:
        return load_worker(Path(loaded.base_dir) / (env.worker or service.worker))  # type: ignore[operator]
    except WorkerLoadError as exc:
        where = f"services[{index}].environments.{env_name}.worker" if env.worker else f"services[{index}].worker"
        raise config.ConfigError(loaded.file, where, str(exc)) from None


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


def start_actors(topology: Topology, nursery: trio.Nursery) -> Supervisor:
    """Every actor of ``topology`` in ``nursery``, under one supervisor."""
    supervisor = Supervisor(nursery)
    for name, actor in topology.actors():
        supervisor.start(name, actor)
    return supervisor
