"""Wrangler configuration files (``wrangler.toml``, ``wrangler.json``, ``wrangler.jsonc``) as a scenario.

``edge import`` turns the Workers a team already has into a topology it can simulate at once: each
file is a service, its ``routes`` the service's routes, its ``services`` bindings its bindings, its
``vars`` its vars, its ``[env.NAME]`` sections its environments. Several files form one topology:
a binding whose ``service`` is another imported worker connects to it, and one naming a worker not
among the files becomes a service of its own. What a wrangler file says that edge does not model
(storage, queues, AI, compatibility flags, crons, the JavaScript itself, any key it does not know)
is listed by key name in a comment at the top, never dropped silently. Secret values are not in a
wrangler file and never imported.

Wrangler's rules kept here:

* Bindings and ``vars`` are not inherited by ``[env.NAME]`` (Cloudflare: "Bindings, such as vars or
  kv_namespaces, are not inheritable"); ``route``/``routes``, ``workers_dev`` and ``limits`` are.
  In edge an environment inherits the service's vars and bindings, so a file with environments
  gets them per environment. An ``[env.NAME]``'s own routes become that environment's routes; the
  top level's are the service's, and a route both have stays the service's (a route is one worker's).
* An ``[env.NAME]`` deploys as a worker of its own, named ``env.NAME.name`` or ``NAME-ENV``: a
  binding to that worker name targets the environment (``auth-staging`` → ``auth@staging``), as does
  a binding's ``environment`` (the dashboard's service environments). Edge has no worker per
  environment, so the comment says where bindings to an ``env.NAME.name`` go, and which worker has
  a name two deploy as (a top level's, else the first environment's). A binding twice in one
  environment keeps the last, and says so.
* The top-level configuration is the environment ``production``, unless the file has an
  ``[env.production]``; then it is ``default`` and production is that section.
* A route's ``zone_name``/``zone_id`` is not needed (edge routes by host and path); a
  ``custom_domain`` is its whole host (``shop.example.com`` → ``shop.example.com/*``).
* A worker with no route and ``workers_dev`` not false is served on ``NAME.SUBDOMAIN.workers.dev``;
  the account's subdomain is not in the file, so the route says ``your-subdomain``.

Each service runs a synthetic ``model`` of placeholder figures, marked to be filled in, so that
``edge check`` and ``edge run`` work on the output as it is; a synthetic model does not call its
bindings (they show in ``edge graph``, and carry calls once the service has a ``worker``).

JSON with comments is read with ``json5`` (JSONC is its subset: comments and trailing commas): a
maintained pure-Python parser whose errors give line and column. Stripping comments by hand would
have to tokenize strings, since a var such as ``"https://api.example.com"`` holds ``//``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import tomli_w

from edge.platform.files import InputError, read_input
from edge.platform.routes import RoutePattern, RoutePatternError
from edge.scenario.errors import ConfigError
from edge.scenario.load import convert, loads
from edge.scenario.schema import Service

MAX_FILE_BYTES = 128 * 1024
"""A wrangler file is a few KiB. json5 is pure Python, about 18 µs a byte on the 2-core machine
(210 KB of vars took 3.9 s): this bound keeps the worst case near 2 s."""

PLACEHOLDER_MODEL = {"cpu": "exp(1ms)", "latency": "exp(5ms)"}
TRAFFIC_STUB = "poisson(20/s)"
SUBDOMAIN = "your-subdomain"

NOT_MODELLED = {
    "kv_namespaces": "KV", "d1_databases": "D1", "r2_buckets": "R2", "durable_objects": "Durable Objects",
    "migrations": "Durable Object migrations", "queues": "Queues", "ai": "Workers AI", "vectorize": "Vectorize",
    "hyperdrive": "Hyperdrive", "analytics_engine_datasets": "Analytics Engine", "browser": "Browser Rendering",
    "dispatch_namespaces": "Workers for Platforms", "mtls_certificates": "mTLS certificates", "send_email": "Email",
    "workflows": "Workflows", "pipelines": "Pipelines", "images": "Images", "containers": "Containers",
    "secrets_store_secrets": "Secrets Store (values are never imported)", "tail_consumers": "Tail Workers",
    "version_metadata": "version metadata", "unsafe": "unsafe bindings", "logfwdr": "log forwarding",
    "compatibility_date": "runtime compatibility", "compatibility_flags": "runtime compatibility",
    "triggers": "cron triggers", "main": "the worker's JavaScript/TypeScript (edge runs a Python `worker` or a `model`)",
    "assets": "static assets", "site": "Workers Sites", "placement": "Smart Placement",
    "observability": "Workers Logs and traces", "logpush": "Logpush", "preview_urls": "preview URLs",
}
BUILD_SETTINGS = {
    "$schema", "account_id", "build", "rules", "tsconfig", "minify", "define", "alias", "no_bundle", "node_compat",
    "upload_source_maps", "keep_vars", "dev", "send_metrics", "usage_model", "find_additional_modules", "base_dir",
    "preserve_file_names", "keep_names", "first_party_worker", "zone_id", "type", "webpack_config", "legacy_env",
    "wasm_modules", "text_blobs", "data_blobs",
}
IMPORTED = {"name", "route", "routes", "services", "vars", "workers_dev", "limits"}
BINDING_KEYS = {"binding", "service", "environment", "entrypoint"}
_URL_SAFE = "/:@!$&'()*+,;=-._~%"
_LOCATION = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$")


@dataclass
class _Env:
    deploy_name: str
    named: bool = False
    """The section gives its worker's name (``[env.NAME] name = ...``) rather than wrangler's ``NAME-ENV``."""
    routes: list[str] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    bindings: dict[str, str] = field(default_factory=dict)
    wanted: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """The file's ``services`` entries, by index, resolved once every file is read."""
    section: str = ""
    """Where it is in its file ("" for the top level, "env.staging."), for paths in messages."""


