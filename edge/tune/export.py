"""``edge tune --export FORMAT=PATH``: the schedule a tune chose, in the rollout tool's own terms.

A tune's answer is only useful once it reaches the tool that rolls out; copying steps and gates by
hand is where a schedule goes wrong. Three targets:

* ``argo``: an Argo Rollouts ``AnalysisTemplate`` (one Prometheus metric per gate) and a
  ``Rollout`` whose canary strategy sets each weight, pauses an interval, and runs the analysis
  in the background;
* ``flagger``: a Flagger ``MetricTemplate`` per gate and a ``Canary`` whose ``analysis`` has the
  schedule's interval, step weights and failure threshold;
* ``wrangler``: a shell script of ``wrangler versions deploy NEW@P% OLD@(100-P)%`` steps (Cloudflare's
  gradual deployments), each followed by its wait and the gates' checks, rolling back to the old
  version when a check fails.

Each starts with what edge predicted for the schedule (P(caught), time to rollback, false rollback,
with their intervals) and with what the tool cannot say the way edge simulated it: a prediction
holds for the rollout edge simulated, so a difference is written where it will be read.

The gates' queries read edge's own metric families (``edge/metrics/families.py``), so that an
export can be rehearsed against ``edge serve`` and a real Prometheus before it meets production;
for production, the selector and family names are the ones to change (the header says which).
Each gate measures the canary over the last interval (``increase``/``rate`` over it). The SPRT of
``sequential`` becomes a query too: its log-likelihood ratio is linear in the canary's error and
answer counts since it started, which Prometheus has.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from typing import Any

from edge.metrics.families import ENVIRONMENT_DURATION, QUEUE_WAIT, REQUESTS, SHED
from edge.platform.units import format_duration
from edge.platform.user_errors import EdgeError
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import Rollout, rollout_steps
from edge.scenario.thresholds import Threshold
from edge.tune import schedules
from edge.tune.intervals import Estimate
from edge.tune.results import CandidateResult, TuneResult
from edge.tune.wording import interval, number, percent

FORMATS = ("argo", "flagger", "wrangler")
DEFAULT_PROMETHEUS = "http://prometheus:9090"
_FIVE_XX = ',status_class="5xx"'
_CONDITIONS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}


class ExportError(EdgeError):
    """Nothing to export (no schedule meets the limits) or an unknown format."""

    exit_code = 1
    prefix = "--export: "


@dataclasses.dataclass(frozen=True)
class Check:
    """One query the rollout tool runs at each analysis, and what it must show to pass."""

    name: str
    """A name for the tool's metric list: "error-ratio", "p99-latency", "sprt-errors"."""
    said: str
    """What the scenario said: the gate's text, or the SPRT's hypotheses."""
    query: str
    op: str
    limit: float
    failures_allowed: int
    """Failed measurements tolerated before the rollback (Argo's ``failureLimit``)."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The chosen schedule, as the exporters read it."""

    service: str
    canary: str
    stable: str
    steps: list[float]
    interval_s: float
    rollout: Rollout
    checks: list[Check]
    differences: list[str]
    """What the tools do differently from what edge simulated (the header lists them)."""
    header: list[str]
    """What edge predicted, and where it came from."""


def chosen(loaded: LoadedScenario, result: TuneResult) -> Schedule:
    """The recommended (or, not decided, leading) schedule of ``result``, with its checks."""
    if result.recommended is None:
        raise ExportError("no schedule meets the limits, so there is none to export: " + ", ".join(result.undecided[:1] or ["see the table"]))
    rollout = schedules.candidates(loaded)[result.recommended]
    candidate = result.candidates[result.recommended]
    service = result.service
    checks, differences = _checks(rollout, service)
    return Schedule(
        service=service, canary=rollout.canary, stable=rollout.stable,
        steps=[step.weight for step in rollout_steps(rollout)], interval_s=rollout.interval.seconds,
        rollout=rollout, checks=checks, differences=differences, header=_header(result, candidate),
    )


