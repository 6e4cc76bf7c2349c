"""Runtime control of a live ``edge serve``: the admin API and the client ``edge weight`` uses.

The API listens on its own port, bound to loopback unless the operator asks otherwise: whoever can
reach it steers production-like traffic. It is small and JSON over HTTP, so ``curl`` works too:

    GET  /weights                      {"app": {"production": 99.0, "canary": 1.0}}
    PUT  /weights/app                  body {"production": 95, "canary": 5}: the whole split
    PUT  /weights/app/canary           body {"percent": 5}: one environment, the rest keep
    GET  /rollouts                     every rollout: phase, weight, analyses so far
    POST /rollouts/app/approve         let app's rollout past a manual step
                                       their proportions (0 is a rollback)

Every change takes effect for the next routed call and shows in ``edge_canary_weight``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from typing import Any

import msgspec

from actors.router import RouterActor
from edge.platform.fetch import Request, Response

log = logging.getLogger("edge.live.admin")

DEFAULT_ADMIN_PORT = 8788


class _Percent(msgspec.Struct, forbid_unknown_fields=True):
    percent: float


def _error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status=status)


class AdminApi:
    """The admin endpoints over a running topology's routers."""

    def __init__(self, routers: dict[str, RouterActor], rollouts: dict[str, Any] | None = None) -> None:
        self.routers = routers
        self.rollouts = {} if rollouts is None else rollouts  # service -> edge.engine.rollout.RolloutController

    async def __call__(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if parts and parts[0] == "rollouts":
            return self._rollouts(request, parts)
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
        log.warning("weights of %s set to %s", router.service, router.weights)
        return Response.json({router.service: router.weights})

    def _rollouts(self, request: Request, parts: list[str]) -> Response:
        if len(parts) == 1 and request.method == "GET":
            return Response(msgspec.json.encode({name: c.report() for name, c in sorted(self.rollouts.items())}),
                            headers={"content-type": "application/json"})
        if len(parts) == 3 and parts[2] == "approve":
            controller = self.rollouts.get(parts[1])
            if controller is None:
                return _error(404, f"no rollout of {parts[1]!r} (rollouts: {', '.join(sorted(self.rollouts)) or 'none'})")
            if request.method != "POST":
                return _error(405, f"use POST to approve the rollout of {parts[1]}")
            done = controller.approve()
            log.warning("rollout of %s: %s", parts[1], done)
            return Response.json({parts[1]: done})
        return _error(404, f"no admin endpoint {request.path}; try GET /rollouts or POST /rollouts/SERVICE/approve")

    def _weights(self) -> dict[str, dict[str, float]]:
        return {name: dict(router.weights) for name, router in sorted(self.routers.items())}


def _example(parts: int) -> str:
    return '{"production": 95, "canary": 5}' if parts == 2 else '{"percent": 5}'


class AdminError(Exception):
    """The admin API could not be reached or refused the change; the message says which."""


def set_weight(admin_url: str, service: str, environment: str, percent: float, timeout: float = 5.0) -> dict[str, float]:
    """What ``edge weight SERVICE ENV PCT`` does: one PUT, and the split the server now applies."""
    url = f"{admin_url.rstrip('/')}/weights/{service}/{environment}"
    data = json.dumps({"percent": percent}).encode()
    request = urllib.request.Request(url, data=data, method="PUT", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())[service]
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError):
            message = exc.reason
        raise AdminError(f"{url}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"cannot reach the admin API at {admin_url} ({reason}): is `edge serve` running?") from None
