"""The resolved scenario: per environment, what it runs and with which settings, worked out once.

A scenario file writes a service's settings once and lets each environment set some again
(``vars``, ``secrets``, ``bindings`` and ``tags`` key by key, the rest whole); a service that lists
no environments has one, "production". Every reader of a scenario needs the result of that
inheritance — the engine to build actors, the checks to refuse what cannot run, ``edge tune`` to
read the stable model, the graph and the reports to describe it — so it is computed here, once
per load, and they read it instead of asking the file questions. Resolution does not validate:
``edge.scenario.checks`` reads it to refuse a binding to an unknown service and the like, so it
accepts what the checks then refuse (a binding's target is kept as written).

``LoadedScenario`` is what ``edge.scenario.load`` returns: the decoded file (``spec``), where it
came from, and its resolution, recomputed whenever the spec is replaced
(``msgspec.structs.replace`` runs ``__post_init__``), so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal, TypeVar

import msgspec

from edge.platform.routes import RoutePattern
from edge.scenario.gateway import Gateway
from edge.scenario.replay import Replay
from edge.scenario.schema import Behaviour, Environment, Meta, Model, Rollout, Scenario, Service, Split
from edge.scenario.values import DurationDistribution, EnvironmentKey, Target

DEFAULT_CONCURRENCY = 256
DEFAULT_MAILBOX = 1024
DEFAULT_KEEP_WARM = 300.0  # seconds


class ResolvedEnvironment(msgspec.Struct, frozen=True):
    """One environment's effective settings: its own where it sets them, else its service's, else
    the platform's defaults."""

    key: EnvironmentKey
    runs: Literal["code", "model", "gateway", "nothing"]
    """What serves its requests; "nothing" only in a scenario the checks refuse."""
    worker: str | None
    """The worker module (relative to the scenario file) when it runs code."""
    worker_field: str
    """Where the file names that module: ``worker`` or ``environments.NAME.worker`` (under the service)."""
    model: Model | None
    gateway: Gateway | None
    version: int
    vars: dict[str, str]
    secrets: dict[str, str]
    bindings: dict[str, Target]
    tags: dict[str, str]
    concurrency: int
    mailbox: int
    cold_start: DurationDistribution | None
    keep_warm_s: float
    max_isolates: int | None
    preview: RoutePattern | None
    """Its generated preview hostname's route; None in a private service (only bindings reach it)."""
    own_routes: list[RoutePattern]
    """The routes the file gives it."""
    behaviour: Behaviour | None = None
    """A change it starts the run with, as a timeline ``set`` at time 0 would make but without a new
    version: what ``edge tune`` lays over a canary for a hypothesis (never from the file)."""

    @property
    def name(self) -> str:
        return self.key.environment

    @property
    def routes(self) -> list[RoutePattern]:
        """Every route that reaches this environment alone, never split: the preview first."""
        return [self.preview, *self.own_routes] if self.preview is not None else self.own_routes


class ResolvedService(msgspec.Struct, frozen=True):
    name: str
    index: int
    """Its place in the file's ``services``, for the paths errors name."""
    environments: dict[str, ResolvedEnvironment]
    serving: list[str]
    """The environments that take the service's own traffic (the others only when pinned)."""
    public: bool
    """Has a route (its own or an environment's); a private one is reached only by bindings."""
    routes: list[RoutePattern]
    """The service's own routes: they lead to its entry point (the split)."""
    split: Split | None
    rollout: Rollout | None
    secrets: dict[str, str]
    """What "secret:SERVICE.NAME" in traffic sends: production's value, else the first
    environment's that defines the name, else the service's."""

    @property
    def routed(self) -> bool:
        """Is its traffic shared by a router? Only with a split over several environments, or an
        override header (which needs the router even over one, to refuse a name it does not know)."""
        return self.split is not None and (len(self.environments) > 1 or self.split.override is not None)


class ResolvedScenario(msgspec.Struct, frozen=True):
    services: dict[str, ResolvedService]
    """By name, in the file's order (a name given twice is the checks' to refuse: the last wins here)."""

    def environments(self) -> Iterator[ResolvedEnvironment]:
        for service in self.services.values():
            yield from service.environments.values()

    def environment(self, key: EnvironmentKey) -> ResolvedEnvironment:
        return self.services[key.service].environments[key.environment]

    def with_environment(self, key: EnvironmentKey, **changes: Any) -> ResolvedScenario:
        """A copy with ``changes`` laid over one environment (``edge tune``'s hypotheses)."""
        service = self.services[key.service]
        environment = msgspec.structs.replace(service.environments[key.environment], **changes)
        environments = {**service.environments, key.environment: environment}
        return ResolvedScenario({**self.services, key.service: msgspec.structs.replace(service, environments=environments)})

    def secret(self, reference: tuple[str, str]) -> str:
        """The value behind "secret:SERVICE.NAME" (the checks refuse a reference to none)."""
        service, name = reference
        return self.services[service].secrets[name]


