"""Public routes, as Workers' route patterns: ``example.com/*``, ``*.example.com/api/*``.

A service with no route is private: the ingress cannot reach it, only bindings can. When several
patterns match, the most specific wins (Cloudflare's rule): an exact host beats a wildcard host, and
a longer path beats a shorter one.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class RoutePatternError(ValueError):
    pass


class RoutePattern:
    """A parsed pattern; ``str()`` is the text as written (what ``edge graph`` shows)."""

    __slots__ = ("text", "host", "wildcard_host", "path", "wildcard_path")

    def __init__(self, text: str, host: str, wildcard_host: bool, path: str, wildcard_path: bool) -> None:
        self.text = text
        self.host = host
        self.wildcard_host = wildcard_host
        self.path = path
        self.wildcard_path = wildcard_path

    @classmethod
    def parse(cls, text: object) -> RoutePattern:
        if not isinstance(text, str):
            raise RoutePatternError(f'expected a route like "example.com/*", got {text!r}')
        pattern = text.split("://", 1)[1] if "://" in text else text
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
        return cls(text, host.lower(), wildcard_host, path, wildcard_path)

    @property
    def specificity(self) -> tuple[int, int, int]:
        return (0 if self.wildcard_host else 1, len(self.host), len(self.path) * 2 + (0 if self.wildcard_path else 1))

    def matches(self, host: str, path: str) -> bool:
        """``host`` already lowercase."""
        if self.wildcard_host:
            if not (host == self.host or host.endswith("." + self.host)):
                return False
        elif host != self.host:
            return False
        return path.startswith(self.path) if self.wildcard_path else path == self.path

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"RoutePattern({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoutePattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class RouteTable(Generic[T]):
    """Patterns by host: an exact host is looked up, so that thousands of environments' preview
    hostnames cost a lookup rather than a scan; wildcard hosts are scanned after it (an exact host
    beats any wildcard). Each list is kept most specific first, equals in the order added."""

    def __init__(self) -> None:
        self._exact: dict[str, list[tuple[RoutePattern, T]]] = {}
        self._wildcard: list[tuple[RoutePattern, T]] = []

    def add(self, pattern: RoutePattern, target: T) -> None:
        routes = self._wildcard if pattern.wildcard_host else self._exact.setdefault(pattern.host, [])
        bisect.insort_right(routes, (pattern, target), key=_most_specific_first)

    def match(self, host: str, path: str) -> T | None:
        host = host.lower()
        for pattern, target in itertools.chain(self._exact.get(host, ()), self._wildcard):
            if pattern.matches(host, path):
                return target
        return None


def _most_specific_first(route: tuple[RoutePattern, object]) -> tuple[int, int, int]:
    host, length, path = route[0].specificity
    return (-host, -length, -path)


class PathTemplate:
    """A gateway path (seed 004's ``paths[].path``): ``/users/{id}``, ``/files/{.+}``.

    ``{name}`` matches one non-empty segment and is handed to the hooks as a path parameter;
    ``{.+}``, last only, matches one or more remaining segments. Of several templates matching a
    path the most specific wins, as in the seed's gateway: no wildcard before one, then more literal
    segments, then more segments.
    """

    __slots__ = ("text", "_segments", "_wildcard", "specificity")

    WILDCARD = "{.+}"

    def __init__(self, text: str) -> None:
        if not text.startswith("/"):
            raise ValueError(f'expected a path starting with "/", like "/users/{{id}}", got {text!r}')
        segments = text.split("/")[1:]
        self._wildcard = segments[-1] == self.WILDCARD
        if self._wildcard:
            segments.pop()
        names: set[str] = set()
        for segment in segments:
            if segment == self.WILDCARD:
                raise ValueError(f"expected {self.WILDCARD} only as the last segment, got {text!r}")
            if "{" in segment or "}" in segment:
                name = segment[1:-1]
                if not (segment.startswith("{") and segment.endswith("}") and name.isidentifier()):
                    raise ValueError(f"expected a path parameter as a whole segment, like {{id}}, got {segment!r} in {text!r}")
                if name in names:
                    raise ValueError(f"expected each path parameter once, {{{name}}} appears twice in {text!r}")
                names.add(name)
        self.text = text
        self._segments = [(s[1:-1], True) if s.startswith("{") else (s, False) for s in segments]
        literal = sum(1 for _, param in self._segments if not param)
        self.specificity = (0 if self._wildcard else 1, literal, len(self._segments))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` matches, else None."""
        parts = path.split("/")[1:]
        count = len(self._segments)
        if len(parts) < count + self._wildcard or (not self._wildcard and len(parts) != count):
            return None
        if self._wildcard and not "".join(parts[count:]):
            return None
        params: dict[str, str] = {}
        for (value, param), part in zip(self._segments, parts):
            if param:
                if not part:
                    return None
                params[value] = part
            elif part != value:
                return None
        return params

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"PathTemplate({self.text!r})"
