"""Access-log formats as servers write them, each translated into one regular expression.

A format is given as nginx's ``log_format`` writes it (``$remote_addr - $remote_user [$time_local]
"$request" $status $body_bytes_sent``) or as Apache's ``LogFormat`` does (``%h %l %u %t "%r" %>s %b``;
``\\"`` as httpd.conf escapes a quote is read as ``"``). What replay reads from a line:

* the time: ``$time_local`` or ``$time_iso8601`` (whole seconds), ``$msec`` (seconds since the
  epoch, milliseconds); Apache ``%t``;
* the request: ``"$request"`` (the request line, in quotes as nginx writes it; Apache ``"%r"``),
  or ``$request_method`` and ``$request_uri``;
* headers: each ``$http_NAME`` (``$http_x_forwarded_for`` is ``x-forwarded-for``; Apache
  ``%{Name}i``); "-" is no header;
* the request time: ``$request_time`` (seconds, milliseconds) and ``$upstream_response_time``
  ("-" when nginx answered itself, "0.010, 0.020" or "0.010 : 0.020" when it tried several
  upstreams or redirected internally: their sum, all the request spent upstream); Apache ``%D``
  (microseconds), ``%T`` (whole seconds), ``%{s}T``, ``%{ms}T``, ``%{us}T``. With both, the
  upstream's when it has one: the application's time, without the client's network;
* what the request got, which replay does not send but ``edge fit`` reads: the status
  (``$status``; Apache ``%s``, ``%>s``), the body's bytes (``$body_bytes_sent``; ``%b``, ``%B``)
  and the host (``$host``, ``$server_name``; ``%v``, ``%V``; else a logged ``Host`` header,
  ``$http_host`` or ``%{Host}i``, which stays a header). Each matches what any other field
  would, so a line reads as it did before they were read; a value that is not a number ("-") is None.

A server's escapes in the request, headers and host (nginx's ``\\xHH``, Apache's ``\\"``) are read
back as what came (``unescape``).

nginx writes a line when its request ends, and stamps it then: the request arrived its
``$request_time`` (else its upstream time) before the stamp. Apache's ``%t`` is when it arrived.

Any other variable or directive matches a field: the characters up to the one that follows it in
the format (inside quotes, up to the closing quote, backslash escapes allowed). Every repetition is
possessive, so a line that does not match fails at once rather than backtracking.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any, Callable, Literal, cast

import msgspec

MAX_REQUEST_TIME = 366 * 86400.0
"""A logged request time, at most: a year (a websocket's line records its whole connection)."""

_NGINX_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_APACHE_DIRECTIVE = re.compile(r"%(?:[<>]|!?\d+(?:,\d+)*)?(?:\{([^}]*)\})?([a-zA-Z%])")
_NUMBER = r"\d++(?:\.\d++)?+"
_QUOTED_TEXT = r'(?:[^"\\]++|\\.)*+'
_PATTERNS = {
    "time_local": r"[^\s\]\"]++ [^\s\]\"]++",  # 10/Oct/2000:13:55:36 -0700
    "time_iso": r"[^\s\]\"]++",
    "msec": _NUMBER,
    "apache_time": r"\[(?P<time>[^\]]++)\]",  # %t: the brackets are the directive's
    "request": _QUOTED_TEXT,
    "method": r"[^\s\"]++",
    "uri": r"[^\s\"]++",
    "seconds": rf"-|{_NUMBER}",
    "upstream": rf"(?:-|{_NUMBER})(?:(?:, | : )(?:-|{_NUMBER}))*+",
}
_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6}
_UPSTREAM_SEPARATOR = re.compile(r", | : ")
Kind = Literal["time_local", "time_iso", "msec", "apache_time", "request", "method", "uri", "seconds", "upstream", "header", "field",
               "status", "bytes", "host"]


class Unreadable(Exception):
    """A line (or a JSON document) that cannot be read: the message says what was expected; ``line``
    is the line of a multi-line document where the reader found it."""

    def __init__(self, expected: str, line: int = 1) -> None:
        super().__init__(expected)
        self.line = line