def _selector(service: str, environment: str, extra: str = "") -> str:
    return f'{{service="{service}",environment="{environment}"{extra}}}'


def _checks(rollout: Rollout, service: str) -> tuple[list[Check], list[str]]:
    canary = rollout.canary
    window = _duration(rollout.interval.seconds)
    answers = f"sum(increase({REQUESTS.name}{_selector(service, canary)}[{window}]))"
    errors = f"(sum(increase({REQUESTS.name}{_selector(service, canary, _FIVE_XX)}[{window}])) or vector(0))"
    checks: list[Check] = []
    differences: list[str] = []
    for gate in rollout.gates:
        query = _gate_query(gate, service, canary, window, answers, errors)
        if query is None:
            differences.append(f'gate "{gate.text}" is not exported: a histogram has no maximum (use p99)')
            continue
        if rollout.min_requests:  # fewer answers than that: no data, as edge judges it
            query = f"({query}) and on() ({answers} >= {rollout.min_requests})"
        name = "-".join((gate.stat or "", gate.metric.replace(" ", "-"))).strip("-")
        checks.append(Check(_unique(name, checks), gate.text, query, gate.op, gate.value, rollout.failure_limit - 1))
    if rollout.sequential is not None:
        s = rollout.sequential
        p0, p1 = s.p0.fraction, s.p1.fraction
        since = _selector(service, canary)
        failed = f"(sum({REQUESTS.name}{_selector(service, canary, _FIVE_XX)}) or vector(0))"
        llr = (f"{failed} * {math.log(p1 / p0)!r} + (sum({REQUESTS.name}{since}) - {failed}) * {math.log((1 - p1) / (1 - p0))!r}")
        upper = math.log((1 - s.beta) / s.alpha)
        checks.append(Check("sprt-errors", f"SPRT on the error ratio, p0 {p0:.4g} against p1 {p1:.4g} "
                            f"(alpha {s.alpha:g}, beta {s.beta:g}): log-likelihood ratio < {upper:.4f}",
                            llr, "<", upper, 0))
        differences.append("the SPRT reads the canary's counters since they started (a new canary's pods: the rollout's start); "
                           "edge stops testing once the ratio falls below its lower bound, the tool keeps testing")
    if rollout.compare is not None:
        differences.append("the Mann-Whitney latency comparison (compare) is not exported: neither Prometheus nor the tool "
                           "has a two-sample test; edge's prediction counted on it")
    return checks, differences


def _gate_query(gate: Threshold, service: str, canary: str, window: str, answers: str, errors: str) -> str | None:
    if gate.metric in ("error ratio", "effective error ratio"):
        return f"{errors} / {answers}"
    if gate.metric == "errors":
        return errors
    if gate.metric == "requests":
        return f"({answers} or vector(0))"
    if gate.metric == "shed":
        return f"(sum(increase({SHED.name}{_selector(service, canary)}[{window}])) or vector(0))"
    family = {"latency": ENVIRONMENT_DURATION, "queue wait": QUEUE_WAIT}[gate.metric]
    if gate.stat == "max" or gate.stat is None:
        return None
    q = int(gate.stat[1:]) / 100
    return f"histogram_quantile({q:g}, sum by (le) (rate({family.sample('_bucket')}{_selector(service, canary)}[{window}])))"


