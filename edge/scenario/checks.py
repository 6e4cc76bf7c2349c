"""The rules of a scenario that span tables, one named check each, run in order after decoding.

A table's own rules are its Struct's ``__post_init__`` (``edge.scenario.schema``); these need the
whole scenario: does a binding name a service, does a split name its environments, does a secret
reference resolve. They read what environments inherit from the resolved scenario
(``loaded.resolved``), as the engine does, so the two cannot disagree. Each check raises a ``ConfigError`` with the path of the first offender. The
order matters only for which of several errors is reported: service names come first, since the
others look services up by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from edge.platform.routes import RoutePattern
from edge.platform.versions import Version, VersionError, VersionHistory
from edge.platform.workers import WorkerLoadError, read_worker
from edge.scenario.arrivals import profile_of
from edge.scenario.errors import ConfigError, ConfigErrors
from edge.scenario.resolved import LoadedScenario, ResolvedEnvironment, environments_of
from edge.scenario.schema import Scenario, Service, TimelineEvent, group_name, threshold_rules, tuned_service
from edge.scenario.values import GATE_SUBJECT, EnvironmentKey


def _services(spec: Scenario) -> dict[str, Service]:
    return {service.name: service for service in spec.services}


def _environment_of(service: Service, name: str) -> str:
    return f"expected an environment of {service.name!r} ({', '.join(environments_of(service))}), got {name!r}"


def check_service_names(loaded: LoadedScenario) -> None:
    """At least one service, and no name twice."""
    seen: set[str] = set()
    for i, service in enumerate(loaded.spec.services):
        if service.name in seen:
            raise ConfigError(loaded.file, f"services[{i}].name", f"expected a unique service name, {service.name!r} is defined twice")
        seen.add(service.name)
    if not seen:
        raise ConfigError(loaded.file, "services", "expected at least one service")


def _environment_path(service: Service, index: int, env_name: str) -> str:
    """Where an environment's settings are: its own table, or the service's when it lists none."""
    return f"services[{index}].environments.{env_name}" if service.environments else f"services[{index}]"


def check_binding_targets(loaded: LoadedScenario) -> None:
    """Every binding names a service, and an environment of it when pinned."""
    services = _services(loaded.spec)
    for i, service in enumerate(loaded.spec.services):
        for env_name, env in environments_of(service).items():
            for binding, target in loaded.resolved.services[service.name].environments[env_name].bindings.items():
                where = f"{_environment_path(service, i, env_name)}.bindings.{binding}" if binding in env.bindings else f"services[{i}].bindings.{binding}"
                if target.service not in services:
                    raise ConfigError(loaded.file, where, f"expected the name of a service, got {target.raw!r} (services: {', '.join(services)})")
                target_service = services[target.service]
                if target.environment is not None and target.environment not in environments_of(target_service):
                    known = ", ".join(environments_of(target_service))
                    raise ConfigError(loaded.file, where, f"expected an environment of {target.service!r} ({known}), got {target.environment!r}")


def check_worker_modules(loaded: LoadedScenario) -> None:
    """Every environment runs something, and its worker module reads as a worker, without running
    it (``read_worker``); a module outside the scenario's folder is a warning: checking a scenario
    someone sent must not run code from elsewhere on the machine unnoticed."""
    base = Path(loaded.base_dir).resolve()
    # Each module named is read and resolved once, however many environments run it: 10,000
    # services sharing one file spent 2.7 s of a 3.9 s load reading and parsing it 10,000 times.
    read: dict[str, tuple[WorkerLoadError | None, bool]] = {}  # as named -> (why it is refused, inside the folder)
    for service in loaded.resolved.services.values():
        for env in service.environments.values():
            if env.runs == "nothing":
                raise ConfigError(loaded.file, _environment_path(loaded.spec.services[service.index], service.index, env.name),
                                  "expected `worker` (a Python module), `model` (synthetic behaviour) or `gateway`")
            worker = env.worker
            if worker is None:
                continue
            where = f"services[{service.index}].{env.worker_field}"
            if worker not in read:
                refused = None
                try:
                    read_worker(Path(loaded.base_dir) / worker)
                except WorkerLoadError as exc:
                    refused = exc
                read[worker] = (refused, (base / worker).resolve().is_relative_to(base))
            refused, inside = read[worker]
            if refused is not None:
                raise ConfigError(loaded.file, where, str(refused)) from None
            if not inside:
                loaded.warnings.append(f"{loaded.file}: {where}: {worker!r} is outside the scenario's folder; `edge run` and `edge serve` will run it")


def _rpc_methods(loaded: LoadedScenario, env: ResolvedEnvironment, cache: dict[str, list[str]]) -> list[str] | None:
    """The RPC methods an environment's worker has, read from its source; None when it runs no
    code (a model, a gateway)."""
    if env.worker is None:
        return None
    if env.worker not in cache:
        cache[env.worker] = read_worker(Path(loaded.base_dir) / env.worker)
    return cache[env.worker]


def check_gateways(loaded: LoadedScenario) -> None:
    """Every problem of every gateway table at once: its own (``Gateway.problems``), a gateway
    service that also names code or a model, an alias for a binding the environment does not have,
    a function the bound worker does not define."""
    services = _services(loaded.spec)
    problems: list[tuple[str, str]] = []
    methods_of: dict[str, list[str]] = {}
    for i, service in enumerate(loaded.spec.services):
        envs = environments_of(service)
        tables = [(f"services[{i}]", service.gateway)] + [(f"services[{i}].environments.{n}", e.gateway) for n, e in envs.items()]
        if all(gateway is None for _, gateway in tables):
            continue
        for at, table in [(f"services[{i}]", service)] + [(f"services[{i}].environments.{n}", e) for n, e in envs.items()]:
            for field in ("worker", "model"):
                if getattr(table, field) is not None:
                    problems.append((f"{at}.{field}", "expected no code or model in a gateway service: the platform serves every environment "
                                     "from its `gateway` table"))
        for at, gateway in tables:
            if gateway is None:
                continue
            problems.extend((f"{at}.gateway.{path}", expected) for path, expected in gateway.problems)
        for env_name, env in envs.items():
            resolved = loaded.resolved.services[service.name].environments[env_name]
            gateway = resolved.gateway
            if gateway is None:
                problems.append((_environment_path(service, i, env_name), "expected a `gateway` table, as the service's other environments"))
                continue
            at = f"{_environment_path(service, i, env_name) if env.gateway is not None else f'services[{i}]'}.gateway"
            bindings = resolved.bindings
            owner = str(resolved.key)
            for a, (alias, binding) in enumerate(gateway.aliases.items()):
                if binding not in bindings:
                    problems.append((f"{at}.serviceBindings[{a}].binding", f"expected a binding of {owner} "
                                     f"({', '.join(bindings) or 'it has none'}), got {binding!r}"))
            for index, route in gateway.routes:
                for hook, call in route.calls():
                    target = bindings.get(gateway.aliases[call.alias])
                    if target is None or target.service not in services:
                        continue  # reported above, or by check_binding_targets
                    bound = loaded.resolved.services[target.service]
                    reached = [target.environment] if target.environment is not None else list(bound.environments)
                    for name in reached:
                        methods = _rpc_methods(loaded, bound.environments[name], methods_of)
                        where = f"{at}.paths[{index}].{hook}.function"
                        if methods is None:
                            problems.append((where, f"expected a code worker with RPC methods behind {call.alias!r}, "
                                             f"{bound.name}@{name} runs none (a synthetic model or a gateway)"))
                        elif call.function not in methods:
                            problems.append((where, f"expected an RPC method of {bound.name}@{name} ({', '.join(methods) or 'it has none'}), "
                                             f"got {call.function!r}"))
    if problems:
        raise ConfigErrors(loaded.file, list(dict.fromkeys(problems)))


def check_isolates(loaded: LoadedScenario) -> None:
    """``max_isolates`` only where a cold start makes isolates count: silently ignored, it would
    mislead."""
    for i, service in enumerate(loaded.spec.services):
        for env_name, env in environments_of(service).items():
            resolved = loaded.resolved.services[service.name].environments[env_name]
            if resolved.max_isolates is not None and resolved.cold_start is None:
                where = f"{_environment_path(service, i, env_name)}.max_isolates" if env.max_isolates is not None else f"services[{i}].max_isolates"
                raise ConfigError(loaded.file, where, f"expected a cold_start for {resolved.key} as well: without one no call waits for an isolate, so max_isolates would change nothing")


def check_split_environments(loaded: LoadedScenario) -> None:
    """A split's weights and its retry target name environments of the service."""
    for i, service in enumerate(loaded.spec.services):
        split, envs = service.split, environments_of(service)
        if split is None:
            continue
        for env_name in split.weights:
            if env_name not in envs:
                raise ConfigError(loaded.file, f"services[{i}].split.weights.{env_name}", _environment_of(service, env_name))
        if split.retry is not None and split.retry.to not in envs:
            raise ConfigError(loaded.file, f"services[{i}].split.retry.to", _environment_of(service, split.retry.to))


