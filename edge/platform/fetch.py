"""The fetch API objects that worker code sees: ``Headers``, ``Request`` and ``Response``.

They follow the WHATWG fetch / Cloudflare Workers semantics that a worker relies on, so that code
written against this simulator behaves like it would on the platform. The one that bites most often
is that a body can be read once: forwarding a request to two services needs ``request.clone()``.
Bodies are held as ``bytes`` (no streams): a simulation only needs their content and size.

These objects are built millions of times per simulated run, so constructors do as little as they
can: URLs are parsed only when ``host``/``path``/``query`` is asked for, clones share the immutable
body bytes, and header names are validated once per distinct spelling, then cached.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, ClassVar, Union, cast
from urllib.parse import urlsplit

import ada_url
import msgspec

__all__ = ["BodyUsedError", "Headers", "InvalidURLError", "Request", "Response"]

_HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ABSOLUTE_URL_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]")

# Header names come from a small vocabulary, so validating each spelling once and remembering its
# lowercase form turns validation plus lowercasing into one dict lookup. The bound keeps a workload
# that invents names (``x-trace-<n>``) from growing it without limit; past it names are still
# validated, just not remembered.
_LOWERCASE_OF_VALID_NAME: dict[str, str] = {}
_MAX_REMEMBERED_NAMES = 4096

# Leading/trailing spaces and tabs are dropped from values, as fetch does.
_HTTP_WHITESPACE = " \t"

_SET_COOKIE = "set-cookie"
_CONTENT_TYPE = "content-type"
_TEXT_PLAIN_CONTENT_TYPE = ((_CONTENT_TYPE, "text/plain;charset=UTF-8"),)
_JSON_CONTENT_TYPE = ((_CONTENT_TYPE, "application/json"),)

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]
BodyInit = Union[str, bytes, bytearray, memoryview, None]


def _admit_name(name: object) -> str:
    """Validate a header name not seen before and return its lowercase form (the cache miss path)."""
    if not isinstance(name, str):
        raise TypeError(f"header name must be a str, not {type(name).__name__}")
    if _HTTP_TOKEN.fullmatch(name) is None:
        raise TypeError(
            f"invalid header name {name!r}: a name must be a non-empty HTTP token "
            "(letters, digits and !#$%&'*+-.^_`|~)"
        )
    lowercase = name.lower()
    if len(_LOWERCASE_OF_VALID_NAME) < _MAX_REMEMBERED_NAMES:
        _LOWERCASE_OF_VALID_NAME[name] = lowercase
    return lowercase


def _normalized_value(value: object, what: str = "header value") -> str:
    """Reject what would let a value forge extra lines of an HTTP/1.1 message (header injection)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise TypeError(f"invalid {what}: it must not contain CR, LF or NUL characters")
    return value.strip(_HTTP_WHITESPACE)