class LogFormat(msgspec.Struct, frozen=True):
    """A compiled format: its groups are ``time``, ``request`` (or ``method`` and ``uri``),
    ``rt`` (the request time, ``per_second`` units a second), ``upstream`` and ``h0``, ``h1``... (``headers``)."""

    label: str
    """What the report calls it: "clf", "nginx log_format" or "Apache LogFormat"."""
    pattern: re.Pattern[str]
    expected: str
    """What a line that does not match was expected to be."""
    time: Literal["time_local", "time_iso", "msec"]
    headers: tuple[tuple[str, str], ...] = ()
    """(group, header name) of each header the format logs."""
    per_second: float = 1.0
    """Units of the request time in a second (1e6: Apache's %D, microseconds)."""
    stamped_at_end: bool = False
    """nginx writes the time a request ended (its line is written then); Apache's %t is when it arrived."""
    status: bool = False
    """The format logs the status (group ``status``)."""
    bytes: bool = False
    """The format logs the body's bytes (group ``bytes``)."""
    host_groups: tuple[str, ...] = ()
    """The groups a host is read from, the first logged one winning: ``host``, then a ``Host`` header's."""

    @property
    def whole_seconds(self) -> bool:
        return self.time != "msec"


class Line(msgspec.Struct, array_like=True):
    """What one line records."""

    at: float
    """The line's time stamp, seconds since the epoch."""
    method: str
    target: str
    headers: list[tuple[str, str]]
    time: float | None
    """The request's service time, seconds: its upstreams' when logged, else its own (None: the line has neither)."""
    elapsed: float = 0.0
    """Seconds from the request's arrival to the stamp (nginx stamps a line when its request ends)."""
    status: int | None = None
    """The status answered, when the line logs it (replay does not need it; ``edge fit`` does)."""
    bytes: int | None = None
    """The response body's bytes, when logged."""
    host: str | None = None
    """The host the request was for, lower case, when logged."""


_QUOTED = r'"(?P<{}>' + _QUOTED_TEXT + ')"'
CLF = LogFormat(
    label="clf",
    pattern=re.compile(
        r'^\S+ \S+ \S+ \[(?P<time>[^\]]+)\] ' + _QUOTED.format("request") + r' (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
        + r'(?: ' + _QUOTED.format("h0") + ' ' + _QUOTED.format("h1") + r')?+'
        # and any further fields a server adds (nginx's main adds "$http_x_forwarded_for"; others
        # `rt=0.012 urt="0.010"`): each a run of quoted strings and other characters, unread
        + r'(?: (?:"' + _QUOTED_TEXT + r'"|[^\s"]++)++)*+\s*$'
    ),
    expected='expected a Common or Combined Log Format line: HOST IDENT USER [TIME] "METHOD PATH PROTOCOL" STATUS BYTES '
             '["REFERER" "USER-AGENT"], then any other fields',
    time="time_local",
    headers=(("h0", "referer"), ("h1", "user-agent")),
    status=True,
    bytes=True,
)


@functools.lru_cache(maxsize=64)
def compile_format(text: str) -> LogFormat:
    """The parser of an nginx or Apache format; a ValueError says what the format lacks."""
    nginx = _NGINX_VARIABLE.search(text) is not None
    if not nginx and _APACHE_DIRECTIVE.search(text) is None:
        raise ValueError("expected one of clf, jsonl, har, or a log format: nginx's log_format "
                         "('$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent') or Apache's "
                         f"LogFormat ('%h %l %u %t \"%r\" %>s %b'), got {text!r}")
    text = text.replace('\\"', '"')
    items = _nginx_items(text) if nginx else _apache_items(text)
    regex: list[str] = ["^"]
    quoted, headers = False, 0
    named: dict[str, tuple[Kind, str, Any]] = {}  # group -> (kind, variable, a header's name or the request time's units)
    for index, item in enumerate(items):
        if isinstance(item, str):
            regex.append(re.escape(item))
            quoted ^= item.count('"') % 2 == 1
            continue
        kind, name, header = item
        if kind == "request" and not quoted:
            raise ValueError(f'expected {name} in double quotes ("{name}"), as a request line has spaces; got {text!r}')
        after = items[index + 1] if index + 1 < len(items) else None
        pattern = _PATTERNS.get(kind) or _field(quoted, after if isinstance(after, str) else None)
        group = {"time_local": "time", "time_iso": "time", "msec": "time", "apache_time": "time", "seconds": "rt"}.get(kind, kind)
        if kind == "header":
            group, headers = f"h{headers}", headers + 1
        if kind == "field" or group in named:  # Python's patterns name a group once: the first is read
            regex.append(f"(?:{pattern.replace('(?P<time>', '(?:')})")
            continue
        named[group] = (kind, name, header)
        regex.append(pattern if kind == "apache_time" else f"(?P<{group}>{pattern})")
    regex.append(r"\s*$")
    if "time" not in named or ("request" not in named and not {"method", "uri"} <= named.keys()):
        lacking = "time" if "time" not in named else "request"
        raise ValueError("expected a log format with the request's time ($time_local, $time_iso8601 or $msec; Apache %t) and its "
                         f'request ("$request", or $request_method and $request_uri; Apache "%r"): this one has no {lacking}, got {text!r}')
    time_kind = named["time"][0]
    return LogFormat(
        label="nginx log_format" if nginx else "Apache LogFormat",
        pattern=re.compile("".join(regex)),
        expected=f"expected a line of the format given ({text})",
        time="time_local" if time_kind == "apache_time" else cast(Literal["time_local", "time_iso", "msec"], time_kind),
        headers=tuple((group, str(header)) for group, (kind, _, header) in named.items() if kind == "header"),
        per_second=float(named["rt"][2]) if "rt" in named else 1.0,
        stamped_at_end=nginx,
        status="status" in named,
        bytes="bytes" in named,
        host_groups=tuple(group for group, (kind, _, header) in named.items() if kind == "host" or (kind == "header" and header == "host")),
    )


