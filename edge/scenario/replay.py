"""Recorded traffic (``[[traffic]] replay = "access.log"``): a log read into arrival times and requests.

Three formats, each giving what it records and nothing more:

* ``clf``: Common Log Format, one request per line (``HOST IDENT USER [TIME] "METHOD TARGET PROTO"
  STATUS BYTES``), or the Combined format (the same, then ``"REFERER" "USER-AGENT"``), which
  adds those two headers. Lines are matched by ``_CLF``; the time is ``%d/%b/%Y:%H:%M:%S %z``.
  A log has one-second resolution: the k requests logged in one second are spread evenly over it
  (at s, s + 1/k, ...) rather than sent as a burst the original traffic never was.
* ``jsonl``: one JSON object per line with ``time`` (seconds as a number, or an ISO 8601 string),
  ``path`` (starting with "/", query included), ``method`` (default GET) and ``headers`` (an
  object of strings); other fields are ignored, so a structured access log can be read as it is.
* ``har``: a browser's HTTP Archive: each ``log.entries[i]`` gives ``startedDateTime``, and its
  ``request``'s method, URL (path and query kept: the host is the traffic group's ``base_url``)
  and every header except those the connection itself sets (``host``, ``content-length``,
  ``connection``, ``transfer-encoding``, HTTP/2 pseudo-headers such as ``:authority``).

Bodies are not replayed. Headers the connection itself sets (``host``, ``content-length``,
``transfer-encoding``...) are dropped from JSON lines as from a HAR. A path with control
characters, over 16 KB (Cloudflare's URL limit), a line over 128 KB, JSON nested too deeply, and
times over a year apart are refused with their line. Times become offsets from the earliest request, in time order (a log is
written as requests finish, so its lines may be slightly out of order). Blank lines are skipped;
any other line that cannot be read stops the load with its line number (``ReplayError``).
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from typing import Any, Iterator

import msgspec

from edge.platform.fetch import Request

MAX_REPLAY_BYTES = 64 * 1024 * 1024
MAX_REPLAY_REQUESTS = 1_000_000
MAX_REPLAY_SPAN = 366 * 86400.0
"""Seconds from a file's first request to its last: a year, more than any log covers."""
MAX_TARGET_BYTES = 16 * 1024
"""A replayed path and query, at most: Cloudflare's URL limit (16 KB)."""
MAX_LINE_BYTES = 128 * 1024
"""A line of a log (CLF, JSON lines), at most: a request line and Cloudflare's 128 KB of headers."""
FORMATS = ("clf", "jsonl", "har")
_DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"})
_QUOTED = r'"((?:[^"\\]++|\\.)*+)"'  # possessive: a quote left open fails at once, with no backtracking
_CLF = re.compile(
    r'^\S+ \S+ \S+ \[(?P<time>[^\]]+)\] ' + _QUOTED.replace("(", "(?P<request>", 1)
    + r' (?:\d{3}|-) (?:\d+|-)'
    + r'(?: ' + _QUOTED.replace("(", "(?P<referer>", 1) + ' ' + _QUOTED.replace("(", "(?P<agent>", 1) + r')?\s*$'
)
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


class Replay(msgspec.Struct):
    """A replay file read: its requests in time order."""

    file: str
    """The path as the scenario gave it (reports name it so, the same wherever the run is)."""
    format: str
    entries: list[Entry]

    @property
    def span(self) -> float:
        return self.entries[-1].at


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


def parse(data: bytes, *, file: str, format: str) -> Replay:
    """The requests of ``data``, a file in ``format``; a ReplayError names the first bad line."""
    if len(data) > MAX_REPLAY_BYTES:
        raise ReplayError("size", f"expected a replay file of at most {MAX_REPLAY_BYTES:,} bytes (64 MiB), got more")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ReplayError(f"line {line}", "not UTF-8 text") from None
    read = {"clf": _clf, "jsonl": _jsonl, "har": _har}[format]
    timed: list[tuple[float, str, str, str, list[tuple[str, str]]]] = []  # (time, where, method, target, headers)
    for where, when, method, target, headers in read(text):
        if len(timed) == MAX_REPLAY_REQUESTS:
            raise ReplayError(where, f"expected at most {MAX_REPLAY_REQUESTS:,} requests, got more")
        _check(where, method, target, headers)
        timed.append((when, where, method, target, headers))
    if not timed:
        raise ReplayError("line 1" if format != "har" else "log.entries", "expected at least one request, the file has none")
    if format == "clf":
        timed = _spread(timed)
    timed.sort(key=lambda entry: entry[0])  # stable: lines of one instant keep their order
    first, (last, where, *_) = timed[0][0], timed[-1]
    if not last - first <= MAX_REPLAY_SPAN:  # `not`: an infinite span too (times of -1e308 and 1e308)
        raise ReplayError(where, f"expected every request within {MAX_REPLAY_SPAN / 86400:.0f} days (a year) of the first, "
                                 f"this one is {last - first:.3g} s after it")
    return Replay(file=file, format=format, entries=[Entry(when - first, method, target, headers) for when, _, method, target, headers in timed])