@dataclass
class _Service:
    name: str
    file: str | None
    envs: dict[str, _Env]
    notes: list[str] = field(default_factory=list)

    @property
    def serving(self) -> str:
        """The environment edge sends the service's own traffic to (``resolved.ResolvedService.serving``)."""
        return "production" if "production" in self.envs else next(iter(self.envs))


@dataclass
class _Import:
    services: dict[str, _Service] = field(default_factory=dict)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Deployed worker name → (service, environment)."""
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """Per file, what was not imported."""
    cpu_ms: dict[str, Any] = field(default_factory=dict)


def read(path: str | Path) -> dict[str, Any]:
    """A wrangler file as builtins; a ConfigError naming the file (and line and column) when it is not one."""
    file = str(path)
    suffix = Path(path).suffix
    if suffix not in (".toml", ".json", ".jsonc"):
        raise ConfigError(file, "", "expected a wrangler configuration file: wrangler.toml, wrangler.json or wrangler.jsonc")
    try:
        data = read_input(path, MAX_FILE_BYTES)
    except InputError as exc:
        raise ConfigError(file, "", str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(file, "", f"expected a wrangler file of at most {MAX_FILE_BYTES:,} bytes (128 KiB), got more")
    try:
        text = data.decode()
        raw = tomllib.loads(text) if suffix == ".toml" else _jsonc(text, file)
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(file, "", "expected tables and arrays nested a few levels deep, got far deeper") from None
    if not isinstance(raw, dict):
        raise ConfigError(file, "", f"expected an object at the top, got {type(raw).__name__}")
    try:
        json.dumps(raw, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a JSON "\ud800" escape: no TOML file can hold it
        raise ConfigError(file, "", "expected text, got a lone surrogate escape (\\ud800-\\udfff)") from None
    return raw


def _jsonc(text: str, file: str) -> Any:
    import json5  # only JSON files need it

    try:
        return json5.loads(text)
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if match := _LOCATION.match(message):
            line, what, column = match.groups()
            raise ConfigError(file, f"line {line}, column {column}", f"not valid JSONC: {what}") from None
        raise ConfigError(file, "", f"not valid JSONC: {message}") from None


def import_files(paths: list[str]) -> str:
    """The scenario TOML for these wrangler files, checked as ``edge check`` would."""
    state = _Import()
    for path in paths:
        _add_file(state, str(path), read(path))
    # A worker's own name wins over an environment's deployed name that happens to be the same.
    for service in state.services.values():
        for env_name, env in service.envs.items():
            if env.section == "":
                state.aliases[env.deploy_name] = (service.name, env_name)
    for service in state.services.values():
        for env_name, env in service.envs.items():
            state.aliases.setdefault(env.deploy_name, (service.name, env_name))
    _say_deployed_names(state)
    for service in list(state.services.values()):
        for env_name, env in service.envs.items():
            for index, entry in env.wanted:
                _bind(state, service, env, index, entry)
    text = _render(state, [str(p) for p in paths])
    loads(text, file=f"the scenario imported from {', '.join(map(str, paths))}", base_dir=".")
    return text


def _expect(condition: bool, file: str, path: str, expected: str) -> None:
    if not condition:
        raise ConfigError(file, path, expected)


def _add_file(state: _Import, file: str, raw: dict[str, Any]) -> None:
    name = raw.get("name")
    if not isinstance(name, str) or name == "":
        raise ConfigError(file, "name", f"expected the worker's name, got {name!r}")
    _check_service_name(name, file, "name")
    if name in state.services:
        raise ConfigError(file, "name", f"expected a worker not imported already, got {name!r} again")
    sections = raw.get("env", {})
    _expect(isinstance(sections, dict) and all(isinstance(s, dict) for s in sections.values()), file, "env",
            "expected tables of environments, such as [env.staging]")
    skipped = state.skipped.setdefault(file, [])
    top_name = "default" if "production" in sections else "production"
    envs = {top_name: _section(state, file, raw, "", name, None, skipped)}
    for env_name, section in sections.items():
        deploy = section.get("name", f"{name}-{env_name}")
        if not isinstance(deploy, str) or deploy == "":
            raise ConfigError(file, f"env.{_shown(env_name)}.name", f"expected a worker name, got {deploy!r}")
        envs[env_name] = _section(state, file, section, f"env.{_shown(env_name)}.", deploy, raw, skipped)
        envs[env_name].named = "name" in section
    service = _Service(name, file, envs)
    serving = envs[service.serving]
    for env_name, env in envs.items():
        if env is serving:
            continue
        # A route is one worker's: the serving environment's stay the service's, whoever else lists them.
        shared = [route for route in env.routes if route in serving.routes]
        env.routes = [route for route in env.routes if route not in serving.routes]
        if env.section and {"route", "routes"} & sections[env_name].keys():  # its own, not inherited from the top level
            skipped.extend(f"{env.section}routes {_shown(route)}: also the {service.serving} environment's, whose route it stays"
                           for route in shared)
    state.services[name] = service


def _section(state: _Import, file: str, section: dict[str, Any], at: str, deploy: str, top: dict[str, Any] | None,
             skipped: list[str]) -> _Env:
    """One environment of a file: the top level (``top`` None) or an ``[env.NAME]`` section."""
    env = _Env(deploy, section=at)
    inherited = top if top is not None and not ({"route", "routes"} & section.keys()) else section
    env.routes = _routes(file, inherited, "" if inherited is top else at, skipped)
    workers_dev = section.get("workers_dev", top.get("workers_dev") if top is not None else None)
    _expect(workers_dev in (None, True, False), file, f"{at}workers_dev", f"expected true or false, got {workers_dev!r}")
    if workers_dev is True or (workers_dev is None and not env.routes):
        env.routes.append(f"{deploy}.{SUBDOMAIN}.workers.dev/*")
    env.vars = _vars(file, section.get("vars", {}), at, skipped)
    services = section.get("services", [])
    _expect(isinstance(services, list), file, f"{at}services", "expected a list of service bindings")
    env.wanted = list(enumerate(services))
    limits = section.get("limits", {})
    _expect(isinstance(limits, dict), file, f"{at}limits", "expected a table such as { cpu_ms = 50 }")
    for key, value in limits.items():
        if key == "cpu_ms" and top is None and type(value) in (int, float) and value > 0:
            state.cpu_ms[file] = value
        elif key == "cpu_ms" and top is None:
            skipped.append(f"limits.cpu_ms = {_shown(value)}: expected a positive number of milliseconds")
        elif key == "cpu_ms":
            skipped.append(f"{at}limits.cpu_ms = {_shown(value)}: edge's cpu_limit is one for the whole scenario")
        else:
            skipped.append(f"{at}limits.{_shown(key)} = {_shown(value)}: not modelled")
    _skip_unimported(section, at, top is None, skipped)
    return env


def _routes(file: str, section: dict[str, Any], at: str, skipped: list[str]) -> list[str]:
    entries: list[tuple[str, Any]] = []
    if "route" in section:
        entries.append((f"{at}route", section["route"]))
    if "routes" in section:
        routes = section["routes"]
        _expect(isinstance(routes, list), file, f"{at}routes", "expected a list of routes")
        entries.extend((f"{at}routes[{i}]", r) for i, r in enumerate(routes))
    patterns = []
    for path, route in entries:
        if isinstance(route, dict):
            pattern = route.get("pattern")
            if not isinstance(pattern, str):
                raise ConfigError(file, f"{path}.pattern", f"expected a route pattern such as \"example.com/*\", got {pattern!r}")
            if route.get("custom_domain") is True:
                pattern = pattern.split("/", 1)[0] + "/*"  # a custom domain is the whole host
            other = sorted(set(route) - {"pattern", "custom_domain", "zone_name", "zone_id"})
            if other:
                skipped.append(f"{path}: {', '.join(map(_shown, other))}: not modelled")
        else:
            if not isinstance(route, str):
                raise ConfigError(file, path, f"expected a route pattern or {{ pattern = ... }}, got {route!r}")
            pattern = route
        try:
            RoutePattern.parse(pattern)
        except RoutePatternError as exc:
            skipped.append(f"{path} {_shown(pattern)}: {exc}")
            continue
        patterns.append(pattern)
    return patterns


def _vars(file: str, values: Any, at: str, skipped: list[str]) -> dict[str, str]:
    _expect(isinstance(values, dict), file, f"{at}vars", "expected a table of variables")
    out = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[key] = value
        else:  # a JSON var reaches a Worker parsed; edge's vars are strings
            out[key] = json.dumps(value, ensure_ascii=False)
            skipped.append(f"{at}vars.{_shown(key)}: a JSON value, imported as its JSON text (edge vars are strings)")
    return out


def _skip_unimported(section: dict[str, Any], at: str, top_level: bool, skipped: list[str]) -> None:
    build = []
    for key, value in section.items():
        if key in IMPORTED or (top_level and key == "env"):
            continue
        if key in NOT_MODELLED:
            names = _binding_names(value)
            skipped.append(f"{at}{_shown(key)}: {NOT_MODELLED[key]}" + (f" ({', '.join(map(_shown, names))})" if names else ""))
        elif key in BUILD_SETTINGS:
            build.append(_shown(key))
        else:
            skipped.append(f"{at}{_shown(key)}: unknown key")
    if build:
        skipped.append(f"{at}build and deploy settings: {', '.join(build)}")


def _binding_names(value: Any) -> list[str]:
    """The names a binding list gives (``binding``, or ``name`` for Durable Objects), at any depth
    (``durable_objects.bindings``, ``queues.producers``)."""
    if isinstance(value, list):
        return [name for item in value for name in _binding_names(item)]
    if not isinstance(value, dict):
        return []
    own = value.get("binding", value.get("name"))
    if isinstance(own, str):
        return [own]
    return [name for key in ("bindings", "producers", "consumers") for name in _binding_names(value.get(key))]


def _bind(state: _Import, service: _Service, env: _Env, index: int, entry: Any) -> None:
    path = f"{env.section}services[{index}]"
    file = service.file or ""
    _expect(isinstance(entry, dict), file, path, "expected { binding = ..., service = ... }")
    binding, worker = entry.get("binding"), entry.get("service")
    _expect(isinstance(binding, str) and binding != "", file, f"{path}.binding", f"expected the binding's name, got {binding!r}")
    _expect(isinstance(worker, str) and worker != "", file, f"{path}.service", f"expected the bound worker's name, got {worker!r}")
    target, pinned = state.aliases.get(worker, (worker, None))
    if target not in state.services:
        _check_service_name(target, file, f"{path}.service")
        state.services[target] = _Service(target, None, {"production": _Env(target)},
                                          [f"not among the imported files: bound by {service.name}'s {binding}", *_renamed(state, target)])
    bound = state.services[target]
    environment = entry.get("environment")
    if environment is not None:
        _expect(isinstance(environment, str) and environment != "", file, f"{path}.environment",
                f"expected an environment name, got {environment!r}")
        pinned = environment
        if environment not in bound.envs:
            bound.envs[environment] = _Env(f"{target}-{environment}")
            bound.notes.append(f"environment {_shown(environment)}: named by {service.name}'s binding {binding}"
                               + (", not in this worker's configuration" if bound.file else ""))
    entrypoint = entry.get("entrypoint")
    if entrypoint is not None:
        service.notes.append(f"binding {binding}: entrypoint {_shown(entrypoint)}: "
                             "a synthetic model answers every entrypoint and method alike")
    other = sorted(set(entry) - BINDING_KEYS)
    if other:
        state.skipped[file].append(f"{path}: {', '.join(map(_shown, other))}: not modelled")
    if binding in env.bindings:
        state.skipped[file].append(f"{path}: binding {_shown(binding)} again: it replaces the earlier one, to {env.bindings[binding]}")
    env.bindings[binding] = target if pinned in (None, bound.serving) else f"{target}@{pinned}"


def _say_deployed_names(state: _Import) -> None:
    """Where each environment's own worker name went: edge has no worker per environment, so the
    name survives only as the target of the bindings to it, which the comment says."""
    for service in state.services.values():
        if service.file is None:
            continue  # the files' services only: no binding has made a placeholder yet
        for env_name, env in service.envs.items():
            if not env.section:
                continue  # the top level: its name is the service's
            owner = state.aliases[env.deploy_name]
            where = f"{env.section}name = {_shown(env.deploy_name)}" if env.named else \
                f"{env.section[:-1]} (deployed as {_shown(env.deploy_name)})"
            if owner != (service.name, env_name):
                state.skipped[service.file].append(f"{where}: {_target(state, *owner)} has this name too; bindings to it go to "
                                                   f"{_target(state, *owner)}, not to {_target(state, service.name, env_name)}")
            elif env.named:
                state.skipped[service.file].append(
                    f"{where}: the environment's worker name; bindings to it go to {_target(state, *owner)}")


def _target(state: _Import, service: str, env: str) -> str:
    """A binding's target as the scenario writes it: the service alone for its serving environment."""
    return service if env == state.services[service].serving else f"{service}@{env}"