Item = str | tuple[Kind, str, object]
"""A literal, or a variable: (kind, as written, the header name or a request time's units a second)."""


def _nginx_items(text: str) -> list[Item]:
    known: dict[str, tuple[Kind, object]] = {
        "time_local": ("time_local", None), "time_iso8601": ("time_iso", None), "msec": ("msec", None),
        "request": ("request", None), "request_method": ("method", None), "request_uri": ("uri", None),
        "request_time": ("seconds", 1.0), "upstream_response_time": ("upstream", None),
        "status": ("status", None), "body_bytes_sent": ("bytes", None), "host": ("host", None), "server_name": ("host", None),
    }
    items: list[Item] = []
    at = 0
    for match in _NGINX_VARIABLE.finditer(text):
        items.append(text[at:match.start()])
        name = match[1] or match[2]
        kind, extra = known.get(name, ("header", name[5:].replace("_", "-")) if name.startswith("http_") else ("field", None))
        items.append((kind, f"${name}", extra))
        at = match.end()
    items.append(text[at:])
    return [item for item in items if item != ""]


def _apache_items(text: str) -> list[Item]:
    items: list[Item] = []
    at = 0
    for match in _APACHE_DIRECTIVE.finditer(text):
        items.append(text[at:match.start()])
        argument, letter = match[1], match[2]
        item: Item
        if letter == "%":
            item = "%"
        elif letter == "t" and argument is None:
            item = ("apache_time", "%t", None)
        elif letter == "r":
            item = ("request", "%r", None)
        elif letter == "D":
            item = ("seconds", "%D", _PER_SECOND["us"])
        elif letter == "T" and argument in (None, "s", "ms", "us"):
            item = ("seconds", match[0], _PER_SECOND[argument or "s"])
        elif letter == "i" and argument:
            item = ("header", match[0], argument.lower())
        elif letter == "s" and argument is None:
            item = ("status", match[0], None)
        elif letter in "bB" and argument is None:
            item = ("bytes", match[0], None)
        elif letter in "vV" and argument is None:
            item = ("host", match[0], None)
        else:
            item = ("field", match[0], None)
        items.append(item)
        at = match.end()
    items.append(text[at:])
    return [item for item in items if item != ""]


def _field(quoted: bool, following: str | None) -> str:
    """A value the format logs and replay does not read: up to the character after it."""
    stop = re.escape(following[0]) if following and not following[0].isspace() and following[0] != '"' else ""
    if quoted:
        return rf'(?:[^"\\{stop}]++|\\.)*+'
    return rf'[^\s"{stop}]*+'