def _entries_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``Headers.append`` for each pair, inlined: headers built from a dict are the common case, and
    a method call per header is a quarter of the cost."""
    entries: dict[str, tuple[tuple[str, str], ...]] = {}
    for name, value in pairs:
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        pair = (name, _normalized_value(value))
        existing = entries.get(lowercase)
        entries[lowercase] = (pair,) if existing is None else existing + (pair,)
    return entries


class Headers:
    """Case-insensitive, multi-valued HTTP headers with the fetch ``Headers`` semantics.

    Each lowercase name maps to a tuple of ``(name as given, value)`` pairs. Tuples rather than
    lists make ``copy()`` a shallow ``dict.copy()``: copies can share them because nothing mutates
    a tuple, and copying happens on every clone. The original spelling is kept for ``raw()``, which
    writes HTTP/1.1 messages where some peers care about case.
    """

    __slots__ = ("_entries",)

    _entries: dict[str, tuple[tuple[str, str], ...]]

    def __init__(self, init: HeadersInit = None) -> None:
        if init is None:
            self._entries = {}
        elif isinstance(init, Headers):
            self._entries = init._entries.copy()
        else:
            pairs = init.items() if isinstance(init, (dict, Mapping)) else init
            try:
                self._entries = _entries_from_pairs(pairs)
            except ValueError as exc:  # a "pair" of the wrong length failed to unpack
                raise TypeError(f"each header must be a (name, value) pair: {exc}") from None

    def append(self, name: str, value: str) -> None:
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        pair = (name, _normalized_value(value))
        entries = self._entries
        existing = entries.get(lowercase)
        entries[lowercase] = (pair,) if existing is None else existing + (pair,)

    def get(self, name: str) -> str | None:
        """All values of ``name`` joined with ", ", as fetch does; None when absent."""
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        pairs = self._entries.get(lowercase)
        if pairs is None:
            return None
        if len(pairs) == 1:
            return pairs[0][1]
        return ", ".join([value for _, value in pairs])

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` separately: the only correct way to read ``Set-Cookie``,
        whose values contain commas and so cannot survive being joined."""
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        return [value for _, value in self._entries.get(lowercase, ())]

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name``; an existing name keeps its place in ``raw()``."""
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        self._entries[lowercase] = ((name, _normalized_value(value)),)

    def delete(self, name: str) -> None:
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        self._entries.pop(lowercase, None)

    def has(self, name: str) -> bool:
        lowercase = _LOWERCASE_OF_VALID_NAME.get(name) or _admit_name(name)
        return lowercase in self._entries

    __contains__ = has

    def items(self) -> list[tuple[str, str]]:
        """``(lowercase name, value)`` pairs sorted by name, values joined, as fetch iterates.

        ``Set-Cookie`` is the fetch exception: each of its values is its own pair.
        """
        entries = self._entries
        result: list[tuple[str, str]] = []
        for lowercase in sorted(entries):
            pairs = entries[lowercase]
            if len(pairs) == 1:
                result.append((lowercase, pairs[0][1]))
            elif lowercase == _SET_COOKIE:
                result.extend([(lowercase, value) for _, value in pairs])
            else:
                result.append((lowercase, ", ".join([value for _, value in pairs])))
        return result

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def raw(self) -> list[tuple[str, str]]:
        """``(name as given, value)`` pairs, for writing HTTP/1.1 header lines.

        Names come in the order they were first added, and the values of one name stay together in
        the order they were added. That is all the order HTTP gives meaning to (RFC 9110, 5.3):
        lines with different names may be reordered freely.
        """
        return [pair for pairs in self._entries.values() for pair in pairs]

    def copy(self) -> Headers:
        """A copy of the same kind: a clone of a request whose headers are immutable has immutable
        headers too (the fetch standard's clone keeps the guard); ``Headers(other)`` is mutable."""
        duplicate = object.__new__(type(self))
        duplicate._entries = self._entries.copy()
        return duplicate

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        """Equal when every name has the same values in the same order; the case of names and the
        order of distinct names do not count, as they carry no meaning in HTTP."""
        if not isinstance(other, Headers):
            return NotImplemented
        return self._values_by_name() == other._values_by_name()

    def _values_by_name(self) -> dict[str, list[str]]:
        return {lowercase: [value for _, value in pairs] for lowercase, pairs in self._entries.items()}

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        """Names only: values are often credentials, and reprs end up in logs and test output."""
        return f"Headers({sorted(self._entries)!r})"


class ImmutableHeaders(Headers):
    """The headers of a request the platform delivered to a worker, or of a response a binding
    returned: reading them is as ever, changing them is a ``TypeError``, as on Cloudflare (code
    that does it works on edge otherwise, and fails there). A copy is mutable: ``Request(request)``,
    ``Headers(request.headers)``.

    Made by ``freeze``, which changes the class of the headers in place: one assignment per hop,
    no copy of headers that are mostly only read.
    """

    __slots__ = ()

    def _refuse(self, *_: object) -> None:
        raise TypeError("Can't modify immutable headers.")

    append = set = delete = _refuse  # type: ignore[assignment]


def freeze(headers: Headers) -> None:
    """Make ``headers`` immutable in place (see ``ImmutableHeaders``)."""
    if type(headers) is Headers:
        headers.__class__ = ImmutableHeaders


class InvalidURLError(TypeError, ValueError):
    """A URL whose host cannot be parsed, found when its parts are first read (URLs are parsed
    lazily). A TypeError as fetch's invalid-URL error is, and a ValueError as ``urlsplit``'s."""


class BodyUsedError(TypeError):
    """A body was read, forwarded or cloned after it had been read.

    A subclass of TypeError because that is what fetch throws, so ``except TypeError`` written
    with the platform in mind still catches it.
    """


_BODY_USED_MESSAGE = "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."
"""workerd's words (the conformance suite checks them); in Python, ``clone()`` is how to read twice."""


def _to_body_bytes(body: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"body must be str, bytes, bytearray, memoryview or None, not {type(body).__name__}")


class _Body:
    """The read-once body shared by ``Request`` and ``Response``.

    The readers are ``async`` for parity with the platform, but never yield to trio: the body is
    already in memory, and in a virtual-time simulation every needless checkpoint costs speed.
    A null body is never marked used and reads as empty any number of times, as in fetch.
    """

    __slots__ = ("_body", "_body_used")

    _kind: ClassVar[str]  # "Request" or "Response", for error messages
    _body: bytes | None
    _body_used: bool

    def _init_body(self, body: BodyInit, headers: Headers) -> None:
        """Store the body; a str body gets fetch's default text content type unless one is set."""
        self._body_used = False
        if body is None or type(body) is bytes:
            self._body = body
            return
        if isinstance(body, str) and _CONTENT_TYPE not in headers._entries:
            headers._entries[_CONTENT_TYPE] = _TEXT_PLAIN_CONTENT_TYPE
        self._body = _to_body_bytes(body)

    def _consume(self) -> bytes:
        body = self._body
        if body is None:
            return b""
        if self._body_used:
            raise BodyUsedError(_BODY_USED_MESSAGE)
        self._body_used = True
        return body

    def _check_clonable(self) -> None:
        if self._body_used:
            raise BodyUsedError(_BODY_USED_MESSAGE)

    @property
    def body_used(self) -> bool:
        return self._body_used

    @property
    def body_size(self) -> int:
        """Length of the body in bytes, readable without consuming it (for transfer-cost models)."""
        body = self._body
        return 0 if body is None else len(body)

    async def bytes(self) -> builtins.bytes:  # plain `bytes` would name this method here
        return self._consume()

    array_buffer = bytes

    async def text(self) -> str:
        """The body decoded as UTF-8; invalid sequences become U+FFFD, as in fetch."""
        return self._consume().decode("utf-8", "replace")

    async def json(self) -> Any:
        body = self._consume()
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{self._kind} body is not valid JSON: {exc}") from exc


class Request(_Body):
    """An HTTP request as a worker receives and sends it.

    ``Request(other)`` copies ``other`` and takes over its body, leaving ``other`` used, as fetch's
    ``new Request(request)`` does; ``method``, ``headers`` and ``body`` given alongside override the
    copied ones (a given body leaves ``other``'s untouched).
    """

    __slots__ = ("_url", "_method", "_url_parts", "headers")
    _method: str
    headers: Headers

    _kind = "Request"
    _url_parts: tuple[str, str, str] | None  # (host, path, query) once asked for

    def __init__(
        self,
        url: str | Request,
        method: str | None = None,
        headers: HeadersInit = None,
        body: BodyInit = None,
    ) -> None:
        """``method`` defaults to GET, or to the copied request's method."""
        source: Request | None = None
        if isinstance(url, str):
            if _ABSOLUTE_URL_PREFIX.match(url) is None:
                raise TypeError(f"invalid URL {url!r}: a Request needs an absolute URL with a scheme and host")
            self._url = _whatwg(url)
            self._url_parts = None
        elif isinstance(url, Request):
            source = url
            self._url = source._url
            self._url_parts = source._url_parts
            if method is None:
                method = source._method
            if headers is None:
                headers = source.headers
        else:
            raise TypeError(f"url must be a str or a Request, not {type(url).__name__}")

        self._method = "GET" if method is None else _normalized_method(method)
        taking_source_body = body is None and source is not None and source._body is not None
        if (body is not None or taking_source_body) and self._method in ("GET", "HEAD"):
            raise TypeError("Request with GET/HEAD method cannot have body")
        self.headers = Headers(headers)
        if taking_source_body:
            self._body = source._consume()  # type: ignore[union-attr]
            self._body_used = False
        else:
            self._init_body(body, self.headers)

    @property
    def url(self) -> str:
        """The URL as the WHATWG URL parser gives it (scheme and host lower-cased, default port and
        dot segments gone, non-ASCII percent-encoded), as workerd gives a Request a worker builds;
        a request that arrived over HTTP keeps its URL as it came (``incoming``), as there."""
        return self._url

    @property
    def method(self) -> str:
        return self._method

    def _parts(self) -> tuple[str, str, str]:
        parts = self._url_parts
        if parts is None:
            try:
                split = urlsplit(self._url)
                host = split.hostname or ""
            except ValueError as exc:  # "http://[::1/": the constructor's cheap check let it through
                raise InvalidURLError(f"invalid URL {self._url!r}: {exc}") from None
            parts = self._url_parts = (host, split.path or "/", split.query)
        return parts

    @property
    def host(self) -> str:
        """The lowercase hostname, without port (and without brackets for IPv6)."""
        return self._parts()[0]

    @property
    def path(self) -> str:
        return self._parts()[1]

    @property
    def query(self) -> str:
        """The query string without its leading "?" ("" when there is none)."""
        return self._parts()[2]

    @classmethod
    def incoming(cls, url: str, method: str, headers: HeadersInit, body: bytes | None) -> Request:
        """A request as it arrived over HTTP: unlike one a worker builds, its URL is kept as it
        came, and a GET or HEAD may carry a body, which reaches the worker (as on workerd; RFC 9110
        gives it no meaning, but does not refuse it)."""
        get_with_body = body is not None and _normalized_method(method) in ("GET", "HEAD")
        request = cls(url, method=method, headers=headers, body=None if get_with_body else body)
        if get_with_body:
            request._body = body
        request._url, request._url_parts = url, None  # as it came: workerd does not normalize it either
        return request

    def clone(self) -> Request:
        """An independent copy; both this request and the copy can be read once each."""
        self._check_clonable()
        duplicate = object.__new__(type(self))
        duplicate._url = self._url
        duplicate._method = self._method
        duplicate._url_parts = self._url_parts
        duplicate.headers = self.headers.copy()
        duplicate._body = self._body
        duplicate._body_used = False
        return duplicate

    def __repr__(self) -> str:
        """Method and URL only: headers and body may carry credentials."""
        return f"<Request {self._method} {self._url}>"


# Methods as worker code usually spells them, mapped to their normal form, so the common case skips
# validation.
_NORMALIZED_METHODS = {
    spelling: method
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
    for spelling in (method, method.lower())
}


def _normalized_method(method: object) -> str:
    normalized = _NORMALIZED_METHODS.get(method) if isinstance(method, str) else None
    if normalized is not None:
        return normalized
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, not {type(method).__name__}")
    if _HTTP_TOKEN.fullmatch(method) is None:
        raise TypeError(f"invalid method {method!r}: a method must be a non-empty HTTP token")
    return method.upper()


# The reason phrases workerd writes (checked for every status from 200 to 599 by the conformance
# suite's oracle): Python's table with the current RFC 9110 wording where it has the old one, no
# 425, and for a status it does not know, its class's phrase.
_REASON_PHRASES = {status.value: status.phrase for status in HTTPStatus if status.value != 425} | {
    413: "Payload Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable", 418: "I'm a teapot",
}
_CLASS_PHRASES = {2: "Successful", 3: "Redirection", 4: "Client Error", 5: "Server Error"}
_NULL_BODY_STATUSES = frozenset((204, 205, 304))
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


class _ClassOrInstanceMethod:
    """Lets one name be both a class-level factory and an instance method.

    Needed because fetch has both ``Response.json(data)`` (build a JSON response) and
    ``await response.json()`` (parse the body), and worker code uses both spellings.
    """

    __slots__ = ("_on_class", "_on_instance")

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self._on_class = on_class
        self._on_instance = on_instance

    def __get__(self, instance: object, owner: type) -> Callable[..., Any]:
        if instance is None:
            return cast(Callable[..., Any], self._on_class.__get__(owner, type(owner)))
        return cast(Callable[..., Any], self._on_instance.__get__(instance, owner))


def _json_response(cls: type[Response], data: Any, status: int = 200, headers: HeadersInit = None) -> Response:
    """A response whose body is ``data`` encoded as JSON, typed application/json unless
    ``headers`` already says otherwise."""
    response = cls(msgspec.json.encode(data), status, None, headers)
    if _CONTENT_TYPE not in response.headers._entries:
        response.headers._entries[_CONTENT_TYPE] = _JSON_CONTENT_TYPE
    return response


class Response(_Body):
    """An HTTP response as a worker returns it."""

    __slots__ = ("_status", "_status_text", "_headers", "_redirected")

    _kind = "Response"
    _redirected: bool  # unset until a redirect is followed (``redirected``)

    def __init__(
        self,
        body: BodyInit = None,
        status: int = 200,
        status_text: str | None = None,
        headers: HeadersInit = None,
    ) -> None:
        """``status_text`` defaults to the reason phrase workerd writes for ``status`` (for a code it
        does not know, its class's: "Server Error" for 599)."""
        if type(status) is not int:
            if not isinstance(status, int) or isinstance(status, bool):
                raise ValueError(f"status must be an int in 200..599, not {status!r}")
            status = int(status)  # an HTTPStatus member, say: store the plain int
        if not 200 <= status <= 599:
            raise ValueError(f"status must be in 200..599, not {status}")
        if body is not None and status in _NULL_BODY_STATUSES:
            if body in ("", b""):  # empty is no content: allowed, as on workerd
                body = None
            else:
                raise TypeError(f"Response with null body status {status} cannot have a body")
        self._status = status
        self._status_text = (
            (_REASON_PHRASES.get(status) or _CLASS_PHRASES[status // 100])
            if status_text is None
            else _normalized_value(status_text, "status text")
        )
        self._headers = Headers(headers)
        self._init_body(body, self._headers)

    @property
    def headers(self) -> Headers:
        return self._headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        """Only a ``Headers``: the platform reads them after the worker is done (``Headers(...)``
        turns a dict or pairs into one)."""
        if type(headers) not in (Headers, ImmutableHeaders):
            raise TypeError(f"Response.headers must be a Headers, not {type(headers).__name__}: wrap it, Headers(...)")
        self._headers = headers

    json = _ClassOrInstanceMethod(_json_response, _Body.json)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"redirect status must be one of 301, 302, 303, 307, 308, not {status!r}")
        if not isinstance(url, str) or _ABSOLUTE_URL_PREFIX.match(url) is None:
            raise TypeError(f"invalid redirect URL {url!r}: it must be absolute, with a scheme and host")
        return cls(None, status, None, (("location", url),))

    @property
    def status(self) -> int:
        return self._status

    @property
    def status_text(self) -> str:
        return self._status_text

    @property
    def ok(self) -> bool:
        return 200 <= self._status <= 299

    @property
    def redirected(self) -> bool:
        """The answer to a fetch that followed at least one redirect (``follow_redirect``)."""
        return getattr(self, "_redirected", False)  # unset until a redirect is followed: nothing to pay per answer

    def clone(self) -> Response:
        """An independent copy; both this response and the copy can be read once each."""
        self._check_clonable()
        duplicate = object.__new__(type(self))
        duplicate._status = self._status
        duplicate._status_text = self._status_text
        duplicate._headers = self._headers.copy()
        duplicate._body = self._body
        duplicate._body_used = False
        return duplicate

    def __repr__(self) -> str:
        """Status only: headers and body may carry credentials."""
        return f"<Response {self._status}>"



REDIRECT_MODES = ("follow", "manual", "error")
"""fetch's ``redirect`` option; "follow" is the default."""
MAX_REDIRECTS = 20
"""Redirects one fetch follows before it fails, as the fetch standard says."""
_CONTENT_HEADERS = ("content-type", "content-length", "content-encoding", "content-language", "content-location")


@functools.lru_cache(maxsize=4096)  # a worker builds Requests for a few URLs, many times
def _whatwg(url: str) -> str:
    try:
        return ada_url.normalize_url(url)
    except ValueError:
        raise TypeError(f"invalid URL {url!r}") from None


def follow_redirect(request: Request, response: Response) -> Request | None:
    """The request a fetch that follows redirects sends after ``response``, as the fetch
    standard's HTTP-redirect fetch makes it; None when ``response`` is not one to follow (not a
    301, 302, 303, 307 or 308, or without a Location).

    The Location resolves against the request's URL. A POST answered 301 or 302, and anything but
    GET or HEAD answered 303, becomes a GET without its body and content headers; otherwise the
    method, headers and body (bytes, so they can be sent again) go on as they were.
    """
    if response._status not in REDIRECT_STATUSES:
        return None
    location = response._headers.get("location")
    if location is None:
        return None
    method, body = request._method, request._body
    headers = request.headers.copy()
    if (response._status in (301, 302) and method == "POST") or (response._status == 303 and method not in ("GET", "HEAD")):
        method, body = "GET", None
        for name in _CONTENT_HEADERS:
            headers.delete(name)
    try:
        url = ada_url.join_url(request._url, location)
    except ValueError:
        raise TypeError(f"invalid redirect Location {location!r}") from None
    return Request(url, method=method, headers=headers, body=body)


def checked_response(result: object) -> Response:
    """What a worker's ``fetch`` returned, as a plain ``Response``, or ``TypeError``.

    The platform reads the answer after the worker is done with it, in the ingress and in the
    caller of a binding: a wrong type there would fail far from its cause, in code that serves
    other requests too. The constructor and the ``headers`` setter check what a worker gives
    them; a subclass is copied into a plain ``Response``, so that no method it overrides runs in
    platform code. (Private fields are not guarded: a worker that writes ``_body`` is on its own.)
    """
    if not isinstance(result, Response):
        raise TypeError(f"fetch() must return a Response, returned {type(result).__name__}")
    if type(result) is Response:
        return result
    plain = object.__new__(Response)
    plain._status, plain._status_text, plain._headers = result._status, result._status_text, result._headers.copy()
    plain._body, plain._body_used = result._body, result._body_used
    return plain
