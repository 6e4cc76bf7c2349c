"""Recorded traffic (``[[traffic]] replay = "access.log"``): a log read into arrival times and requests.

The formats, each giving what it records and nothing more:

* ``clf``: Common Log Format, one request per line (``HOST IDENT USER [TIME] "METHOD TARGET PROTO"
  STATUS BYTES``), or the Combined format (the same, then ``"REFERER" "USER-AGENT"``), which
  adds those two headers; any fields after those (nginx's ``main`` adds ``"$http_x_forwarded_for"``)
  are not read. The time is ``%d/%b/%Y:%H:%M:%S %z``.
* a log format, as nginx's ``log_format`` or Apache's ``LogFormat`` writes it: the time, the
  request, the ``$http_*`` headers and the request time it logs (``edge.scenario.logformat``).
* ``jsonl``: one JSON object per line with ``time`` (seconds as a number, or an ISO 8601 string),
  ``path`` (starting with "/", query included), ``method`` (default GET) and ``headers`` (an
  object of strings); and, when present, ``duration``: the request time in seconds (a number or a
  numeric string, as Caddy's JSON access log writes it), which ``service_time = "logged"`` serves
  the request in. Other fields are ignored, so a structured access log can be read as it is
  (``status``, ``bytes`` and ``host`` are kept for ``edge fit``; a ``duration``, ``status`` or
  ``bytes`` that is not a number is ignored as well).
* ``har``: a browser's HTTP Archive: each ``log.entries[i]`` gives ``startedDateTime``, and its
  ``request``'s method, URL (path and query kept: the host is the traffic group's ``base_url``)
  and every header except those the connection itself sets (``host``, ``content-length``,
  ``connection``, ``transfer-encoding``, HTTP/2 pseudo-headers such as ``:authority``). The
  entry's ``time`` (milliseconds, as the browser saw the whole exchange), else the sum of its
  ``timings`` (-1: not applicable, left out; ``ssl``, within ``connect``, not counted twice), is
  its request time; its ``response.status``,
  ``response.bodySize`` and the URL's host are kept for ``edge fit``.

A log with one-second resolution spreads the k requests logged in one second evenly over it (at s,
s + 1/k, ...) rather than sending a burst the original traffic never was. Bodies are not
replayed. Headers the connection itself sets (``host``, ``content-length``, ``transfer-encoding``...)
are dropped from JSON lines as from a HAR. A path with control characters, over 16 KB (Cloudflare's
URL limit), a line over 128 KB, JSON nested too deeply, and times over a year apart are refused
with their line. Times become offsets from the earliest request, in time order (a log is written
as requests finish, so its lines may be slightly out of order). Blank lines are skipped. A line
that cannot be read stops the load with its line number (``ReplayError``), or with ``on_error =
"skip"`` is skipped and counted (``Replay.skipped``): every internet-facing server logs TLS
handshakes sent to its HTTP port (``"\\x16\\x03\\x01..." 400``) and connections closed before a
request (``"-" 400 0``). A HAR is one JSON document, read whole or refused.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from typing import Any, Callable, Iterator

import msgspec

from edge.platform.fetch import Request
from edge.scenario.logformat import CLF, MAX_REQUEST_TIME, Line, Unreadable, compile_format, read_line

MAX_REPLAY_BYTES = 64 * 1024 * 1024
MAX_REPLAY_REQUESTS = 1_000_000
MAX_REPLAY_SPAN = 366 * 86400.0
"""Seconds from a file's first request to its last: a year, more than any log covers."""
MAX_TARGET_BYTES = 16 * 1024
"""A replayed path and query, at most: Cloudflare's URL limit (16 KB)."""
MAX_LINE_BYTES = 128 * 1024
"""A line of a log (CLF, JSON lines), at most: a request line and Cloudflare's 128 KB of headers."""
MAX_LISTED_SKIPS = 5
"""Skipped lines the report lists by number (all are counted)."""
FORMATS = ("clf", "jsonl", "har")
ON_ERROR = ("abort", "skip")
SERVICE_TIMES = ("logged", "model")
_DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"})
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # the bytes surrogateescape kept
_PLACEHOLDER = "http://replay.invalid"  # a host to build a Request with while checking a line


