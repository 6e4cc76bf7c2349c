"""Seed 004's API gateway as a scenario table: ``serviceBindings`` aliases and ``paths``.

A service (or one environment of it) with a ``gateway`` table runs no code of its own: the platform
serves it (``actors.gateway``), matching each request's method and path against ``paths`` and
calling the bound services' RPC methods named by ``pre_process`` and ``integration`` (a
``post_process`` is read and checked, and never called, as in the project seed 004 configures). The field names are the seed's, so its JSON pastes as TOML key for key::

    [services.gateway]
    serviceBindings = [{ alias = "users", binding = "USERS" }]
    [[services.gateway.paths]]
    method = "GET"
    path = "/users/{id}"
    integration = { type = "service_binding", binding = "users", function = "get" }

Unlike the rest of the scenario, where decoding stops at the first error, a gateway table is read
whole and every problem in it is kept (``Gateway.problems``, paths relative to the table):
a gateway config is a list of routes written by hand, and fixing them one ``edge check`` at a time
is slow. ``edge.scenario.checks.check_gateways`` adds what needs the rest of the scenario (does
``binding`` name a binding of the environment, does the bound worker have the function) and reports
them all in one error.
"""

from __future__ import annotations

from typing import Any

from edge.platform.routes import PathTemplate

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY")
"""``ANY`` matches every method (the seed's gateway), after a path's exact-method entry."""
INTEGRATION_TYPES = ("service_binding",)
"""What the platform runs. The seed's project also proxies HTTP (``http_proxy``), imports modules
(``service``) and speaks to Auth0 and Supabase: none of those is a Workers platform feature."""
HOOKS = ("pre_process", "integration", "post_process")

Problem = tuple[str, str]
"""(path inside the gateway table, what was expected)."""


class Call:
    """A call of a bound service's RPC method: ``{ binding = ALIAS, function = NAME }``."""

    __slots__ = ("alias", "function")

    def __init__(self, alias: str, function: str) -> None:
        self.alias = alias
        self.function = function


class Route:
    """One entry of ``paths``."""

    __slots__ = ("method", "template", "pre_process", "integration", "post_process")

    def __init__(self, method: str, template: PathTemplate, pre_process: Call | None, integration: Call, post_process: Call | None) -> None:
        self.method = method
        self.template = template
        self.pre_process = pre_process
        self.integration = integration
        self.post_process = post_process

    def calls(self) -> list[tuple[str, Call]]:
        return [(hook, call) for hook in HOOKS if (call := getattr(self, hook)) is not None]


class Gateway:
    """A decoded gateway table: its aliases (alias -> binding name), its routes, and every problem
    found in it. Routes whose entry has a problem are left out; a scenario with problems does not
    get past ``edge check``, so only a table without any is ever served."""

    __slots__ = ("aliases", "routes", "problems")

    def __init__(self, aliases: dict[str, str], routes: list[tuple[int, Route]], problems: list[Problem]) -> None:
        self.aliases = aliases
        self.routes = routes  # (index in ``paths``, route)
        self.problems = problems

    @classmethod
    def parse(cls, raw: Any) -> Gateway:
        """For ``msgspec.convert`` (``values.dec_hook``): never raises for what is inside the
        table, so that one problem does not hide the next."""
        if not isinstance(raw, dict):
            raise ValueError(f"expected a table with `serviceBindings` and `paths`, got {type(raw).__name__}")
        problems: list[Problem] = []
        _unknown(raw, ("serviceBindings", "paths"), "", problems)
        aliases = _aliases(raw.get("serviceBindings"), problems)
        routes: list[tuple[int, Route]] = []
        paths = raw.get("paths")
        if not isinstance(paths, list) or not paths:
            problems.append(("paths", "expected a list of at least one path, like "
                             '{ method = "GET", path = "/users/{id}", integration = { ... } }'))
            paths = []
        seen: dict[tuple[str, str], int] = {}
        for index, entry in enumerate(paths):
            route = _route(entry, f"paths[{index}]", aliases, problems)
            if route is None:
                continue
            key = (route.method, route.template.text)
            if key in seen:
                problems.append((f"paths[{index}]", f"expected one entry per method and path, {route.method} "
                                 f"{route.template.text} is paths[{seen[key]}] already"))
                continue
            seen[key] = index
            routes.append((index, route))
        return cls(aliases, routes, problems)

    def __repr__(self) -> str:
        return f"Gateway({len(self.routes)} routes, {len(self.problems)} problems)"


