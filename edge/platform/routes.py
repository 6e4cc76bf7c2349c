"""Public routes, as Workers' route patterns: ``example.com/*``, ``*.example.com/api/*``.

A service with no route is private: the ingress cannot reach it, only bindings can. When several
patterns match, the most specific wins (Cloudflare's rule): an exact host beats a wildcard host, and
a longer path beats a shorter one.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class RoutePatternError(ValueError):
    pass


def _parse(pattern: str) -> tuple[str, bool, str, bool]:
    """(host, host is a *. wildcard, path, path ends with *)."""
    if "://" in pattern:
        pattern = pattern.split("://", 1)[1]
    host, slash, path = pattern.partition("/")
    if not host or not slash:
        raise RoutePatternError(f'expected a route like "example.com/*" or "*.example.com/api/*", got {pattern!r}')
    wildcard_host = host.startswith("*.")
    if wildcard_host:
        host = host[2:]
    if "*" in host:
        raise RoutePatternError(f"expected '*' only as a leading '*.' in the host, got {pattern!r}")
    path = "/" + path
    wildcard_path = path.endswith("*")
    if wildcard_path:
        path = path[:-1]
    if "*" in path:
        raise RoutePatternError(f"expected '*' only at the end of the path, got {pattern!r}")
    return host.lower(), wildcard_host, path, wildcard_path


class RouteTable(Generic[T]):
    def __init__(self) -> None:
        self._routes: list[tuple[tuple[int, int, int], str, bool, str, bool, T]] = []

    def add(self, pattern: str, target: T) -> None:
        host, wild_host, path, wild_path = _parse(pattern)
        specificity = (0 if wild_host else 1, len(host), len(path) * 2 + (0 if wild_path else 1))
        self._routes.append((specificity, host, wild_host, path, wild_path, target))
        self._routes.sort(key=lambda route: route[0], reverse=True)

    def match(self, host: str, path: str) -> T | None:
        host = host.lower()
        for _, r_host, wild_host, r_path, wild_path, target in self._routes:
            if wild_host:
                if not (host == r_host or host.endswith("." + r_host)):
                    continue
            elif host != r_host:
                continue
            if path == r_path if not wild_path else path.startswith(r_path):
                return target
        return None
