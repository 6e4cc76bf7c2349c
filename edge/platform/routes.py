"""Public routes, as Workers' route patterns: ``example.com/*``, ``*.example.com/api/*``.

A service with no route is private: the ingress cannot reach it, only bindings can. When several
patterns match, the most specific wins (Cloudflare's rule): an exact host beats a wildcard host, and
a longer path beats a shorter one.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Generic, NamedTuple, TypeVar

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


class PathMatch(NamedTuple):
    """How a path matched a template, as the reference gateway ranks matches: ``exact`` ones
    first, then more ``count`` (matched segments, the empty one before the first "/"
    included), then one without the ``wildcard`` first."""

    params: dict[str, str]
    count: int  # type: ignore[assignment]  # a field named as tuple's method: the gateway's word for it
    exact: bool
    wildcard: bool


class PathTemplate:
    """A gateway path (seed 004's ``paths[].path``): ``/users/{id}``, ``/files/{.+}``.

    Matched as the reference project (``irensaltali/serverlessapigateway``, ``PathOperator``)
    matches: segment by segment, ``{name}`` takes any one segment, an empty one too (``/users/``
    matches ``/users/{id}`` with ``id`` ""), and is handed to the hooks as a path parameter;
    ``{.+}``, last only, takes whatever follows, nothing included (``/files`` and ``/files/a/b``
    both match ``/files/{.+}``). A match where every segment was a literal is ``exact``, and so,
    as in the reference, is a wildcard's that took exactly one segment. Templates are checked
    more strictly than the reference does (a parameter is a whole segment, named once; the
    wildcard last): those are configuration errors there, found by hand.
    """

    __slots__ = ("text", "_segments")

    WILDCARD = "{.+}"

    def __init__(self, text: str) -> None:
        if not text.startswith("/"):
            raise ValueError(f'expected a path starting with "/", like "/users/{{id}}", got {text!r}')
        segments = text.split("/")
        names: set[str] = set()
        for index, segment in enumerate(segments):
            if segment == self.WILDCARD:
                if index != len(segments) - 1:
                    raise ValueError(f"expected {self.WILDCARD} only as the last segment, got {text!r}")
                continue
            if "{" in segment or "}" in segment:
                name = segment[1:-1]
                if not (segment.startswith("{") and segment.endswith("}") and name.isidentifier()):
                    raise ValueError(f"expected a path parameter as a whole segment, like {{id}}, got {segment!r} in {text!r}")
                if name in names:
                    raise ValueError(f"expected each path parameter once, {{{name}}} appears twice in {text!r}")
                names.add(name)
        self.text = text
        self._segments = segments

    def match(self, path: str) -> PathMatch | None:
        """How ``path`` matches, or None."""
        config, request = self._segments, path.split("/")
        wildcard = config[-1] == self.WILDCARD
        if len(request) != len(config) if not wildcard else len(request) < len(config) - 1:
            return None
        params: dict[str, str] = {}
        count, exact = 0, True
        for segment, part in zip(config, request):
            if segment == self.WILDCARD:
                count = min(len(config), len(request))
                break
            if segment.startswith("{"):
                exact = False
                params[segment[1:-1]] = part
            elif segment != part:
                return None
            count += 1
        else:
            exact = exact and len(config) == len(request)  # a wildcard path one segment short
        return PathMatch(params, count, exact and count == len(config) == len(request), wildcard)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"PathTemplate({self.text!r})"