def _unique(name: str, checks: list[Check]) -> str:
    taken = {check.name for check in checks}
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _duration(seconds: float) -> str:
    """A Go duration ("2m", "90s", "1500ms"): what Argo, Flagger and ``sleep`` read."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _estimate(e: Estimate, *, as_percent: bool = False, seconds: bool = False) -> str:
    if e.value is None:
        return "not measured"
    if seconds:
        shown = format_duration(e.value)
        bounds = None if e.low is None or e.high is None else f"({format_duration(e.low)}–{format_duration(e.high)})"
    else:
        shown = percent(e.value) if as_percent else number(e.value)
        bounds = interval(e, as_percent)
    return f"{shown} {bounds or '(too few replications for an interval)'}"


def _header(result: TuneResult, c: CandidateResult) -> list[str]:
    status = "recommended (decided)" if result.decided else "leading, NOT decided: more replications could change it"
    return [
        f"edge tune: schedule #{result.recommended} ({c.schedule}) of {result.scenario}, service {result.service}: {status}",
        f"predicted from {c.replications} replications per hypothesis, intervals at {result.confidence:.0%} (valid at every round):",
        f"  bad canary: caught {_estimate(c.caught, as_percent=True)}, rolled back after {_estimate(c.time_to_rollback_s, seconds=True)}, "
        f"errors seen {_estimate(c.errors_seen)}",
        f"  good canary: false rollback {_estimate(c.false_rollback, as_percent=True)}, "
        f"promoted after {_estimate(c.rollout_time_s, seconds=True)}",
    ]


def _notes(schedule: Schedule, tool: str) -> list[str]:
    lines = [*schedule.header, "", f"The queries read edge's metric families (edge serve's /metrics), so that this can be rehearsed "
             f"against edge; for production, replace {REQUESTS.name}{_selector(schedule.service, schedule.canary)} and "
             f"{ENVIRONMENT_DURATION.name} by your own."]
    differences = [*schedule.differences, *_tool_differences(schedule, tool)]
    if differences:
        lines += ["", f"Where {tool} differs from the rollout edge simulated:"] + [f"- {d}" for d in differences]
    return lines


def _tool_differences(schedule: Schedule, tool: str) -> list[str]:
    no_data = schedule.rollout.no_data
    gates = [check for check in schedule.checks if check.name != "sprt-errors"]
    found = []
    if tool == "argo":
        found += ["edge holds a step while its analysis fails short of the limit; Argo's steps move on after their pause",
                  "each gate counts its own failures (failureLimit); edge counts failed analyses"]
        if gates and no_data == "hold":
            found.append('no_data = "hold": a measurement without data is Inconclusive, which pauses the rollout until a person '
                         "resumes it; edge analyses the step again")
    elif tool == "flagger":
        if gates:
            found.append("Flagger's thresholdRange is inclusive: a value exactly at a strict gate's limit passes")
            if no_data != "fail":
                found.append(f'no_data = "{no_data}": Flagger counts a check that finds no data as failed, where edge '
                             + ("passes it" if no_data == "pass" else "analyses the step again"))
        if len(gates) < len(schedule.checks):
            found.append("the SPRT's crossing counts toward the threshold like any failed check, not at once")
        if schedule.interval_s != int(schedule.interval_s):
            found.append(f"Flagger's interval is whole seconds: {_flagger_interval(schedule.interval_s)} for {format_duration(schedule.interval_s)}")
    else:
        found.append("the checks run once, after each step's wait")
        if gates and no_data == "hold":
            found.append('no_data = "hold": a check without data fails the script; edge analyses the step again')
    return found


def _comment(lines: list[str], mark: str = "#") -> str:
    return "\n".join(f"{mark} {line}".rstrip() for line in lines) + "\n"


def _yaml(documents: list[dict[str, Any]]) -> str:
    import yaml

    # width: a query stays on one line, as it would be written by hand
    return "---\n".join(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1 << 16) for document in documents)


def _literal(x: float) -> int | float:
    """A limit as written in a condition: 50, not 50.0; 0.01 as Python prints it, exactly."""
    return int(x) if x == int(x) and abs(x) < 2**53 else x


def _argo_condition(check: Check, no_data: str) -> dict[str, str]:
    value = f"result[0] {_CONDITIONS[check.op]} {_literal(check.limit)!r}"
    measured = "len(result) > 0 && !isNaN(result[0])"
    if no_data == "pass":
        return {"successCondition": f"len(result) == 0 || isNaN(result[0]) || {value}"}
    if no_data == "hold":  # neither: Inconclusive, which pauses the rollout for a person
        return {"successCondition": f"{measured} && {value}", "failureCondition": f"{measured} && !({value})"}
    return {"successCondition": f"{measured} && {value}"}


def argo(schedule: Schedule, prometheus: str = DEFAULT_PROMETHEUS) -> str:
    name = f"{schedule.service}-edge-tune"
    window = _duration(schedule.interval_s)
    metrics = []
    for check in schedule.checks:
        metric: dict[str, Any] = {"name": check.name, "initialDelay": window, "interval": window, "failureLimit": check.failures_allowed}
        metric.update(_argo_condition(check, schedule.rollout.no_data if check.name != "sprt-errors" else "pass"))
        metric["provider"] = {"prometheus": {"address": prometheus, "query": check.query}}
        metrics.append(metric)
    whole = all(weight == int(weight) for weight in schedule.steps)
    scale = 1 if whole else 1000 // 100  # Argo's weights are whole numbers: out of 1,000 for tenths of a percent
    steps: list[dict[str, Any]] = []
    for weight in schedule.steps:
        steps.append({"setWeight": round(weight * scale)})
        steps.append({"pause": {"duration": window}})
    canary: dict[str, Any] = {"steps": steps}
    if metrics:
        canary["analysis"] = {"templates": [{"templateName": name}], "startingStep": 0}
    if not whole:
        canary["trafficRouting"] = {"maxTrafficWeight": 100 * scale}
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": schedule.service},
        "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": schedule.service},
                 "strategy": {"canary": canary}},
    }
    documents: list[dict[str, Any]] = []
    if metrics:
        documents.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": name},
                          "spec": {"metrics": metrics}})
    documents.append(rollout)
    notes = _notes(schedule, "argo")
    if not whole:
        notes += ["", "Weights of tenths of a percent: trafficRouting.maxTrafficWeight 1000 (setWeight 1 is 0.1%); "
                  "add your traffic router (istio, nginx, ...) to trafficRouting."]
    notes += ["", "The Rollout references your Deployment (workloadRef): apply both, then deploy the new version."]
    return _comment(notes) + _yaml(documents)


def _flagger_interval(seconds: float) -> str:
    whole = max(1, math.ceil(seconds))
    return f"{whole // 60}m" if whole % 60 == 0 else f"{whole}s"


def flagger(schedule: Schedule, prometheus: str = DEFAULT_PROMETHEUS) -> str:
    interval_text = _flagger_interval(schedule.interval_s)
    documents: list[dict[str, Any]] = []
    metrics = []
    skipped = []
    for check in schedule.checks:
        if check.op in ("==", "!="):
            skipped.append(f'"{check.said}": Flagger has only ranges (min, max), not {check.op}')
            continue
        template = f"{schedule.service}-{check.name}"
        documents.append({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": template},
                          "spec": {"provider": {"type": "prometheus", "address": prometheus}, "query": check.query}})
        bound = "max" if check.op in ("<", "<=") else "min"
        metrics.append({"name": check.name, "templateRef": {"name": template}, "thresholdRange": {bound: _literal(check.limit)},
                        "interval": interval_text})
    analysis: dict[str, Any] = {"interval": interval_text, "threshold": schedule.rollout.failure_limit,
                                "stepWeights": [int(w) if w == int(w) else w for w in schedule.steps]}
    if metrics:
        analysis["metrics"] = metrics
    documents.append({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": schedule.service},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": schedule.service},
                 "service": {"port": 80}, "analysis": analysis},
    })
    notes = _notes(schedule, "flagger") + [f"- not exported: {s}" for s in skipped]
    notes += ["", "service.port is a placeholder: set your Service's port."]
    return _comment(notes) + _yaml(documents)


def wrangler(schedule: Schedule, prometheus: str = DEFAULT_PROMETHEUS) -> str:
    """A POSIX shell script: each step deploys NEW@P% OLD@(100-P)%, waits its interval, and runs
    the gates' queries against ``$PROMETHEUS_URL``; a failed check deploys OLD@100% and exits 1.
    ``$EDGE_SLEEP`` replaces ``sleep`` (a dry run: ``EDGE_SLEEP=true``) and ``$WRANGLER`` the
    command (default ``npx wrangler``)."""
    wait = max(1, math.ceil(schedule.interval_s))
    lines = ["#!/bin/sh", _comment(_notes(schedule, "wrangler")).rstrip(), "#",
             "# Usage: NEW=<new version id> OLD=<old version id> sh this-script   (ids from `wrangler versions list`)",
             "set -eu",
             ': "${NEW:?the id of the version rolled out (wrangler versions list)}"',
             ': "${OLD:?the id of the version serving now}"',
             f': "${{PROMETHEUS_URL:={prometheus}}}"',
             ': "${WRANGLER:=npx wrangler}"',
             ': "${EDGE_SLEEP:=sleep}"',
             "",
             "# check NAME QUERY OP LIMIT: the query's value must satisfy OP LIMIT; no value (no data) " +
             ("passes." if schedule.rollout.no_data == "pass" else "fails."),
             "check() {",
             '  value=$(curl -fsS --get --data-urlencode "query=$2" "$PROMETHEUS_URL/api/v1/query" | python3 -c \'',
             "import json, sys",
             'r = json.load(sys.stdin)["data"]["result"]',
             'print(r[0]["value"][1] if r else "none")\' 2>/dev/null) || value=""',
             '  if [ -z "$value" ]; then',
             '    echo "edge: $1: cannot query $PROMETHEUS_URL" >&2; return 1',
             "  fi",
             '  if [ "$value" = none ] || [ "$value" = NaN ]; then',
             f'    echo "edge: $1: no data" >&2; return {0 if schedule.rollout.no_data == "pass" else 1}',
             "  fi",
             '  if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) $3 float(sys.argv[2]) else 1)" "$value" "$4"; then',
             '    echo "edge: $1 = $value ($3 $4): passes" >&2',
             "  else",
             '    echo "edge: $1 = $value, expected $3 $4: fails" >&2; return 1',
             "  fi",
             "}",
             "",
             "rollback() {",
             '  echo "edge: a gate failed at $1%: back to $OLD" >&2',
             '  $WRANGLER versions deploy "$OLD@100%" -y --message "edge: rolled back at $1%"',
             "  exit 1",
             "}",
             ""]
    steps = schedule.steps
    for index, weight in enumerate(steps, 1):
        p = f"{weight:g}"
        old = f"{100 - weight:g}"
        deploy = f'"$NEW@{p}%"' if weight >= 100 else f'"$NEW@{p}%" "$OLD@{old}%"'
        lines.append(f"# step {index} of {len(steps)}: {p}% for {format_duration(schedule.interval_s)}")
        lines.append(f'$WRANGLER versions deploy {deploy} -y --message "edge: step {index} of {len(steps)}, {p}%"')
        lines.append(f"$EDGE_SLEEP {wait}")
        for check in schedule.checks:
            lines.append(f"check {shlex.quote(check.name)} {shlex.quote(check.query)} {shlex.quote(check.op)} {_literal(check.limit)!r} || rollback {p}")
        lines.append("")
    lines.append('echo "edge: every step passed: $NEW serves all traffic" >&2')
    return "\n".join(lines) + "\n"


EXPORTERS = {"argo": argo, "flagger": flagger, "wrangler": wrangler}


def export(loaded: LoadedScenario, result: TuneResult, format: str, prometheus: str = DEFAULT_PROMETHEUS) -> str:
    if format not in EXPORTERS:
        raise ExportError(f"expected one of {', '.join(FORMATS)}, got {format!r}")
    return EXPORTERS[format](chosen(loaded, result), prometheus)