class ReplayError(Exception):
    """A replay file that cannot be read: ``where`` is "LINE" or a path inside a HAR."""

    def __init__(self, where: str, expected: str) -> None:
        super().__init__(f"{where}: {expected}")
        self.where = where
        self.expected = expected


class Entry(msgspec.Struct, array_like=True):
    at: float
    """Seconds after the earliest request of the file."""
    method: str
    target: str
    """Path and query, starting with "/"."""
    headers: list[tuple[str, str]]
    time: float | None = None
    """The request time the log records, in seconds (None: it records none)."""
    status: int | None = None
    """The status the log records (replay sends requests and does not need it; ``edge fit`` does)."""
    bytes: int | None = None
    """The response body's bytes the log records."""
    host: str | None = None
    """The host the request was for, lower case, when the log records it."""


class Replay(msgspec.Struct):
    """A replay file read: its requests in time order."""

    file: str
    """The path as the scenario gave it (reports name it so, the same wherever the run is)."""
    format: str
    """clf, jsonl, har, "nginx log_format" or "Apache LogFormat"."""
    entries: list[Entry]
    skipped: int = 0
    """Lines that could not be read, skipped (``on_error = "skip"``)."""
    skipped_lines: list[int] = []
    """The first ``MAX_LISTED_SKIPS`` of them, by line number."""

    @property
    def span(self) -> float:
        return self.entries[-1].at


class LoggedRequest(Request):
    """A replayed request with the time its log line records: a synthetic model serves it in that
    time (``actors.synthetic``). A clone (a router's retry) keeps it."""

    __slots__ = ("service_time",)

    def __init__(self, url: str, *, method: str, headers: list[tuple[str, str]], service_time: float) -> None:
        super().__init__(url, method=method, headers=headers)
        self.service_time = service_time

    def clone(self) -> LoggedRequest:
        duplicate = super().clone()
        duplicate.service_time = self.service_time  # type: ignore[attr-defined]
        return duplicate  # type: ignore[return-value]


def format_of(file: str, given: str | None) -> str:
    """The format asked for, else the one the file's extension says (a ``.log`` or anything else: clf)."""
    if given is not None:
        return given
    lower = file.lower()
    if lower.endswith(".har"):
        return "har"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "clf"


def check_format(format: str) -> None:
    """A format name, or a log format that can be read; a ValueError says what was expected."""
    if format not in FORMATS:
        compile_format(format)


class _Skips(msgspec.Struct):
    count: int = 0
    first: list[int] = []


def parse(data: bytes, *, file: str, format: str, on_error: str = "abort") -> Replay:
    """The requests of ``data``, a file in ``format`` (a name or a log format); a ReplayError names
    the first bad line, or with ``on_error = "skip"`` the first that is not a line's own problem."""
    if len(data) > MAX_REPLAY_BYTES:
        raise ReplayError("size", f"expected a replay file of at most {MAX_REPLAY_BYTES:,} bytes (64 MiB), got more")
    try:
        text, mixed = data.decode(), False
    except UnicodeDecodeError as exc:
        if format == "har":
            line = data[:exc.start].count(b"\n") + 1
            raise ReplayError(f"line {line}", "not UTF-8 text") from None
        text, mixed = data.decode(errors="surrogateescape"), True  # each line that is not UTF-8 is unreadable
    skips = _Skips()
    rows: Iterator[tuple[str, Line]]
    if format == "har":
        rows, label, spread = _har(text), format, False
    elif format == "jsonl":
        rows, label, spread = _lines(text, _jsonl, mixed, skips if on_error == "skip" else None), format, False
    else:
        fmt = CLF if format == "clf" else compile_format(format)
        rows, label, spread = _lines(text, functools.partial(read_line, fmt), mixed, skips if on_error == "skip" else None), fmt.label, fmt.whole_seconds
    timed: list[tuple[str, Line]] = []
    for where, row in rows:
        if len(timed) == MAX_REPLAY_REQUESTS:
            raise ReplayError(where, f"expected at most {MAX_REPLAY_REQUESTS:,} requests, got more")
        timed.append((where, row))
    if not timed:
        if skips.count:
            raise ReplayError("line 1", f"expected at least one request: all {skips.count:,} lines were unreadable (lines "
                                        f"{', '.join(map(str, skips.first))}{', ...' if skips.count > len(skips.first) else ''}); "
                                        "is replay_format the log's format?")
        raise ReplayError("line 1" if format != "har" else "log.entries", "expected at least one request, the file has none")
    if spread:
        timed = _spread(timed)
    for _, row in timed:  # after spreading: the stamps are what share a second
        row.at -= row.elapsed
    timed.sort(key=lambda entry: entry[1].at)  # stable: lines of one instant keep their order
    first, (where, last) = timed[0][1].at, timed[-1]
    if not last.at - first <= MAX_REPLAY_SPAN:  # `not`: an infinite span too (times of -1e308 and 1e308)
        raise ReplayError(where, f"expected every request within {MAX_REPLAY_SPAN / 86400:.0f} days (a year) of the first, "
                                 f"this one is {last.at - first:.3g} s after it")
    return Replay(file=file, format=label, entries=[Entry(row.at - first, row.method, row.target, row.headers, row.time, row.status, row.bytes, row.host)
                                                         for _, row in timed],
                  skipped=skips.count, skipped_lines=skips.first)


