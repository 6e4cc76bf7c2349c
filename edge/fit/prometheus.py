"""``edge fit --prometheus URL``: a service's model read from what a running Prometheus recorded.

Over a window ending at the evaluation time (now, or ``--at``), through the HTTP API
(``/api/v1/query``, urllib, no client library), with the user's label matchers (``--selector``)
added to every series selected:

* **latency**: ``sum by (le) (increase(HISTOGRAM_bucket{...}[WINDOW]))``, the classic buckets'
  counts, fitted as interval-censored bins (``edge.fit.families.fit_binned``); when the histogram
  has no classic buckets, ``sum(increase(HISTOGRAM{...}[WINDOW]))`` read as a native histogram
  (its buckets are bins as well). ``increase`` extrapolates to the window's ends, so counts may
  be fractional: they are fitted as they are.
* **requests** and **errors**: ``sum by (STATUS) (increase(REQUESTS{...}[WINDOW]))``; an error is
  a status matching ``5..`` (edge's ``status_class="5xx"``, or a code such as ``"503"``), its
  share with its Clopper-Pearson interval, and the commonest 5xx code when the label holds codes.
* **arrivals**: the requests over the time the series cover, with the exact Poisson interval:
  the window, or less when the series start within it (a server started ten minutes ago, asked
  for the last hour): then every query is made again over a window from their first sample
  (``covered``), so that ``increase`` does not extrapolate over time nobody measured.

The defaults are edge's own families (``edge serve``'s /metrics): the histogram
``edge_environment_duration_seconds`` and the counter ``edge_requests_total`` with its
``status_class`` label; ``--histogram``, ``--requests`` and ``--status-label`` name another
service's (``http_request_duration_seconds``, ``http_requests_total``, ``code``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.fit.families import Bins, Choice, FitError, bins_from_buckets, fit_binned
from edge.fit.model import Arrivals, ServiceFit, error_ratio, poisson_rate
from edge.fit.render import service_lines
from edge.metrics.families import ENVIRONMENT_DURATION, REQUESTS
from edge.platform.units import format_duration
from edge.platform.user_errors import EdgeError, UsageError

HISTOGRAM = ENVIRONMENT_DURATION.name
REQUEST_COUNTER = REQUESTS.name
STATUS_LABEL = "status_class"
TIMEOUT = 30.0
"""Seconds to wait for one answer of the HTTP API."""
_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Query = Callable[[str], list[dict[str, Any]]]
"""A PromQL expression -> the instant vector it evaluates to (``data.result``)."""


class PrometheusError(EdgeError):
    """A Prometheus that cannot be read, or that recorded nothing the selector matches."""


@dataclasses.dataclass(frozen=True)
class Source:
    url: str
    selector: str
    """Label matchers in braces, ``{service="app",environment="production"}`` (``{}``: every series)."""
    window: str
    """A PromQL duration: ``1h``, ``30m``, ``1h30m``."""
    histogram: str = HISTOGRAM
    requests: str = REQUEST_COUNTER
    status_label: str = STATUS_LABEL
    at: float | None = None
    """The evaluation time, seconds since the epoch (None: now)."""

    @property
    def seconds(self) -> float:
        return window_seconds(self.window)

    def select(self, name: str) -> str:
        """``name{selector's matchers}``."""
        return name + "{" + self.selector.strip()[1:-1].strip().rstrip(",") + "}"


def window_seconds(text: str) -> float:
    """Seconds of a PromQL duration (``1h30m``); a ValueError says what was expected."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a Prometheus duration such as 30s, 15m, 1h or 1h30m, got {text!r}")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))
    if seconds <= 0:
        raise ValueError(f"expected a window longer than 0, got {text!r}")
    return float(seconds)


def parse_selector(text: str) -> str:
    """Label matchers as PromQL writes them, in braces (given with or without); a ValueError says
    what was expected. A metric name is not one: the families are named by their own flags."""
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    elif "{" in inner or "}" in inner:
        raise ValueError(f'expected label matchers such as {{service="app",environment="production"}}, got {text!r}')
    at = 0
    inner = inner.strip()
    while at < len(inner):
        match = _MATCHER.match(inner, at)
        if match is None:
            raise ValueError(f'expected label matchers such as {{service="app",environment="production"}} '
                             f"(NAME=\"VALUE\", =~, != or !~, separated by commas), got {text!r}")
        at = match.end()
        if at < len(inner):
            if inner[at] != ",":
                raise ValueError(f"expected a comma between label matchers, got {text!r}")
            at += 1
    return "{" + inner + "}"


def parse_url(text: str) -> str:
    """The server's base URL (a path prefix kept, as behind a proxy); a ValueError for anything else."""
    parts = urllib.parse.urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise ValueError(f"expected Prometheus's base URL, such as http://127.0.0.1:9090, got {text!r}")
    return text.strip().rstrip("/")


def source_of(url: str, selector: str | None, window: str | None, at: str | None, histogram: str | None,
              requests: str | None, status_label: str | None) -> Source:
    """``edge fit --prometheus``'s flags as a Source; a UsageError names the flag that is wrong."""
    try:
        base = parse_url(url)
    except ValueError as exc:
        raise UsageError(f"--prometheus: {exc}") from None
    try:
        matchers = parse_selector(selector or "{}")
    except ValueError as exc:
        raise UsageError(f"--selector: {exc}") from None
    window = window or "1h"
    try:
        window_seconds(window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    for flag, name, pattern in (("--histogram", histogram, _METRIC), ("--requests", requests, _METRIC), ("--status-label", status_label, _LABEL)):
        if name is not None and not pattern.fullmatch(name):
            raise UsageError(f"{flag}: expected a Prometheus {'label' if flag == '--status-label' else 'metric'} name, got {name!r}")
    if histogram is not None:
        histogram = histogram.removesuffix("_bucket")
    return Source(base, matchers, window, histogram or HISTOGRAM, requests or REQUEST_COUNTER, status_label or STATUS_LABEL,
                  None if at is None else _moment(at))


def _moment(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at: expected seconds since the epoch or an ISO 8601 time like 2024-05-01T12:00:00Z, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def http_query(url: str, at: float | None, timeout: float = TIMEOUT) -> Query:
    """Instant queries against the server at ``url``; every failure a PrometheusError of one line."""

    def query(expr: str) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        address = f"{url}/api/v1/query?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(address, timeout=timeout) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{url}: HTTP {exc.code} {exc.reason}{_api_error(exc)} for the query {expr}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
            raise PrometheusError(f"{url}: cannot reach Prometheus: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise PrometheusError(f"{url}: no answer within {timeout:g} s to the query {expr}") from None
        except OSError as exc:
            raise PrometheusError(f"{url}: cannot reach Prometheus: {exc.strerror or exc}") from None
        try:
            document = json.loads(body)
            data = document["data"]
            if document.get("status") != "success" or data["resultType"] != "vector":
                raise ValueError(data["resultType"])
            result = data["result"]
            if not isinstance(result, list):
                raise ValueError(result)
        except (ValueError, KeyError, TypeError):
            raise PrometheusError(f"{url}: expected Prometheus's HTTP API (/api/v1/query answering a vector in JSON), "
                                  f"got {body[:80]!r}") from None
        return result

    return query


def _api_error(exc: urllib.error.HTTPError) -> str:
    """The API's own ``error`` from the body of its 4xx/5xx (a query that does not parse), if any."""
    try:
        return ": " + str(json.loads(exc.read())["error"]).splitlines()[0]
    except (ValueError, KeyError, TypeError, OSError):
        return ""


@dataclasses.dataclass(frozen=True)
class Histogram:
    bins: Bins
    native: bool
    upper: np.ndarray
    """The classic buckets' ``le`` edges (+Inf last); the native buckets' upper edges."""
    cumulative: np.ndarray


def read_histogram(query: Query, source: Source) -> Histogram:
    """The histogram's counts over the window: classic buckets, else a native histogram."""
    name = source.histogram
    expr = f"sum by (le) (increase({source.select(name + '_bucket')}[{source.window}]))"
    rows = query(expr)
    if rows:
        edges: list[float] = []
        counts: list[float] = []
        for row in rows:
            le = row.get("metric", {}).get("le")
            if le is None or "value" not in row:
                continue
            edges.append(float(le))  # "+Inf" reads as inf
            counts.append(_number(row["value"][1]))
        order = np.argsort(edges)
        upper, cumulative = np.asarray(edges)[order], np.asarray(counts)[order]
        if len(upper) and np.isfinite(upper[-1]):
            raise PrometheusError(f"{source.url}: expected {name}_bucket to end with le=\"+Inf\", got le up to {upper[-1]:g}")
        return Histogram(bins_from_buckets(upper.tolist(), cumulative.tolist()), False, upper, cumulative)
    native = [row for row in query(f"sum(increase({source.select(name)}[{source.window}]))") if "histogram" in row]
    if native:
        try:
            bins = native_bins(native[0]["histogram"][1])
        except (ValueError, TypeError, KeyError, IndexError):
            raise PrometheusError(f"{source.url}: expected a native histogram sample of {name} as the HTTP API writes it "
                                  f"(buckets of [boundaries, lower, upper, count]), got {str(native[0])[:120]}") from None
        return Histogram(bins, True, bins.upper, np.cumsum(bins.counts))
    raise PrometheusError(f"{source.url}: expected series of {source.select(name + '_bucket')} (classic buckets) or "
                          f"{source.select(name)} (a native histogram) in the {source.window} before "
                          f"{_when(source.at)}, got none: check --selector and --histogram")


def native_bins(histogram: dict[str, Any]) -> Bins:
    """A native histogram sample of the HTTP API (``buckets``: [boundary rule, lower, upper, count])
    as bins: negative buckets dropped (durations are not negative), the zero bucket from 0, and the
    gaps between populated buckets filled with empty bins so that the bins tile the range."""
    buckets = sorted((max(float(lower), 0.0), float(upper), _number(count))
                     for _, lower, upper, count in histogram.get("buckets", []) if float(upper) > 0)
    lower: list[float] = []
    upper_: list[float] = []
    counts: list[float] = []
    for low, high, count in buckets:
        if upper_ and low > upper_[-1]:
            lower.append(upper_[-1])
            upper_.append(low)
            counts.append(0.0)
        lower.append(low if not upper_ else max(low, upper_[-1]))
        upper_.append(high)
        counts.append(count)
    return Bins(np.asarray(lower, dtype=float), np.asarray(upper_, dtype=float), np.asarray(counts, dtype=float))


@dataclasses.dataclass(frozen=True)
class Requests:
    total: float
    errors: float
    error_status: int


def read_requests(query: Query, source: Source) -> Requests | None:
    """The requests and the 5xx among them over the window; None when the counter has no series."""
    label = source.status_label
    rows = query(f"sum by ({label}) (increase({source.select(source.requests)}[{source.window}]))")
    if not rows:
        return None
    by_status: dict[str, float] = {}
    for row in rows:
        if "value" not in row:
            continue
        status = row.get("metric", {}).get(label, "")
        by_status[status] = by_status.get(status, 0.0) + _number(row["value"][1])
    failed = {status: count for status, count in by_status.items() if re.fullmatch(r"5..", status)}
    codes = {status: count for status, count in failed.items() if status.isdigit() and count > 0}
    error_status = int(max(codes, key=lambda s: codes[s])) if codes else 500
    return Requests(sum(by_status.values()), sum(failed.values()), error_status)


def covered(query: Query, source: Source, series: str, now: float) -> Source:
    """``source`` with its window cut to start at the first sample of ``series`` when they start
    within it (a server started ten minutes ago, asked about the last hour): ``increase`` over a
    window the series only partly cover extrapolates by half a scrape interval at their start,
    and a rate over the whole window would count time no one measured.

    The first sample is found in two steps: the window at a coarse resolution (a sample no later
    than a step after the first), then a step of it at a quarter of a second, ``timestamp`` giving
    each sample's own time; the window is then from it (and a millisecond before, as Prometheus 3
    leaves a range's start out) to the evaluation time."""
    window = source.seconds
    step = max(int(window / 1000), 1)  # whole seconds: PromQL's durations take no fractions
    rows = query(f"min(min_over_time(timestamp({source.select(series)})[{source.window}:{step}s]))")
    coarse = min((_number(row["value"][1]) for row in rows if "value" in row), default=0.0)
    if coarse <= 0 or coarse <= now - window + step:
        return source
    rows = query(f"min(min_over_time(timestamp({source.select(series)})[{step + 1}s:250ms] @ {coarse:.3f}))")
    first = min((_number(row["value"][1]) for row in rows if "value" in row), default=coarse) or coarse
    milliseconds = int(math.ceil((now - first) * 1000)) + 1
    if milliseconds >= window * 1000:
        return source
    return dataclasses.replace(source, window=f"{milliseconds}ms")


def _number(text: Any) -> float:
    value = float(text)
    return value if math.isfinite(value) else 0.0


def _when(at: float | None) -> str:
    return "now" if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def service_name(selector: str) -> str:
    """The service a selector picks (``service="api"``), else "app"."""
    match = re.search(r'(?:^|[{,])\s*service\s*=\s*"([A-Za-z0-9_-]+)"', selector)
    return match[1] if match else "app"


def fit_prometheus(source: Source, query: Query | None = None) -> tuple[list[str], list[ServiceFit], Histogram]:
    """The figures' header lines, the service's fit, and the histogram read. Every query is
    evaluated at one instant (``source.at``, else now), so they count the same requests."""
    now = source.at if source.at is not None else time.time()
    query = query or http_query(source.url, now)
    requests = read_requests(query, source)
    counted = source.requests if requests is not None else source.histogram + "_count"
    window = covered(query, source, counted, now)
    histogram = read_histogram(query, window)
    if requests is not None and window is not source:
        requests = read_requests(query, window)
    notes: list[str] = []
    latency: Choice | None = None
    try:
        latency = fit_binned(histogram.bins)
    except FitError as exc:
        notes.append(f"latency: not fitted: {exc}")
    errors = error_status = None
    if requests is None:
        notes.append(f"errors: no series of {source.select(source.requests)}: not fitted (--requests names the request counter)")
        total = histogram.bins.n
    elif requests.total >= 0.5:
        total = int(round(requests.total))
        errors = error_ratio(min(int(round(requests.errors)), total), total)
        error_status = requests.error_status
    else:
        total = 0
        notes.append(f"errors: no request counted by {source.select(source.requests)} in the window")
    span = window.seconds
    arrivals = None
    if total > 0:
        arrivals = Arrivals(total, span, poisson_rate(total, span), math.nan, None,
                            f"from {counted}'s increase over {format_duration(span)}"
                            + (" (the series start within the window)" if window is not source else "") + ": a constant rate")
    fit = ServiceFit(service_name(source.selector), None, total, latency, None, errors, error_status, arrivals, tuple(notes))
    kind = "native histogram" if histogram.native else "classic buckets"
    header = [f"edge fit --prometheus {source.url}: {source.selector} over the {source.window} before {_when(now)}; "
              f"latency from {source.histogram} ({kind}, {histogram.bins.n:,} observations), "
              f"requests and errors from {source.requests} by {source.status_label}", *service_lines(fit)]
    return header, [fit], histogram


__all__ = ["HISTOGRAM", "REQUEST_COUNTER", "STATUS_LABEL", "PrometheusError", "Source", "fit_prometheus",
           "http_query", "native_bins", "parse_selector", "parse_url", "source_of", "window_seconds"]
