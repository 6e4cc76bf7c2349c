"""An access log read for fitting, by edge replay's own readers (``edge.scenario.replay``).

The replay readers read a line's time, request, headers and request time (``$request_time``,
``$upstream_response_time``, Apache's ``%D``...), but not its status, its bytes or its host:
replay sends requests, it does not need them. Rather than a second parser, the format is given to
the same reader with those fields renamed as headers it does read: ``$status`` as
``$http_x_edge_fit_status``, ``$body_bytes_sent`` as ``$http_x_edge_fit_bytes``, ``$host`` as
``$http_x_edge_fit_host`` (Apache: ``%>s``, ``%b``/``%B``, ``%v``/``%{Host}i`` likewise), so each
line's status, size and host arrive among its headers, read by the code that reads the rest.

What replay reads of the other formats carries no request time (CLF logs none; its JSON-lines and
HAR readers keep none), so a log in them cannot be fitted: that is an error saying so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from edge.platform.routes import RoutePattern, RoutePatternError
from edge.platform.user_errors import EdgeError
from edge.scenario.replay import FORMATS, MAX_REPLAY_BYTES, ReplayError, format_of, parse

STATUS, BYTES, HOST = "x-edge-fit-status", "x-edge-fit-bytes", "x-edge-fit-host"
_NGINX = (
    (re.compile(r"\$(?:status|\{status\})(?!\w)"), "$http_x_edge_fit_status"),
    (re.compile(r"\$(?:body_bytes_sent|\{body_bytes_sent\})(?!\w)"), "$http_x_edge_fit_bytes"),
    (re.compile(r"\$(?:host|http_host|server_name|\{host\})(?!\w)"), "$http_x_edge_fit_host"),
)
_APACHE = (
    (re.compile(r"%>?s"), "%{X-Edge-Fit-Status}i"),
    (re.compile(r"%[bB]"), "%{X-Edge-Fit-Bytes}i"),
    (re.compile(r"%[vV]|%\{Host\}i", re.I), "%{X-Edge-Fit-Host}i"),
)
_NO_TIMES = {
    "clf": "a Common/Combined Log Format line logs no request time",
    "jsonl": "edge's JSON-lines reader keeps no request time",
    "har": "edge's HAR reader keeps no request time",
}
_EXAMPLE = "'$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent $request_time'"


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


def with_fields(format: str) -> str:
    """``format`` with its status, bytes and host fields renamed as headers replay reads."""
    rules = _NGINX if "$" in format else _APACHE
    for pattern, replacement in rules:
        format = pattern.sub(replacement, format)
    return format


def read_log(path: str, format: str | None) -> Log:
    """The log at ``path`` in ``format`` (as ``replay_format``: default from the extension); a
    LogError when it cannot be read or records no request time."""
    chosen = format_of(path, format)
    if chosen in _NO_TIMES:
        raise LogError(f"{path}: expected a log with request times: {_NO_TIMES[chosen]}; give the log's own format, "
                       f"e.g. --format {_EXAMPLE} (nginx) or '%h %l %u %t \"%r\" %>s %b %D' (Apache)")
    try:
        file = Path(path)
        if file.stat().st_size > MAX_REPLAY_BYTES:
            raise LogError(f"{path}: expected a log of at most {MAX_REPLAY_BYTES:,} bytes (64 MiB), got more")
        data = file.read_bytes()
    except OSError as exc:
        raise LogError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        replay = parse(data, file=path, format=with_fields(chosen), on_error="skip")
    except ReplayError as exc:
        raise LogError(f"{path}: {exc}") from None
    except ValueError as exc:  # the format itself
        raise LogError(f"--format: {exc}") from None
    upstream = "$upstream_response_time" in chosen
    records = []
    for entry in replay.entries:
        headers = dict(entry.headers)
        records.append(Record(entry.at, (headers.get(HOST) or "").lower() or None, entry.target.partition("?")[0],
                              entry.time, _int(headers.get(STATUS)), _int(headers.get(BYTES))))
    if not any(r.time is not None for r in records):
        where = "its format logs no request time" if not re.search(r"\$request_time|\$upstream_response_time|%D|%\{?\w*\}?T", chosen) \
            else "no line has one"
        raise LogError(f"{path}: expected request times ($request_time, $upstream_response_time; Apache %D), got none: {where}")
    return Log(path, replay.format, records, replay.skipped, upstream)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


@dataclasses.dataclass(frozen=True)
class Rule:
    """``--service NAME=HOST/PATH``: the requests a service served. HOST ``*`` is any host (a log
    without hosts); the pattern is a route's (``example.com/api/*``)."""

    name: str
    pattern: RoutePattern
    any_host: bool

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