def read_line(fmt: LogFormat, line: str) -> Line:
    """What ``line`` records, in ``fmt``; Unreadable says what was expected."""
    match = fmt.pattern.match(line)
    if match is None:
        raise Unreadable(fmt.expected)
    at = _time(fmt.time, match["time"])
    if "request" in fmt.pattern.groupindex:
        parts = match["request"].split(" ")
        if len(parts) != 3:
            raise Unreadable(f'expected a request line "METHOD PATH PROTOCOL", got "{match["request"][:200]}"')
        method, target = parts[0], parts[1]
    else:
        method, target = match["method"], match["uri"]
    if "\\" in target:
        target = unescape(target, _target_byte)
    if "\\" in method:
        method = unescape(method)
    headers = [(name, unescape(value) if "\\" in value else value)
               for group, name in fmt.headers if (value := match[group]) not in (None, "", "-")]
    whole, upstream = _request_times(fmt, match)
    took = whole if whole is not None else upstream
    host = None
    for group in fmt.host_groups:
        if (value := match[group]) not in (None, "", "-"):
            host = (unescape(value) if "\\" in value else value).lower()
            break
    # a status or a size as logged; None for "-" or anything else that is not a whole number (inlined: every line)
    status = int(text) if fmt.status and (text := match["status"]).isdigit() and len(text) < 20 else None
    size = int(text) if fmt.bytes and (text := match["bytes"]).isdigit() and len(text) < 20 else None
    return Line(at, method, target, headers, upstream if upstream is not None else whole,
                took if fmt.stamped_at_end and took is not None else 0.0, status, size, host)


_ESCAPE = re.compile(r'\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|(["\\/bfnrtv]))')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _header_byte(code: int) -> str:
    """A logged byte in a header or a method: the character of that code, as a fetch ``Headers``
    holds a byte it received (a ByteString: one code unit a byte)."""
    return chr(code)


def _target_byte(code: int) -> str:
    """A logged byte in a request target: ASCII as itself, any other percent-encoded, as a URL
    parser encodes the bytes of a raw UTF-8 target (``/caf\\xC3\\xA9`` is ``/caf%C3%A9``)."""
    return chr(code) if code < 0x80 else f"%{code:02X}"


def unescape(text: str, byte: Callable[[int], str] = _header_byte) -> str:
    """A logged value as it was received. Servers escape what would break a line or its quotes:
    nginx writes ``"``, ``\\`` and bytes below 0x20 or above 0x7E as ``\\xHH`` (``escape=json``:
    ``\\"``, ``\\\\``, ``\\n``, ``\\u00HH``); Apache writes ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and other bytes
    as ``\\xhh``. Read as they are, a quote in a query would be replayed as ``\\x22``, which a URL
    parser turns into ``/x22`` (a backslash is a slash in an http URL): another path. A backslash
    before anything else stays as it is."""

    def one(match: re.Match[str]) -> str:
        hexa, code, simple = match.groups()
        if hexa is not None:
            return byte(int(hexa, 16))
        if code is not None:
            point = int(code, 16)
            # no server writes half of a UTF-16 pair: kept as written rather than made a lone surrogate
            return match.group(0) if 0xD800 <= point <= 0xDFFF else chr(point)
        return _SIMPLE[simple]

    return _ESCAPE.sub(one, text)


def _time(kind: str, text: str) -> float:
    try:
        if kind == "msec":
            return float(text)
        return _local_time(text) if kind == "time_local" else _iso_time(text)
    except ValueError:
        example = "[10/Oct/2000:13:55:36 -0700]" if kind == "time_local" else "2000-10-10T13:55:36-07:00"
        raise Unreadable(f"expected a time like {example}, got {text!r}") from None


@functools.lru_cache(maxsize=1024)
def _local_time(text: str) -> float:
    """Cached: a busy log repeats each second's stamp on many lines, and strptime is half the cost of a line."""
    return datetime.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp()


@functools.lru_cache(maxsize=1024)
def _iso_time(text: str) -> float:
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:  # no zone: read as UTC, not as this machine's local time
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _request_times(fmt: LogFormat, match: re.Match[str]) -> tuple[float | None, float | None]:
    """(the request's time, its upstreams' time), seconds, as far as the line logs them."""
    groups = fmt.pattern.groupindex
    whole = upstream = None
    if "rt" in groups and match["rt"] not in (None, "-"):
        whole = float(match["rt"]) / fmt.per_second  # a division: 1234 µs is 0.001234 s, not 0.0012339999
    if "upstream" in groups and match["upstream"] is not None:
        times = [float(t) for t in _UPSTREAM_SEPARATOR.split(match["upstream"]) if t != "-"]
        upstream = round(sum(times), 6) if times else None  # 0.1 + 0.2 logged is 0.3 s, not 0.30000000000000004
    for seconds in (whole, upstream):
        if seconds is not None and not seconds <= MAX_REQUEST_TIME:  # `not`: 400 digits make an infinite float
            raise Unreadable(f"expected a request time of at most {MAX_REQUEST_TIME:.0f} s (a year), got {seconds:,.3f} s")
    return whole, upstream