def _unknown(table: dict[str, Any], known: tuple[str, ...], at: str, problems: list[Problem]) -> None:
    for key in table:
        if key not in known:
            problems.append((_join(at, str(key)), f"unknown field (expected {', '.join(known)})"))


def _string(table: dict[str, Any], key: str, at: str, problems: list[Problem]) -> str | None:
    value = table.get(key)
    if isinstance(value, str) and value:
        return value
    what = "missing" if key not in table else f"got {value!r}"
    problems.append((_join(at, key), f"expected a non-empty string, {what}"))
    return None


def _aliases(raw: Any, problems: list[Problem]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    if not isinstance(raw, list):
        problems.append(("serviceBindings", 'expected a list like [{ alias = "users", binding = "USERS" }]'))
        return aliases
    for index, entry in enumerate(raw):
        at = f"serviceBindings[{index}]"
        if not isinstance(entry, dict):
            problems.append((at, 'expected a table like { alias = "users", binding = "USERS" }'))
            continue
        _unknown(entry, ("alias", "binding"), at, problems)
        alias, binding = _string(entry, "alias", at, problems), _string(entry, "binding", at, problems)
        if alias is not None and alias in aliases:
            problems.append((f"{at}.alias", f"expected a unique alias, {alias!r} is defined twice"))
        elif alias is not None and binding is not None:
            aliases[alias] = binding
    return aliases


def _route(entry: Any, at: str, aliases: dict[str, str], problems: list[Problem]) -> Route | None:
    if not isinstance(entry, dict):
        problems.append((at, "expected a table with method, path and integration"))
        return None
    before = len(problems)
    _unknown(entry, ("method", "path", *HOOKS), at, problems)
    method = _string(entry, "method", at, problems)
    if method is not None:
        method = method.upper()
        if method not in METHODS:
            problems.append((f"{at}.method", f"expected one of {', '.join(METHODS)}, got {entry['method']!r}"))
    template = None
    text = _string(entry, "path", at, problems)
    if text is not None:
        try:
            template = PathTemplate(text)
        except ValueError as exc:
            problems.append((f"{at}.path", str(exc)))
    calls: dict[str, Call | None] = {}
    for hook in HOOKS:
        if hook not in entry:
            calls[hook] = None
            if hook == "integration":
                problems.append((f"{at}.integration", 'expected { type = "service_binding", binding = ALIAS, function = NAME }, missing'))
            continue
        calls[hook] = _call(entry[hook], f"{at}.{hook}", aliases, problems)
    if len(problems) > before:
        return None
    assert method is not None and template is not None and calls["integration"] is not None
    return Route(method, template, calls["pre_process"], calls["integration"], calls["post_process"])


def _call(raw: Any, at: str, aliases: dict[str, str], problems: list[Problem]) -> Call | None:
    if not isinstance(raw, dict):
        problems.append((at, f'expected a table like {{ binding = ALIAS, function = NAME }}, got {raw!r}'))
        return None
    _unknown(raw, ("type", "binding", "function"), at, problems)
    kind = raw.get("type", "service_binding")
    if kind not in INTEGRATION_TYPES:
        problems.append((f"{at}.type", f'expected "service_binding" (a bound Worker\'s method; the platform runs no other kind), got {kind!r}'))
    alias, function = _string(raw, "binding", at, problems), _string(raw, "function", at, problems)
    if alias is not None and alias not in aliases:
        problems.append((f"{at}.binding", f"expected an alias of serviceBindings ({', '.join(aliases) or 'none'}), got {alias!r}"))
        return None
    if function is not None and (function.startswith("_") or function == "fetch"):
        problems.append((f"{at}.function", f"expected the name of an RPC method (public, not fetch), got {function!r}"))
        return None
    return None if alias is None or function is None else Call(alias, function)


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path and field else path or field