def check_rollout_environments(loaded: LoadedScenario) -> None:
    """A rollout moves the weights of a split service, from one of its environments to another."""
    for i, service in enumerate(loaded.spec.services):
        rollout, envs = service.rollout, environments_of(service)
        if rollout is None:
            continue
        if service.split is None or len(envs) < 2:
            raise ConfigError(loaded.file, f"services[{i}].rollout", "expected a split service (environments and `split`): the rollout moves its weights")
        for role in ("canary", "stable"):
            name = getattr(rollout, role)
            if name not in envs:
                raise ConfigError(loaded.file, f"services[{i}].rollout.{role}", _environment_of(service, name))
        if rollout.canary == rollout.stable:
            raise ConfigError(loaded.file, f"services[{i}].rollout.stable", f"expected an environment other than the canary, got {rollout.stable!r} for both")
        canary = str(EnvironmentKey(service.name, rollout.canary))
        for j, gate in enumerate(rollout.gates):
            # A gate is judged on the canary's interval: a line naming another subject would be read
            # as if it named the canary, silently.
            if gate.subject not in (GATE_SUBJECT, canary):
                raise ConfigError(loaded.file, f"services[{i}].rollout.gates[{j}]",
                                  f"expected a gate on the canary ({canary}, or no `of`: a gate is judged on the canary's "
                                  f"last interval), got one of {gate.subject}")