def _lines(text: str, read: Callable[[str], Line], mixed: bool, skips: _Skips | None) -> Iterator[tuple[str, Line]]:
    """Each line read (blank ones passed over); one that cannot be read stops with its number, or
    is counted in ``skips`` when skipping."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE_BYTES:
                raise Unreadable(f"expected a line of at most {MAX_LINE_BYTES:,} characters, got {len(line):,}")
            if mixed and _NOT_UTF8.search(line):
                raise Unreadable("not UTF-8 text")
            row = read(line)
            _check(row)
        except Unreadable as exc:
            if skips is None:
                raise ReplayError(f"line {number}", f'{exc} (on_error = "skip" skips unreadable lines)') from None
            skips.count += 1
            if len(skips.first) < MAX_LISTED_SKIPS:
                skips.first.append(number)
            continue
        yield f"line {number}", row


def _jsonl(line: str) -> Line:
    record = _json(line)
    if not isinstance(record, dict):
        raise Unreadable('expected a JSON object like {"time": 1.5, "method": "GET", "path": "/"}')
    when = record.get("time")
    if isinstance(when, str):
        when = _iso("time", when)
    elif not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
        raise Unreadable(f"time: expected seconds (a number) or an ISO 8601 time, got {when!r}")
    method = record.get("method", "GET")
    path = record.get("path")
    if not isinstance(method, str):
        raise Unreadable(f"method: expected a string, got {method!r}")
    if not isinstance(path, str):
        raise Unreadable(f'path: expected a string starting with "/", got {path!r}')
    headers = record.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise Unreadable("headers: expected an object of strings")
    kept = [(name, value) for name, value in headers.items() if name.lower() not in _DROPPED_HEADERS]
    host = record.get("host")
    return Line(float(when), method, path, kept, _seconds(record.get("duration")), 0.0, _whole(record.get("status")),
                _whole(record.get("bytes")), host.lower() if isinstance(host, str) and host else None)


def _seconds(value: Any, per_second: float = 1.0) -> float | None:
    """A logged request time (a number or a numeric string, in 1/``per_second`` s) in seconds; None
    for anything else, negative, or over a year."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    seconds = value / per_second
    return float(seconds) if 0 <= seconds <= MAX_REQUEST_TIME else None  # a NaN fails both


