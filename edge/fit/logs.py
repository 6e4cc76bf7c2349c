"""An access log read for fitting, by edge replay's own readers (``edge.scenario.replay``).

The replay readers read each line's time, request, headers and request time (``$request_time``,
``$upstream_response_time``, Apache's ``%D``, a JSON line's ``duration``, a HAR entry's ``time``),
and with them its status, its body's bytes and its host (``$status``, ``$body_bytes_sent``,
``$host``; ``%>s``, ``%b``, ``%v``; a JSON line's ``status``, ``bytes``, ``host``; a HAR's
response): one parser for what replay sends and what fit reads.

A Common/Combined Log Format line logs no request time, so a CLF log cannot be fitted; nor can
JSON lines or a HAR none of whose records has one: both are errors saying so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from edge.platform.files import InputError, read_input
from edge.platform.routes import RoutePattern, RoutePatternError
from edge.platform.user_errors import EdgeError
from edge.scenario.replay import FORMATS, MAX_REPLAY_BYTES, ReplayError, format_of, parse

_EXAMPLE = "'$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent $request_time'"
_NO_TIMES = {
    "jsonl": 'no line has a "duration" (the request time in seconds, as Caddy logs it)',
    "har": "no entry has a time or timings",
}


class LogError(EdgeError):
    """A log that cannot be fitted: ``FILE: what was expected``."""


@dataclasses.dataclass(frozen=True)
class Record:
    at: float
    """Seconds after the log's first request."""
    host: str | None
    path: str
    time: float | None
    """The request time the log records (its upstream's when it logs one), seconds."""
    status: int | None
    bytes: int | None


@dataclasses.dataclass(frozen=True)
class Log:
    file: str
    format: str
    """What replay calls the format ("nginx log_format", "Apache LogFormat")."""
    records: list[Record]
    skipped: int
    upstream: bool
    """The times are ``$upstream_response_time``'s (the application's, without the client's network)."""


def read_log(path: str, format: str | None) -> Log:
    """The log at ``path`` in ``format`` (as ``replay_format``: default from the extension); a
    LogError when it cannot be read or records no request time."""
    chosen = format_of(path, format)
    if chosen == "clf":
        raise LogError(f"{path}: expected a log with request times: a Common/Combined Log Format line logs no request time; give the "
                       f"log's own format, e.g. --format {_EXAMPLE} (nginx) or '%h %l %u %t \"%r\" %>s %b %D' (Apache)")
    try:  # as replay reads a log: a regular file only (not /dev/zero, a FIFO), at most one byte over the limit
        data = read_input(path, MAX_REPLAY_BYTES)
    except InputError as exc:
        raise LogError(f"{path}: {exc}") from None
    try:
        replay = parse(data, file=path, format=chosen, on_error="skip")
    except ReplayError as exc:
        raise LogError(f"{path}: {exc}") from None
    except ValueError as exc:  # the format itself
        raise LogError(f"--format: {exc}") from None
    upstream = "$upstream_response_time" in chosen
    records = [Record(entry.at, entry.host, entry.target.partition("?")[0], entry.time, entry.status, entry.bytes)
               for entry in replay.entries]
    if not any(r.time is not None for r in records):
        if chosen in _NO_TIMES:
            where = _NO_TIMES[chosen]
        elif not re.search(r"\$request_time|\$upstream_response_time|%D|%\{?\w*\}?T", chosen):
            where = "its format logs no request time"
        else:
            where = "no line has one"
        raise LogError(f"{path}: expected request times ($request_time, $upstream_response_time; Apache %D; a JSON line's "
                       f"duration; a HAR entry's time), got none: {where}")
    return Log(path, replay.format, records, replay.skipped, upstream)


@dataclasses.dataclass(frozen=True)
class Rule:
    """``--service NAME=HOST/PATH``: the requests a service served. HOST ``*`` is any host (a log
    without hosts); the pattern is a route's (``example.com/api/*``)."""

    name: str
    pattern: RoutePattern
    any_host: bool

    def __str__(self) -> str:
        """The pattern as given: ``*/api/*`` for any host."""
        return "*" + str(self.pattern).removeprefix("any.invalid") if self.any_host else str(self.pattern)

    @property
    def route(self) -> str:
        """A route for the scenario (a host is needed there)."""
        return ("example.com" + str(self.pattern).removeprefix("any.invalid")) if self.any_host else str(self.pattern)

    def matches(self, record: Record) -> bool:
        if self.any_host:
            return self.pattern.matches("any.invalid", record.path)
        return record.host is not None and self.pattern.matches(record.host, record.path)


def parse_rule(text: str) -> Rule:
    name, equals, pattern = text.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z0-9_-]+", name.strip()):
        raise ValueError(f'expected NAME=HOST/PATH, like "api=example.com/api/*" or "api=*/api/*", got {text!r}')
    pattern = pattern.strip()
    any_host = pattern.startswith("*/")
    try:
        parsed = RoutePattern.parse("any.invalid" + pattern[1:] if any_host else pattern)
    except RoutePatternError as exc:
        raise ValueError(f"--service {name}: {exc}") from None
    return Rule(name.strip(), parsed, any_host)


def split(records: Sequence[Record], rules: Sequence[Rule]) -> dict[str, list[Record]]:
    """Each rule's records, the most specific matching rule winning (as routes); unmatched ones dropped."""
    ordered = sorted(rules, key=lambda r: r.pattern.specificity, reverse=True)
    found: dict[str, list[Record]] = {rule.name: [] for rule in rules}
    for record in records:
        for rule in ordered:
            if rule.matches(record):
                found[rule.name].append(record)
                break
    return found


__all__ = ["FORMATS", "Log", "LogError", "Record", "Rule", "parse_rule", "read_log", "split"]