def check_routes(loaded: LoadedScenario) -> None:
    """No route pattern leads to two places (two services, a service and one of its environments,
    two environments); a generated preview hostname counts as its environment's route. Overlapping
    patterns are fine: the most specific wins."""
    claimed: dict[tuple[str, bool, str, bool], tuple[str, str]] = {}  # pattern -> (owner, how it is known)

    def claim(pattern: RoutePattern, owner: str, where: str, known_as: str) -> None:
        key = (pattern.host, pattern.wildcard_host, pattern.path, pattern.wildcard_path)
        first_owner, first_known_as = claimed.setdefault(key, (owner, known_as))
        if first_owner != owner:
            raise ConfigError(loaded.file, where, f"expected a route no other service or environment has, {str(pattern)!r} "
                              f"is already {first_known_as}")

    for i, service in enumerate(loaded.spec.services):
        for env_name, env in loaded.resolved.services[service.name].environments.items():
            if env.preview is not None:  # none in a private service
                owner = str(env.key)
                claim(env.preview, owner, _environment_path(service, i, env_name), f"the preview hostname of {owner}")
    for i, service in enumerate(loaded.spec.services):
        for r, pattern in enumerate(service.routes):
            where = f"services[{i}].routes[{r}]"
            claim(pattern, service.name, where, f"a route of {service.name} ({where})")
        for env_name, resolved in loaded.resolved.services[service.name].environments.items():
            for r, pattern in enumerate(resolved.own_routes):
                where, owner = f"services[{i}].environments.{env_name}.routes[{r}]", str(resolved.key)
                claim(pattern, owner, where, f"a route of {owner} ({where})")


def check_traffic_groups(loaded: LoadedScenario) -> None:
    """Traffic groups have names of their own, and something public to send to."""
    names: set[str] = set()
    public = any(s.public for s in loaded.resolved.services.values())
    for t, traffic in enumerate(loaded.spec.traffic):
        name = group_name(traffic, t)
        if name in names:
            raise ConfigError(loaded.file, f"traffic[{t}].name", f"expected a name no other traffic group has, got {name!r} again")
        names.add(name)
        if not public:
            raise ConfigError(loaded.file, f"traffic[{t}]", "expected at least one public service (one with `routes`) to send traffic to")


