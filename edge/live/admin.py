"""Runtime control of a live ``edge serve``: the admin API (its client is ``admin_client``).

The API listens on its own port, bound to loopback unless the operator asks otherwise: whoever can
reach it steers production-like traffic. It is small and JSON over HTTP, so ``curl`` works too:

    GET  /weights                      {"app": {"production": 99.0, "canary": 1.0}}
    PUT  /weights/app                  body {"production": 95, "canary": 5}: the whole split
    PUT  /weights/app/canary           body {"percent": 5}: one environment, the rest keep
                                       their proportions (0 is a rollback). While a rollout
                                       owns app's split this is 409, unless the request adds
                                       ?pause_rollout=1: the rollout is paused first
    GET  /rollouts                     every rollout: phase, step, weight, its history; times
                                       in seconds since the server started
    GET  /rollouts/app                 app's rollout
    POST /rollouts/app/approve         let app's rollout past a manual step
    POST /rollouts/app/pause           stop analysing and stepping; the split is the operator's
    POST /rollouts/app/resume          go on from the step it was at, at that step's weight
    POST /rollouts/app/abort           roll back now
    GET  /versions                     every environment's version history
    GET  /versions/app@production      one environment's: active version, versions, deployments
    POST /versions/app@production      body {"vars": {...}, "secrets": {...}, "message": "...",
                                       "tags": {...}, "version": N}: a new version (all optional)
    POST /versions/app@production/rollback   body {"to": N, "message": "..."} or none: serve an
                                       earlier version again (default the one deployed before)

Every change takes effect for the next routed call (weights: and shows in ``edge_canary_weight``;
versions: calls already running finish on the version they started on). A version change that
cannot be made is a 4xx saying why: 404 for a version there never was, 409 otherwise (a number
that does not grow, nothing to roll back to).

Every request must carry the API's token, ``Authorization: Bearer TOKEN`` (compared in constant
time): ``edge serve`` generates one at start and prints it once, or takes the operator's
(``--admin-token``, ``EDGE_ADMIN_TOKEN``). A web page can make a browser send requests to
127.0.0.1 too; two more checks keep one out even if it learns the port (DNS rebinding):

* ``Host`` (and an absolute request target) must name this listener: ``localhost`` or its IP
  address (any IP address when it listens on all of them), with its port. A rebound name such as
  ``attacker.example:8788`` is answered 421.
* a request carrying an ``Origin`` other than the listener itself is answered 403, and no answer
  carries CORS headers, so a browser lets no other site read one.

The token is never logged: the server logs what changed, not who asked.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import msgspec

from actors.environment import EnvironmentActor
from actors.router import RouterActor
from edge.platform.fetch import Request, Response
from edge.platform.versions import UnknownVersion, VersionError
from edge.scenario.values import EnvironmentKey

log = logging.getLogger("edge.live.admin")


class _Percent(msgspec.Struct, forbid_unknown_fields=True):
    percent: float


class _NewVersion(msgspec.Struct, forbid_unknown_fields=True):
    message: str = "deployed through the admin API"
    tags: dict[str, str] = {}
    vars: dict[str, str] = {}
    secrets: dict[str, str] = {}
    version: int | None = None


class _Rollback(msgspec.Struct, forbid_unknown_fields=True):
    to: int | None = None
    message: str = ""


def _error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status=status)


class AdminApi:
    """The admin endpoints over a running topology's routers."""

    def __init__(self, routers: dict[str, RouterActor], rollouts: dict[str, Any] | None = None, *, token: str,
                 environments: dict[EnvironmentKey, EnvironmentActor] | None = None) -> None:
        self.routers = routers
        self.rollouts = {} if rollouts is None else rollouts  # service -> edge.engine.rollout.RolloutController
        self.environments = {} if environments is None else environments  # app@production -> its actor
        self._token = token.encode()
        self._listener: tuple[str, int] | None = None  # until listening_on: every request is misdirected

    def listening_on(self, host: str, port: int) -> None:
        """Where the API listens, which is what a request's Host must name."""
        self._listener = (host, port)

    @property
    def listener(self) -> tuple[str, int] | None:
        """(host, port) the API listens on, once it does."""
        return self._listener

    async def __call__(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        return await self._handle(request)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host")
        if host is None or not self._names_listener(host) or not self._names_listener(urlsplit(request.url).netloc):
            return _error(421, "this is the admin API: address it as localhost or its IP address, with its port")
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or parts.path or not self._names_listener(parts.netloc):
                return _error(403, "cross-origin requests to the admin API are refused")
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return _unauthorized("expected `Authorization: Bearer TOKEN` with the token `edge serve` printed at start")
        if not hmac.compare_digest(given.strip().encode(), self._token):
            return _unauthorized("wrong admin token")
        return None

    def _names_listener(self, authority: str) -> bool:
        """Is ``authority`` (HOST[:PORT]) this listener: its port, and localhost or an IP address it
        listens on? A DNS name other than localhost never is: that is what rebinding needs."""
        if self._listener is None:
            return False
        try:
            parts = urlsplit(f"//{authority}")
            port = parts.port or 80
        except ValueError:
            return False
        name, (bound, bound_port) = parts.hostname or "", self._listener
        if port != bound_port or parts.username is not None or parts.password is not None:
            return False
        if name == "localhost":
            return bound == "localhost" or _is_loopback(bound) or _is_wildcard(bound)
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        if _is_wildcard(bound):
            return True
        if bound == "localhost":
            return address.is_loopback
        try:
            return address == ipaddress.ip_address(bound)
        except ValueError:
            return False  # bound by a DNS name: only that listener's addresses were meant

    async def _handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if parts and parts[0] == "rollouts":
            return self._rollouts(request, parts)
        if parts and parts[0] == "versions":
            return await self._versions(request, parts)
        if not parts or parts[0] != "weights" or len(parts) > 3:
            return _error(404, f"no admin endpoint {request.path}; try GET /weights")
        if len(parts) == 1:
            if request.method != "GET":
                return _error(405, "GET /weights lists the splits; PUT /weights/SERVICE[/ENV] changes one")
            return Response.json(self._weights())
        router = self.routers.get(parts[1])
        if router is None:
            split = ", ".join(sorted(self.routers)) or "none"
            return _error(404, f"no split service {parts[1]!r} (split services: {split})")
        if request.method not in ("PUT", "POST"):
            return _error(405, f"use PUT to change the weights of {parts[1]}")
        rollout = self.rollouts.get(parts[1])
        if rollout is not None and rollout.owns_split:
            if "pause_rollout=1" not in urlsplit(request.url).query.split("&"):
                return _error(409, f"the rollout of {parts[1]} owns its split ({rollout.phase}, step {rollout.state.step + 1} of "
                                   f"{len(rollout.state.plan.steps)}): pause it first, or add ?pause_rollout=1 to pause it and set the weight")
            log.warning("rollout of %s: %s", parts[1], rollout.hold())
        body = await request.bytes()
        try:
            if len(parts) == 2:
                weights = msgspec.json.decode(body, type=dict[str, float])
                router.set_weights(weights)
            else:
                router.set_weight(parts[2], msgspec.json.decode(body, type=_Percent).percent)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _error(400, f"expected a JSON body like {_example(len(parts))}: {exc}")
        except ValueError as exc:
            return _error(400, str(exc))
        log.info("weights of %s set to %s", router.service, router.weights)
        return Response.json({router.service: router.weights})

    def _rollouts(self, request: Request, parts: list[str]) -> Response:
        if len(parts) == 1:
            if request.method != "GET":
                return _error(405, "GET /rollouts lists every rollout")
            return _json({name: c.report() for name, c in sorted(self.rollouts.items())})
        controller = self.rollouts.get(parts[1])
        if controller is None:
            return _error(404, f"no rollout of {parts[1]!r} (rollouts: {', '.join(sorted(self.rollouts)) or 'none'})")
        if len(parts) == 2 and request.method == "GET":
            return _json(controller.report())
        action = ROLLOUT_ACTIONS.get(parts[2]) if len(parts) == 3 else None
        if action is None:
            return _error(404, f"no admin endpoint {request.path}; try GET /rollouts/{parts[1]} or POST /rollouts/{parts[1]}/"
                               f"{'|'.join(ROLLOUT_ACTIONS)}")
        if request.method != "POST":
            return _error(405, f"use POST to {parts[2]} the rollout of {parts[1]}")
        done = getattr(controller, action)()
        log.warning("rollout of %s: %s", parts[1], done)
        return Response.json({"done": done, "rollout": msgspec.to_builtins(controller.report())})

    async def _versions(self, request: Request, parts: list[str]) -> Response:
        if len(parts) == 1:
            if request.method != "GET":
                return _error(405, "GET /versions lists every environment's versions")
            return _json({str(key): actor.history.record() for key, actor in sorted(self.environments.items(), key=lambda item: str(item[0]))})
        actor = self.environments.get(_environment_key(parts[1]))
        if actor is None:
            known = ", ".join(sorted(map(str, self.environments))) or "none"
            return _error(404, f"no environment {parts[1]!r} (environments: {known})")
        if len(parts) == 2 and request.method == "GET":
            return _json(actor.history.record())
        if len(parts) > 3 or (len(parts) == 3 and parts[2] != "rollback"):
            return _error(404, f"no admin endpoint {request.path}; try GET /versions/{actor.key} or POST /versions/{actor.key}/rollback")
        if request.method != "POST":
            return _error(405, f"use POST to deploy a new version of {actor.key}" if len(parts) == 2 else f"use POST to roll {actor.key} back")
        body = await request.bytes()
        try:
            if len(parts) == 2:
                change = msgspec.json.decode(body or b"{}", type=_NewVersion)
                version = actor.new_version(change.message, number=change.version, tags={**actor.tags, **change.tags},
                                            vars=change.vars, secrets=change.secrets)
                changed = [*(f"var {name}" for name in sorted(change.vars)), *(f"secret {name}" for name in sorted(change.secrets))]
                log.warning("%s: version %d deployed (%s)", actor.key, version.number, ", ".join(changed) or "no change of vars or secrets")
            else:
                rollback = msgspec.json.decode(body or b"{}", type=_Rollback)
                before = actor.version
                number = actor.rollback(rollback.to, rollback.message)
                log.warning("%s: rolled back from version %s to %d", actor.key, before, number)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            example = '{"vars": {"MODE": "safe"}, "message": "..."}' if len(parts) == 2 else '{"to": 4} (or no body: the previous version)'
            return _error(400, f"expected a JSON body like {example}: {exc}")
        except UnknownVersion as exc:
            return _error(404, str(exc))
        except VersionError as exc:
            return _error(409, str(exc))
        return _json(actor.history.record())

    def _weights(self) -> dict[str, dict[str, float]]:
        return {name: dict(router.weights) for name, router in sorted(self.routers.items())}


ROLLOUT_ACTIONS = {"approve": "approve", "pause": "hold", "resume": "resume", "abort": "abort"}
"""POST /rollouts/SERVICE/<name> -> the controller's method."""


def _json(value: Any) -> Response:
    return Response(msgspec.json.encode(value), headers={"content-type": "application/json"})


def _unauthorized(message: str) -> Response:
    response = _error(401, message)
    response.headers.set("www-authenticate", 'Bearer realm="edge admin"')
    return response


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _example(parts: int) -> str:
    return '{"production": 95, "canary": 5}' if parts == 2 else '{"percent": 5}'


def _environment_key(text: str) -> EnvironmentKey | None:
    """The environment a path names ("app@canary"); None for text that names none."""
    try:
        return EnvironmentKey.parse(text)
    except ValueError:
        return None