def _whole(value: Any) -> int | None:
    """A status or a size: a non-negative whole number, or a string of digits; None otherwise."""
    if isinstance(value, str) and value.isdigit() and len(value) < 20:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _json(text: str) -> Any:
    """``json.loads``, its every failure Unreadable: malformed JSON, nesting too deep for the
    parser (``RecursionError``) and numbers too long for an int (``ValueError``) alike."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise Unreadable("expected JSON nested less deeply (the parser gave up)") from None
    except ValueError as exc:
        raise Unreadable(f"expected JSON that can be read: {exc}") from None


def _har(text: str) -> Iterator[tuple[str, Line]]:
    try:
        archive = _json(text)
    except Unreadable as exc:
        raise ReplayError(f"line {exc.line}", str(exc)) from None
    log = archive.get("log") if isinstance(archive, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ReplayError("log.entries", "expected a HAR file: an object with log.entries, a list")
    for index, entry in enumerate(entries):
        where = f"log.entries[{index}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not isinstance(entry.get("startedDateTime"), str):
            raise ReplayError(where, "expected an entry with startedDateTime and request")
        url, method, headers = request.get("url"), request.get("method"), request.get("headers", [])
        if not isinstance(url, str) or "://" not in url:
            raise ReplayError(f"{where}.request.url", f"expected an absolute URL, got {url!r}")
        if not isinstance(method, str):
            raise ReplayError(f"{where}.request.method", f"expected a string, got {method!r}")
        if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str) for h in headers
        ):
            raise ReplayError(f"{where}.request.headers", 'expected a list of {"name": ..., "value": ...}')
        rest = url.split("://", 1)[1]
        target = "/" + rest.partition("/")[2].partition("#")[0]
        kept = [(h["name"], h["value"]) for h in headers
                if not h["name"].startswith(":") and h["name"].lower() not in _DROPPED_HEADERS]
        response = entry.get("response")
        response = response if isinstance(response, dict) else {}
        host = re.sub(r":\d*$", "", rest.partition("/")[0].partition("?")[0].rpartition("@")[2]).lower() or None
        try:
            row = Line(_iso("startedDateTime", entry["startedDateTime"]), method, target, kept, _har_time(entry), 0.0,
                       _whole(response.get("status")), _whole(response.get("bodySize")), host)
            _check(row)
        except Unreadable as exc:
            raise ReplayError(where, str(exc)) from None
        yield where, row


def _har_time(entry: dict[str, Any]) -> float | None:
    """An entry's ``time`` (ms), else the sum of its ``timings`` that apply (-1: not applicable), in seconds."""
    whole = _seconds(entry.get("time"), 1000.0)
    if whole is not None:
        return whole
    timings = entry.get("timings")
    if not isinstance(timings, dict):
        return None
    parts = [_seconds(value) for name, value in timings.items() if name != "ssl"]  # ssl is within connect
    known = [part for part in parts if part is not None]
    return _seconds(sum(known), 1000.0) if known else None  # summed in ms, then divided: 50 ms is 0.05 s


def _iso(field: str, text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(f"{field}: expected an ISO 8601 time like 2024-05-01T12:00:00.250Z, got {text!r}") from None
    if moment.tzinfo is None:  # no zone: read as UTC, not as this machine's local time
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _check(row: Line) -> None:
    """What the run's ``Request`` would refuse, refused at load."""
    target = row.target
    if not target.startswith("/"):
        raise Unreadable(f'expected a path starting with "/", got {target[:100]!r}')
    if any(ord(c) < 0x20 or c == "\x7f" for c in target):
        raise Unreadable(f"expected a path without control characters (CR, LF, tab...), got {target[:100]!r}")
    size = len(target.encode(errors="surrogatepass"))  # a JSON "\ud800" is a lone surrogate: counted, not a crash
    if size > MAX_TARGET_BYTES:
        raise Unreadable(f"expected a path and query of at most {MAX_TARGET_BYTES:,} bytes (Cloudflare's URL limit), got {size:,}")
    try:
        Request(_PLACEHOLDER + target, method=row.method, headers=row.headers)
    except TypeError as exc:
        raise Unreadable(f"expected what a fetch Request accepts: {exc}") from None


def _spread(timed: list[tuple[str, Line]]) -> list[tuple[str, Line]]:
    """Spread the requests of each logged second evenly over it (the log's one-second resolution)."""
    per_second: dict[float, int] = {}
    for _, row in timed:
        per_second[row.at] = per_second.get(row.at, 0) + 1
    seen: dict[float, int] = {}
    for _, row in timed:
        index = seen.get(row.at, 0)
        seen[row.at] = index + 1
        row.at += index / per_second[row.at]
    return timed