def check_traffic_rates(loaded: LoadedScenario) -> None:
    """No traffic group sends faster than ``[scenario] max_rate``: at its peak (arrivals, stages,
    bursts together), or for a looped replay on average over a pass (its requests, sped up,
    repeated every span and one mean gap)."""
    limit = loaded.spec.scenario.max_rate
    for t, group in enumerate(loaded.spec.traffic):
        if group.replay is not None:
            entries = loaded.replays[t].entries
            if not group.loop or len(entries) < 2:
                continue  # played once: at most the file's requests, however close together
            field, rate = f"traffic[{t}].speed", (len(entries) - 1) * float(group.speed) / entries[-1].at
        elif group.users is not None:
            continue  # closed: a user waits for each answer
        else:
            field, rate = f"traffic[{t}].arrivals", profile_of(group).peak
        if not rate <= limit:
            raise ConfigError(loaded.file, field, f"expected at most {limit:,g} requests per second at the peak "
                                                  f"(`max_rate` under [scenario] raises the limit), got {rate:,.6g}")


def check_secret_refs(loaded: LoadedScenario) -> None:
    """A header's "secret:SERVICE.NAME" names a service that has that secret."""
    services = _services(loaded.spec)
    for t, traffic in enumerate(loaded.spec.traffic):
        for r, template in enumerate(traffic.requests):
            for header, value in template.headers.items():
                if value.secret is None:
                    continue
                service, name = value.secret
                where = f"traffic[{t}].requests[{r}].headers.{header}"
                if service not in services:
                    raise ConfigError(loaded.file, where, f'expected "secret:SERVICE.NAME" naming a service, got service {service!r}')
                if name not in loaded.resolved.services[service].secrets:
                    raise ConfigError(loaded.file, where, f"expected a secret of {service!r}, it has no secret {name!r}")


def check_timeline_targets(loaded: LoadedScenario) -> None:
    """An event's target is a service (and environment) there is, with what its action needs."""
    services = _services(loaded.spec)
    for i, event in enumerate(loaded.spec.timeline):
        where = f"timeline[{i}].target"
        service = services.get(event.target.service)
        if service is None:
            raise ConfigError(loaded.file, where, f"expected a service ({', '.join(services)}), got {event.target.service!r}")
        if event.target.environment is not None and event.target.environment not in environments_of(service):
            raise ConfigError(loaded.file, where, _environment_of(service, event.target.environment))
        if event.action == "approve" and service.rollout is None:
            raise ConfigError(loaded.file, where, f"expected a service with a rollout, {service.name!r} has none")
        if event.action == "weights" and service.split is None:
            raise ConfigError(loaded.file, where, f"expected a service with a split, {service.name!r} has none")
        if event.action == "weights" and len(environments_of(service)) < 2:
            # A split over one environment builds no router (edge.engine.runtime): nothing to reweigh.
            raise ConfigError(loaded.file, where, f"expected a service split over two or more environments, {service.name!r} has one")


def _events(loaded: LoadedScenario, action: str) -> Iterator[tuple[int, TimelineEvent, Service]]:
    """The timeline's ``action`` events, by index, with their service (``check_timeline_targets`` ran)."""
    services = _services(loaded.spec)
    for i, event in enumerate(loaded.spec.timeline):
        if event.action == action:
            yield i, event, services[event.target.service]


def check_timeline_weights(loaded: LoadedScenario) -> None:
    """A ``weights`` event is a whole split of the service's environments."""
    for i, event, service in _events(loaded, "weights"):
        envs = environments_of(service)
        unknown = [name for name in event.weights if name not in envs]
        if unknown:
            raise ConfigError(loaded.file, f"timeline[{i}].weights.{unknown[0]}", f"expected an environment of {service.name!r} ({', '.join(envs)})")
        total = sum(event.weights.values())
        if abs(total - 100) > 1e-9 or any(w < 0 for w in event.weights.values()):
            raise ConfigError(loaded.file, f"timeline[{i}].weights", f"expected weights >= 0 summing to 100 (percent), got {total:g}")


def check_timeline_promotions(loaded: LoadedScenario) -> None:
    """A promotion goes to an environment of the service that runs the same kind of worker."""
    for i, event, service in _events(loaded, "promote"):
        envs = environments_of(service)
        if event.to not in envs:
            raise ConfigError(loaded.file, f"timeline[{i}].to", _environment_of(service, event.to))
        source = event.target.environment
        assert source is not None  # a promotion's target is pinned (TimelineEvent)
        resolved = loaded.resolved.services[service.name].environments
        if (resolved[source].runs == "model") != (resolved[event.to].runs == "model"):
            raise ConfigError(loaded.file, f"timeline[{i}].to", f"expected {event.to!r} and {source!r} to be both code or both synthetic models")