def environments_of(service: Service) -> dict[str, Environment]:
    """The service's environments as written; a service that lists none has a single "production"."""
    return service.environments or {"production": Environment()}


def preview_host(meta: Meta, service: str, environment: str) -> str:
    """The environment's generated hostname, as Workers Services gave each environment one."""
    return f"{environment}.{service}.{meta.workers_subdomain}.workers.dev".lower()


def resolve(spec: Scenario) -> ResolvedScenario:
    return ResolvedScenario({service.name: _service(spec.scenario, index, service) for index, service in enumerate(spec.services)})


def _service(meta: Meta, index: int, service: Service) -> ResolvedService:
    written = environments_of(service)
    public = bool(service.routes) or any(env.routes for env in written.values())
    environments = {
        name: _environment(meta, service, name, env, public) for name, env in written.items()
    }
    return ResolvedService(
        name=service.name, index=index, environments=environments, serving=_serving(service, written), public=public,
        routes=service.routes, split=service.split, rollout=service.rollout, secrets=_secrets(service, written),
    )


def _environment(meta: Meta, service: Service, name: str, env: Environment, public: bool) -> ResolvedEnvironment:
    # What runs: a gateway (the environment's, else the service's), else a model (the
    # environment's, else the service's unless the environment names its own code), else code.
    gateway = env.gateway if env.gateway is not None else service.gateway
    model = None if gateway is not None else env.model or (service.model if env.worker is None else None)
    worker = None if gateway is not None or model is not None else env.worker or service.worker
    runs: Literal["code", "model", "gateway", "nothing"] = (
        "gateway" if gateway is not None else "model" if model is not None else "code" if worker is not None else "nothing"
    )
    keep_warm = _inherit(env.keep_warm, service.keep_warm)
    return ResolvedEnvironment(
        key=EnvironmentKey(service.name, name),
        runs=runs,
        worker=worker,
        worker_field=f"environments.{name}.worker" if env.worker else "worker",
        model=model,
        gateway=gateway,
        version=_or_default(_inherit(env.version, service.version), 1),
        vars={**service.vars, **env.vars},
        secrets={**service.secrets, **env.secrets},
        bindings={**service.bindings, **env.bindings},
        tags={**service.tags, **env.tags},
        concurrency=_or_default(_inherit(env.concurrency, service.concurrency), DEFAULT_CONCURRENCY),
        mailbox=_or_default(_inherit(env.mailbox, service.mailbox), DEFAULT_MAILBOX),
        cold_start=_inherit(env.cold_start, service.cold_start),
        keep_warm_s=DEFAULT_KEEP_WARM if keep_warm is None else keep_warm.seconds,
        max_isolates=_inherit(env.max_isolates, service.max_isolates),
        preview=RoutePattern.parse(f"{preview_host(meta, service.name, name)}/*") if public else None,
        own_routes=env.routes,
    )


T = TypeVar("T")


def _inherit(own: T | None, services: T | None) -> T | None:
    """The environment's setting if it has one, else the service's: None is unset, while 0 is a
    setting (a mailbox of 0 sheds every call that must wait)."""
    return own if own is not None else services


def _or_default(value: T | None, default: T) -> T:
    return default if value is None else value


def _serving(service: Service, environments: dict[str, Environment]) -> list[str]:
    if service.split is not None:
        return [name for name, weight in service.split.weights.items() if weight > 0] or [next(iter(service.split.weights))]
    return ["production"] if "production" in environments else [next(iter(environments))]


def _secrets(service: Service, environments: dict[str, Environment]) -> dict[str, str]:
    ordered = ([environments["production"]] if "production" in environments else []) + list(environments.values())
    found: dict[str, str] = {}
    for env in ordered:
        for name, value in env.secrets.items():
            found.setdefault(name, value)
    return {**service.secrets, **found}


class LoadedScenario(msgspec.Struct):
    """A validated scenario, where it came from (worker paths are relative to ``base_dir``), and
    its resolution."""

    spec: Scenario
    file: str
    base_dir: str
    replays: dict[int, Replay] = {}
    """Per replayed traffic group (by its index), the file's requests, read at load."""
    candidates: list[Rollout] = []
    """``tune.candidates``, each decoded over the tuned service's rollout (``edge.tune`` has the
    grid tried when the scenario lists none)."""
    warnings: list[str] = []
    """What loading found worth saying but not refusing (a worker outside the scenario's folder):
    each command prints them to stderr."""
    resolved: ResolvedScenario = ResolvedScenario({})
    """Computed from ``spec`` (whatever is passed is replaced); a tool running a derived copy may
    lay changes over it afterwards (``ResolvedScenario.with_environment``)."""

    def __post_init__(self) -> None:
        self.resolved = resolve(self.spec)