def _renamed(state: _Import, worker: str) -> list[str]:
    """Why no imported environment is ``worker``: one that would be by wrangler's default naming has a name of its own."""
    return [f"{service.name}'s [env.{_shown(env_name)}] would be {_shown(worker)}, but deploys as {_shown(env.deploy_name)}"
            for service in state.services.values() for env_name, env in service.envs.items()
            if env.named and f"{service.name}-{env_name}" == worker]


def _check_service_name(name: str, file: str, path: str) -> None:
    try:
        convert({"name": name}, Service, file)
    except ConfigError as exc:
        raise ConfigError(file, path, exc.expected) from None


def _shown(value: Any) -> str:
    """A name or value as a comment can hold it: printable, on one line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _comment(lines: list[str]) -> str:
    return "".join(f"# {_shown(line)}\n" if line else "#\n" for line in lines)


def _table(path: tuple[str, ...], values: dict[str, Any]) -> str:
    """``values`` as the TOML table at ``path`` (inside the last ``[[services]]``)."""
    nested: dict[str, Any] = values
    for key in reversed(path):
        nested = {key: nested}
    return tomli_w.dumps(nested)


def _render(state: _Import, paths: list[str]) -> str:
    out = [_comment(_header(state, paths))]
    cpu = set(map(json.dumps, state.cpu_ms.values()))
    meta: dict[str, Any] = {"name": next(iter(state.services)), "duration": "1m", "seed": 1}
    if len(cpu) == 1:
        meta["cpu_limit"] = f"{next(iter(state.cpu_ms.values())):g}ms"
    out.append("\n" + _table(("scenario",), meta))
    for service in state.services.values():
        out.append("\n" + _service(service))
    public = [(s, s.envs[s.serving].routes[0]) for s in state.services.values() if s.envs[s.serving].routes]
    if public:
        out.append("\n" + _comment(["fill in: your traffic (rate, request mix, paths, headers)"]))
        requests = [{"url": _url(RoutePattern.parse(route))} for _, route in public]
        out.append("[[traffic]]\n" + tomli_w.dumps({"name": "imported", "arrivals": TRAFFIC_STUB, "requests": requests}))
    else:
        out.append("\n" + _comment(["no imported worker has a route: no traffic group (add one once a service is public)"]))
    return "".join(out)


def _header(state: _Import, paths: list[str]) -> list[str]:
    lines = [f"Imported by `edge import` from {', '.join(paths)}.", "",
             "Each service runs a synthetic model of placeholder figures: fill in its cpu and latency,",
             "measured from your worker. A synthetic model does not call its bindings: they show in",
             "`edge graph`, and carry calls once the service runs a `worker` instead.", ""]
    if len(set(map(json.dumps, state.cpu_ms.values()))) > 1:
        lines.append("limits.cpu_ms differs between the files (" + ", ".join(f"{f}: {_shown(v)}" for f, v in state.cpu_ms.items())
                     + "): the scenario keeps edge's default cpu_limit; set the one your entry worker has.")
        lines.append("")
    lines.append("Not imported (edge does not model these), or imported differently:")
    for file, skipped in state.skipped.items():
        if skipped:
            lines.append(f"  {file}:")
            lines.extend(f"    {line}" for line in dict.fromkeys(skipped))
    lines.append("  secret values: never in a wrangler file, never imported; add `secrets = { NAME = \"...\" }` by hand")
    return lines


def _service(service: _Service) -> str:
    where = f"from {service.file}" if service.file else "a worker the imported files bind to"
    out = [_comment([f"{service.name}: {where}", *service.notes])]
    serving = service.envs[service.serving]
    head: dict[str, Any] = {"name": service.name}
    if serving.routes:
        head["routes"] = serving.routes
    out.append("[[services]]\n" + tomli_w.dumps(head))
    out.append(_comment(["fill in: measured from your worker (CPU per call; time waiting on I/O and subrequests)"]))
    out.append(_table(("services", "model"), PLACEHOLDER_MODEL))
    if len(service.envs) == 1:
        for key in ("vars", "bindings"):
            if values := getattr(serving, key):
                out.append("\n" + _table(("services", key), values))
        return "".join(out)
    for env_name, env in service.envs.items():
        # The serving environment's routes are the service's (above); another's are its own.
        keys = ("vars", "bindings") if env_name == service.serving else ("routes", "vars", "bindings")
        values = {key: getattr(env, key) for key in keys if getattr(env, key)}
        out.append("\n" + _table(("services", "environments", env_name), values))
    return "".join(out)


def _url(route: RoutePattern) -> str:
    """A URL the route serves (a wildcard host serves its own name too)."""
    return f"https://{route.host}{quote(route.path, safe=_URL_SAFE)}"