def check_timeline_versions(loaded: LoadedScenario) -> None:
    """Version numbers only grow and a rollback returns to a version there is, replayed in time
    order with the environments' own rules (a rollout's promotion, whose time is not known before
    the run, is not replayed: the timeline event it beats is refused then, in the report)."""
    histories: dict[EnvironmentKey, VersionHistory[None]] = {}

    def history(service: str, env_name: str) -> VersionHistory[None]:
        key = EnvironmentKey(service, env_name)
        if key not in histories:
            first = loaded.resolved.environment(key).version
            histories[key] = VersionHistory(str(key), Version(first, 0.0, "initial", {}), None)
        return histories[key]

    timeline = sorted(enumerate(loaded.spec.timeline), key=lambda item: (item[1].at.seconds, item[0]))
    for i, event in timeline:
        env_name = event.target.environment
        if env_name is None:
            continue
        at = event.at.seconds
        try:
            if event.action == "deploy" or (event.action == "set" and (event.latency, event.cpu, event.errors) != (None, None, None)):
                history(event.target.service, env_name).create(None, at_s=at, message="", tags={}, number=event.version)
            elif event.action == "promote":
                history(event.target.service, event.to).create(None, at_s=at, message="", tags={})
            elif event.action == "rollback":
                history(event.target.service, env_name).rollback(event.version, at_s=at)
        except VersionError as exc:
            raise ConfigError(loaded.file, f"timeline[{i}]" + (".version" if event.version is not None else ""), str(exc)) from None


def check_tuned_service(loaded: LoadedScenario) -> None:
    """``tune`` names (or implies) one service with a rollout."""
    tune = loaded.spec.tune
    if tune is None:
        return
    with_rollout = [s.name for s in loaded.spec.services if s.rollout is not None]
    if not with_rollout:
        raise ConfigError(loaded.file, "tune", "expected a service with a `rollout` to tune")
    if tune.service is None and len(with_rollout) > 1:
        raise ConfigError(loaded.file, "tune.service", f"expected the service to tune, one of {', '.join(with_rollout)}")
    if tune.service is not None and tune.service not in with_rollout:
        raise ConfigError(loaded.file, "tune.service", f"expected a service with a rollout ({', '.join(with_rollout)}), got {tune.service!r}")
    service = tuned_service(loaded.spec)
    assert service.rollout is not None
    canary = loaded.resolved.services[service.name].environments.get(service.rollout.canary)
    if canary is None or canary.runs == "model":  # no canary: check_rollout_environments says so
        return
    for hypothesis in ("bad", "good"):  # a factor scales a model's distribution; code has none
        behaviour = getattr(tune, hypothesis)
        for field in ("latency", "cpu"):
            value = None if behaviour is None else getattr(behaviour, field)
            if value is not None and value.factor is not None:
                raise ConfigError(loaded.file, f"tune.{hypothesis}.{field}", (
                    f'expected a distribution: a factor ("{value.raw}") scales a synthetic model\'s, and '
                    f"{service.name}@{service.rollout.canary} runs code"))
    if tune.grid is not None and tune.grid.kind != "errors":
        raise ConfigError(loaded.file, f"tune.grid.{tune.grid.kind}", (
            f"expected errors: a factor scales a synthetic model's distribution, and {service.name}@{service.rollout.canary} runs code"))


def check_threshold_subjects(loaded: LoadedScenario) -> None:
    """A threshold is on the clients or on a service environment there is."""
    spec = loaded.spec
    known = [str(env.key) for env in loaded.resolved.environments()]
    for i, rule in enumerate(threshold_rules(spec)):
        subject = rule.threshold.subject
        if subject != "clients" and subject not in known:
            listed = ", ".join(known)
            raise ConfigError(loaded.file, f"thresholds[{i}]", f"expected clients or a service environment ({listed}), got {subject!r}")


CHECKS: tuple[Callable[[LoadedScenario], None], ...] = (
    check_service_names,
    check_binding_targets,
    check_worker_modules,
    check_gateways,
    check_isolates,
    check_split_environments,
    check_rollout_environments,
    check_routes,
    check_traffic_groups,
    check_traffic_rates,
    check_secret_refs,
    check_timeline_targets,
    check_timeline_weights,
    check_timeline_promotions,
    check_timeline_versions,
    check_tuned_service,
    check_threshold_subjects,
)


def run_checks(loaded: LoadedScenario) -> None:
    for check in CHECKS:
        check(loaded)