Line = tuple[str, float, str, str, list[tuple[str, str]]]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_LINE_BYTES:
            raise ReplayError(f"line {number}", f"expected a line of at most {MAX_LINE_BYTES:,} characters, got {len(line):,}")
        if line.strip():
            yield number, line


def _clf(text: str) -> Iterator[Line]:
    for number, line in _lines(text):
        where = f"line {number}"
        match = _CLF.match(line)
        if match is None:
            raise ReplayError(where, 'expected a Common or Combined Log Format line: HOST IDENT USER [TIME] "METHOD PATH PROTOCOL" STATUS BYTES ["REFERER" "USER-AGENT"]')
        try:
            when = _clf_time(match["time"])
        except ValueError:
            raise ReplayError(where, f'expected a time like [10/Oct/2000:13:55:36 -0700], got [{match["time"]}]') from None
        parts = match["request"].split(" ")
        if len(parts) != 3:
            raise ReplayError(where, f'expected a request line "METHOD PATH PROTOCOL", got "{match["request"]}"')
        headers = [(name, value) for name, value in (("referer", match["referer"]), ("user-agent", match["agent"]))
                   if value not in (None, "", "-")]
        yield where, when, parts[0], parts[1], headers


@functools.lru_cache(maxsize=1024)
def _clf_time(text: str) -> float:
    """Cached: a busy log repeats each second's stamp on many lines, and strptime is half the cost of a line."""
    return datetime.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp()


def _jsonl(text: str) -> Iterator[Line]:
    for number, line in _lines(text):
        where = f"line {number}"
        record = _json(where, line)
        if not isinstance(record, dict):
            raise ReplayError(where, 'expected a JSON object like {"time": 1.5, "method": "GET", "path": "/"}')
        when = record.get("time")
        if isinstance(when, str):
            when = _iso(where, "time", when)
        elif not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
            raise ReplayError(where, f"time: expected seconds (a number) or an ISO 8601 time, got {when!r}")
        method = record.get("method", "GET")
        path = record.get("path")
        if not isinstance(method, str):
            raise ReplayError(where, f"method: expected a string, got {method!r}")
        if not isinstance(path, str):
            raise ReplayError(where, f'path: expected a string starting with "/", got {path!r}')
        headers = record.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ReplayError(where, "headers: expected an object of strings")
        kept = [(name, value) for name, value in headers.items() if name.lower() not in _DROPPED_HEADERS]
        yield where, float(when), method, path, kept


def _json(where: str | None, text: str) -> Any:
    """``json.loads``, its every failure a ReplayError: malformed JSON, nesting too deep for the
    parser (``RecursionError``) and numbers too long for an int (``ValueError``) alike."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(where or f"line {exc.lineno}", f"not JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ReplayError(where or "line 1", "expected JSON nested less deeply (the parser gave up)") from None
    except ValueError as exc:
        raise ReplayError(where or "line 1", f"expected JSON that can be read: {exc}") from None


def _har(text: str) -> Iterator[Line]:
    archive = _json(None, text)
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
        yield where, _iso(where, "startedDateTime", entry["startedDateTime"]), method, target, kept


def _iso(where: str, field: str, text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(where, f"{field}: expected an ISO 8601 time like 2024-05-01T12:00:00.250Z, got {text!r}") from None
    if moment.tzinfo is None:  # no zone: read as UTC, not as this machine's local time
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _check(where: str, method: str, target: str, headers: list[tuple[str, str]]) -> None:
    """What the run's ``Request`` would refuse, refused at load with the line's place."""
    if not target.startswith("/"):
        raise ReplayError(where, f'expected a path starting with "/", got {target[:100]!r}')
    if any(ord(c) < 0x20 or c == "\x7f" for c in target):
        raise ReplayError(where, f"expected a path without control characters (CR, LF, tab...), got {target[:100]!r}")
    if len(target.encode()) > MAX_TARGET_BYTES:
        raise ReplayError(where, f"expected a path and query of at most {MAX_TARGET_BYTES:,} bytes (Cloudflare's URL limit), got {len(target.encode()):,}")
    try:
        Request(_PLACEHOLDER + target, method=method, headers=headers)
    except TypeError as exc:
        raise ReplayError(where, f"expected what a fetch Request accepts: {exc}") from None


def _spread(timed: list[Any]) -> list[Any]:
    """Spread the requests of each logged second evenly over it (the log's one-second resolution)."""
    per_second: dict[float, int] = {}
    for entry in timed:
        per_second[entry[0]] = per_second.get(entry[0], 0) + 1
    seen: dict[float, int] = {}
    spread = []
    for when, *rest in timed:
        index = seen.get(when, 0)
        seen[when] = index + 1
        spread.append((when + index / per_second[when], *rest))
    return spread
