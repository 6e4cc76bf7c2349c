"""Seed 004's API gateway, served by the platform from a scenario's ``gateway`` table, answering as
the project seed 004 configures does (``irensaltali/serverlessapigateway``, "the reference").

The worker a user would otherwise deploy (match the route, call the hooks over bindings, shape the
answer): ``gateway_worker`` makes it from a checked ``edge.scenario.gateway.Gateway``, and the
environment actor runs it as any code worker (slots, CPU, metrics, live and virtual alike).

A request goes to the entry of ``paths`` whose template matches (``PathTemplate.match``) and whose
method is the request's or ``ANY``, ranked as the reference ranks them: exact matches first, then
more matched segments, then no wildcard before a wildcard, then the exact method before ``ANY``,
then the order written. No entry: 404 ``{"message": "No match found."}``, a path that exists for
other methods (and HEAD on a GET path) included, as there.

``pre_process``, when the entry has one, decides: the request goes on only if it returns exactly
``True``. A Response it returns is the answer; None is a 500; anything else (False, a string, a
dict...) an empty 200, as the reference answers what is not a Response (a dict with an int
``status`` and a ``body`` makes that answer). The ``integration``'s result is then the answer,
shaped as the reference shapes it (``_answer``). A hook or integration that raises, or a bound
service the platform could not reach, is a 500 ``{"message": "Internal server error"}``. Every
answer carries the reference's ``X-Powered-By``. A ``post_process`` on a path is kept in the table
but never called: the reference calls it only for its Auth0 callback, never for a service binding.

Deliberate differences (docs/conformance.md): each call is ``env.BINDING.function(request,
context)``, ``context`` a dict of ``method``, ``path``, ``params`` and ``query``, where the
reference passes the environment (secrets included) and its own context as JSON strings; an alias
or function the table names that the scenario lacks is a configuration error (``edge check``),
where the reference skips such a hook and answers such an integration 404. A request over its CPU
budget is the platform's 1102, as for any worker.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec

from actors.environment import Env
from edge.platform.cpu import CpuLimitExceeded
from edge.platform.fetch import Headers, Request, Response
from edge.platform.workers import WorkerCode
from edge.scenario.gateway import Call, Gateway, Route

POWERED_BY = ("x-powered-by", "github.com/irensaltali/serverlessapigateway")
SUCCESS = "Operation completed successfully."
FAILURE = "An error occurred."
_JSON = "application/json"
_encode = msgspec.json.Encoder().encode


def gateway_worker(gateway: Gateway) -> WorkerCode:
    """The worker that serves ``gateway`` (a table without problems: ``check_gateways`` ran)."""
    routes = [route for _, route in gateway.routes]
    aliases = gateway.aliases

    async def fetch(request: Request, env: Env, ctx: Any) -> Response:
        match = _match(routes, request.method, request.path)
        if match is None:
            return _message(404, "No match found.")
        route, params = match
        context = {"method": request.method, "path": request.path, "params": params, "query": dict(parse_qsl(request.query))}
        try:
            if route.pre_process is not None:
                verdict = await _invoke(env, aliases, route.pre_process, request, context)
                if verdict is not True:
                    return _refusal(verdict)
            return _answer(await _invoke(env, aliases, route.integration, request, context))
        except CpuLimitExceeded:
            raise  # the platform's, not the gateway's
        except Exception:
            return _message(500, "Internal server error")

    return WorkerCode(fetch, {})


def _match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The entry for ``method`` and ``path`` and its path parameters, ranked as the reference does."""
    best: tuple[tuple[bool, int, bool, bool], Route, dict[str, str]] | None = None
    for route in routes:
        if route.method != method and route.method != "ANY":
            continue
        found = route.template.match(path)
        if found is None:
            continue
        rank = (found.exact, found.count, not found.wildcard, route.method == method)
        if best is None or rank > best[0]:  # strictly better: of equals, the first written
            best = (rank, route, found.params)
    return None if best is None else (best[1], best[2])


def _invoke(env: Env, aliases: dict[str, str], call: Call, request: Request, context: dict[str, Any]) -> Any:
    binding = getattr(env, aliases[call.alias])
    return getattr(binding, call.function)(request.clone(), dict(context))


def _refusal(verdict: Any) -> Response:
    """What a pre_process hook that did not return True answers."""
    if isinstance(verdict, Response):
        return _passed_through(verdict)
    if verdict is None:
        return _message(500, "Internal server error")
    if isinstance(verdict, dict) and type(verdict.get("status")) is int:
        try:
            return _powered(Response(verdict.get("body"), status=verdict["status"]))
        except (TypeError, ValueError):
            return _message(500, "Internal server error")
    return _powered(Response(None))


def _answer(result: Any) -> Response:
    """An integration's result as the reference answers it."""
    if isinstance(result, Response):
        return _passed_through(result)
    if result is None:
        return _powered(Response(None, headers={"content-type": _JSON}))
    if isinstance(result, str):
        return _powered(Response(result, headers={"content-type": _JSON}))
    if isinstance(result, (bool, int, float)):
        return _powered(Response(None, status=400, headers={"content-type": _JSON}))
    if isinstance(result, (list, tuple)):
        result = {str(index): item for index, item in enumerate(result)}  # spread into an object, as JavaScript does
    if not isinstance(result, dict):
        return _message(500, "Internal server error")
    error, message, status = result.get("error"), result.get("message"), result.get("statusCode")
    if error:
        body: dict[str, Any] = {"status": "error", "message": message or FAILURE, "error": error}
    else:
        data = {key: value for key, value in result.items() if key not in ("statusCode", "error", "message")}
        body = {"status": "success", "message": message or SUCCESS, "data": data}
    try:
        code = (500 if error else 200) if status is None else int(status)
        return _powered(Response(_encode(body), status=code, headers={"content-type": _JSON}))
    except (TypeError, ValueError):  # a status no Response can have, or a result JSON cannot carry
        return _message(500, "Internal server error")


def _passed_through(response: Response) -> Response:
    """A Response a bound service returned, as it is, with the gateway's header added (on a copy:
    what a binding returned is immutable)."""
    copy = Response(None, status=response.status, status_text=response.status_text, headers=Headers(response.headers))
    copy._body = response._body
    return _powered(copy)


def _message(status: int, message: str) -> Response:
    return _powered(Response(_encode({"message": message}), status=status, headers={"content-type": _JSON}))


def _powered(response: Response) -> Response:
    response.headers.set(*POWERED_BY)
    return response
