"""The client side of the admin API: what ``edge weight``, ``edge rollout``, ``edge versions`` and
``edge rollback`` send to a running ``edge serve``, and its token.

Apart from the server (``edge.live.admin``) so that those commands import the standard library
and nothing else: not trio, not the actors a server holds. One request each, never through a
proxy (a proxy would be handed the bearer token), an error the user can act on
(``AdminError``) for a refusal or an address nobody answers at.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from edge.platform.user_errors import EdgeError

MIN_TOKEN_LENGTH = 16


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be the admin token (without repeating it: it may be a real one)."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"expected at least {MIN_TOKEN_LENGTH} characters, got {len(token)}"
    if not all("!" <= c <= "~" for c in token):
        return "expected printable ASCII without spaces (it travels in an HTTP header)"
    return None


class AdminError(EdgeError):
    """The admin API could not be reached or refused the change; the message says which."""


def set_weight(admin_url: str, service: str, environment: str, percent: float, *, token: str, pause_rollout: bool = False,
               timeout: float = 5.0) -> dict[str, float]:
    """What ``edge weight SERVICE ENV PCT`` does: one PUT, and the split the server now applies."""
    query = "pause_rollout=1" if pause_rollout else ""
    return _ask(admin_url, "PUT", f"/weights/{service}/{environment}", {"percent": percent}, token=token, timeout=timeout, query=query)[service]


def rollouts(admin_url: str, service: str | None, *, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """What ``edge rollout status [SERVICE]`` shows: service -> its ``RolloutReport`` as JSON."""
    if service is None:
        return _ask(admin_url, "GET", "/rollouts", None, token=token, timeout=timeout)
    return {service: _ask(admin_url, "GET", f"/rollouts/{service}", None, token=token, timeout=timeout)}


def rollout_action(admin_url: str, service: str, action: str, *, token: str, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    """``edge rollout pause|resume|abort|approve SERVICE``: what the server did, and the rollout after it."""
    answer = _ask(admin_url, "POST", f"/rollouts/{service}/{action}", None, token=token, timeout=timeout)
    return answer["done"], answer["rollout"]


def versions(admin_url: str, environment: str, *, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """What ``edge versions SERVICE@ENV`` shows: the environment's history (``History`` as JSON)."""
    return _ask(admin_url, "GET", f"/versions/{environment}", None, token=token, timeout=timeout)


def rollback(admin_url: str, environment: str, to: int | None, message: str = "", *, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """What ``edge rollback SERVICE@ENV [--to N]`` does: one POST, and the history after it."""
    return _ask(admin_url, "POST", f"/versions/{environment}/rollback", {"to": to, "message": message}, token=token, timeout=timeout)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that never goes through a proxy: ``http_proxy`` in the environment would hand the
bearer token to the proxy (and for 127.0.0.1 make no sense). The admin API is reached directly."""


def _ask(admin_url: str, method: str, path: str, body: Any, *, token: str, timeout: float, query: str = "") -> Any:
    url = f"{admin_url.rstrip('/')}{urllib.parse.quote(path, safe='/@')}" + (f"?{query}" if query else "")
    headers = {"authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _DIRECT.open(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError):
            message = exc.reason
        if exc.code == 401:
            message = f"the admin API refused the token ({message}): use the one `edge serve` printed at start"
        raise AdminError(f"{url}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"cannot reach the admin API at {admin_url} ({reason}): is `edge serve` running?") from None
