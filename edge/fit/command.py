"""``edge fit LOG`` and ``edge fit --prometheus URL``: read, split into services, fit, print (and
write) the scenario text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.fit.families import Choice
from edge.fit.logs import Log, LogError, Record, Rule, read_log, split
from edge.fit.model import ServiceFit, fit_service
from edge.fit.prometheus import Histogram
from edge.fit.render import scenario_text, service_lines, toml_fragment


def fit_log(path: str, format: str | None, rules: Sequence[Rule]) -> tuple[Log, list[str], list[ServiceFit]]:
    """The log read, the figures' lines, and each service's fit (one service, "app", without rules)."""
    log = read_log(path, format)
    hosted = [rule for rule in rules if not rule.any_host]
    if hosted and not any(record.host for record in log.records):
        rule = hosted[0]
        raise LogError(f"--service {rule.name}={rule}: the log records no host ($host, $server_name or $http_host; Apache %v or "
                       f"%{{Host}}i; a JSON line's host), so no request matches a host: write {rule.name}=*/{str(rule.pattern).partition('/')[2]} for any host")
    groups = split(log.records, rules) if rules else {"app": log.records}
    by_name = {rule.name: rule for rule in rules}
    fits = [fit_service(name, by_name.get(name), records) for name, records in groups.items()]
    times = "$upstream_response_time" if log.upstream else "the request time"
    unmatched = len(log.records) - sum(len(records) for records in groups.values())
    header = [f"edge fit {path}: {log.format}, {len(log.records):,} requests"
              + (f" ({log.skipped:,} unreadable lines skipped)" if log.skipped else "") + f"; latency from {times}"
              + (f"; {unmatched:,} requests match no --service and are not fitted" if unmatched else "")]
    for fit in fits:
        header += service_lines(fit)
    return log, header, fits


def output(header: Sequence[str], fits: Sequence[ServiceFit], scenario: bool) -> str:
    if scenario:
        return scenario_text(header, fits)
    return "\n".join(["# " + line for line in header] + ["", toml_fragment(fits)])


def plots(directory: str, records_by_service: dict[str, list[Record]], fits: Sequence[ServiceFit]) -> list[Path]:
    from edge.fit.plots import write_plot

    written = []
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for fit in fits:
        records = records_by_service.get(fit.name, [])
        for what, choice, values in (("latency", fit.latency, [r.time for r in records if r.time is not None]),
                                     ("size", fit.size, [r.bytes for r in records if r.bytes is not None])):
            if choice is None:
                continue
            target = folder / f"{fit.name}-{what}.png"
            write_plot(target, f"{fit.name} {what}", choice, np.asarray(values, dtype=float))
            written.append(target)
    return written


def binned_plot(directory: str, name: str, histogram: Histogram, choice: Choice | None) -> list[Path]:
    """The buckets' cumulative shares against each fitted CDF (``--prometheus --plot``)."""
    from edge.fit.plots import write_binned_plot

    if choice is None:
        return []
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}-latency.png"
    write_binned_plot(target, f"{name} latency", choice, histogram.upper, histogram.cumulative)
    return [target]
