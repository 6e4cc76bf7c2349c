"""Seed 004's API gateway, served by the platform from a scenario's ``gateway`` table.

The worker a user would otherwise write by hand (match the route, call the hooks over bindings,
wrap the answer): ``gateway_worker`` makes it from a checked ``edge.scenario.gateway.Gateway``, and
the environment actor runs it as any code worker (slots, CPU, metrics, live and virtual alike).

For a request, the entry of ``paths`` whose path template matches and whose method is the
request's (or ``ANY``) is chosen, the most specific template first, then an exact method over
``ANY``, then the first written. Its calls go over the environment's bindings, each as
``env.BINDING.function(request, context)``: ``request`` a clone of the incoming request (each call
may read the body), ``context`` a new dict each time with ``method``, ``path``, ``params`` (the
path parameters), ``query``, and what came before: ``pre_process`` (its return value) for the
integration and post_process, ``result`` (the integration's) for post_process.

Answers are the seed's standard JSON envelope:

* success: 200 ``{"status": "success", "message": "Operation completed successfully.", "data": D}``,
  D the integration's return value, or post_process's when it returns something other than None;
* error: ``{"status": "error", "message": M, "error": CODE}`` with
  - 404 ``not_found``: no entry's path matches;
  - 405 ``method_not_allowed`` (and ``Allow``): a path matches, for other methods only;
  - a hook or the integration raised with ``status`` (400..599) and ``code``: that status and code,
    M the exception's message (how a pre_process hook refuses a request: 401, 403...);
  - raised without a status: 500 ``internal_server_error``; the platform answered for the bound
    service (shed, down): its status (503 ``service_unavailable``); M says which;
  - a result JSON cannot carry: 500 ``invalid_result``.

A request over its CPU budget or its invocation limit is the platform's 503/500 as for any worker:
those are not the bound service's answers and are not wrapped.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from actors.environment import Env, RpcError
from edge.platform.fetch import Request, Response
from edge.platform.workers import WorkerCode
from edge.scenario.gateway import Call, Gateway, Route

SUCCESS = "Operation completed successfully."
_JSON = {"content-type": "application/json"}
_encode = msgspec.json.Encoder().encode


def gateway_worker(gateway: Gateway) -> WorkerCode:
    """The worker that serves ``gateway`` (a table without problems: ``check_gateways`` ran)."""
    routes = [route for _, route in gateway.routes]
    aliases = gateway.aliases

    async def fetch(request: Request, env: Env, ctx: Any) -> Response:
        method, path = request.method, request.path
        route, params, allowed = _match(routes, method, path)
        if route is None:
            if allowed:
                return _error(405, f"{method} is not allowed on {path}", "method_not_allowed", {"allow": ", ".join(allowed)})
            return _error(404, "No match found.", "not_found")
        context: dict[str, Any] = {"method": method, "path": path, "params": params, "query": dict(parse_qsl(request.query))}
        try:
            if route.pre_process is not None:
                context["pre_process"] = await _invoke(env, aliases, route.pre_process, request, context)
            result = await _invoke(env, aliases, route.integration, request, context)
            if route.post_process is not None:
                processed = await _invoke(env, aliases, route.post_process, request, {**context, "result": result})
                if processed is not None:
                    result = processed
        except RpcError as exc:
            return _error(exc.status, exc.detail, exc.code or _code(exc.status))
        try:
            body = _encode({"status": "success", "message": SUCCESS, "data": result})
        except (TypeError, ValueError) as exc:
            return _error(500, f"the result of {route.integration.function} is not JSON: {exc}", "invalid_result")
        return Response(body, headers=_JSON)

    return WorkerCode(fetch, {})


def _match(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for ``method`` and ``path`` and its parameters; without one, the methods the
    path has (empty: no entry's path matches)."""
    best: tuple[Any, Route, dict[str, str]] | None = None
    allowed: list[str] = []
    for route in routes:
        params = route.template.match(path)
        if params is None:
            continue
        allowed.append(route.method)
        if route.method in (method, "ANY"):
            rank = (route.template.specificity, route.method == method)
            if best is None or rank > best[0]:
                best = (rank, route, params)
    if best is None:
        return None, {}, sorted(set(allowed))
    return best[1], best[2], []


def _invoke(env: Env, aliases: dict[str, str], call: Call, request: Request, context: dict[str, Any]) -> Any:
    binding = getattr(env, aliases[call.alias])
    return getattr(binding, call.function)(request.clone(), dict(context))


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    body = _encode({"status": "error", "message": message, "error": code})
    return Response(body, status=status, headers={**_JSON, **(headers or {})})
