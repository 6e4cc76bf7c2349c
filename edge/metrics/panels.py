"""The dashboards' panels, declared once as data: title, description, kind, unit, PromQL queries.

Three things draw them: ``grafana/generate.py`` writes the Grafana dashboards from this table,
and writes the Prometheus console pages (``grafana/consoles/``) from the same table, so a query
changed here changes both; ``tests/test_dashboards.py`` checks every query against a real
Prometheus and that the two outputs carry the same queries.

The PromQL uses Grafana's variables, which each consumer substitutes: ``$__rate_interval`` (the
rate window; Grafana derives it from the 5 s scrape interval, a console page from its ``window``
URL parameter) and one ``$name`` per ``Variable`` of the board (a regex over a label's values).

Conventions:

* metric names come from ``edge/metrics/families.py`` (``fam.X.name``, or ``fam.X.sample("_bucket")``
  for a histogram's series), where every family is declared once: a family renamed or dropped
  there fails here rather than leaving an empty panel;
* multi-value variables have ``all_value=".*"``, so "All" matches every label value, including
  ones that appear after the dashboard was loaded; except the canary's ``$service``, whose "All"
  must mean the split services only, not every service;
* an error ratio whose 5xx series does not exist yet is 0, not "no data": the exporter writes a
  ``status_class="5xx"`` series only once a 5xx has been answered (``... or 0 * total``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edge.metrics import families as fam
from edge.metrics.charts import needed

Kind = Literal["stat", "timeseries", "heatmap"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""  # Grafana's legend format: ``{{label}}`` is the series' label value


@dataclass(frozen=True)
class Panel:
    kind: Kind
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str  # Grafana's unit ids: reqps, percentunit, percent, s, short
    w: int  # width in Grafana's 24 columns, and height in its rows
    h: int
    stack: bool = False
    minimum: float | None = 0
    step: bool = False
    decimals: int | None = None
    needs: str = ""
    """What must run for the panel to have data, when not every run has it ("edge serve --traffic":
    the load generator's families): a console page marks its chart, and a backfilled virtual run
    leaves it empty."""


@dataclass(frozen=True)
class Variable:
    """A multi-value variable over a label's values (``label_values(metric{...}, label)``).

    With ``all_value=None``, "All" means the values the query found, as a regex ``(a|b)``: for a
    variable that picks a subset of what other metrics carry (the split services among all).
    """

    name: str
    label: str
    query: str
    all_value: str | None = ".*"


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]


def board(uid: str, title: str, description: str, variables: list[Variable], panels: list[Panel]) -> Board:
    return Board(uid, title, description, tuple(variables), tuple(panels))


def queries(*pairs: tuple[str, str]) -> tuple[Query, ...]:
    return tuple(Query(expr, legend) for expr, legend in pairs)


def timeseries(
    title: str, description: str, queries: tuple[Query, ...], unit: str, *,
    w: int = 12, h: int = 8, stack: bool = False, minimum: float | None = 0, step: bool = False, needs: str = "",
) -> Panel:
    return Panel("timeseries", title, description, tuple(queries), unit, w, h, stack=stack, minimum=minimum, step=step, needs=needs)


def stat(title: str, description: str, queries: list[Query], unit: str, *, w: int = 6, h: int = 4, decimals: int | None = None) -> Panel:
    return Panel("stat", title, description, tuple(queries), unit, w, h, decimals=decimals)


def heatmap(title: str, description: str, bucket: str, selector: str, unit: str, *, w: int = 24, h: int = 9) -> Panel:
    """Requests per bucket and second: the cumulative ``le`` buckets, which Grafana turns into per-bucket counts."""
    return Panel("heatmap", title, description, (Query(f"sum by (le) ({rate(bucket, selector)})", "{{le}}"),), unit, w, h)


def variable(name: str, label: str, query: str, *, all_value: str | None = ".*") -> Variable:
    return Variable(name, label, query, all_value)


# -- PromQL helpers ----------------------------------------------------------------------------------

W = "$__rate_interval"
FIVE_XX = 'status_class="5xx"'


def rate(metric: str, selector: str = "") -> str:
    return f"rate({metric}{{{selector}}}[{W}])" if selector else f"rate({metric}[{W}])"


def sel(*matchers: str) -> str:
    return ", ".join(m for m in matchers if m)


def quantile(q: float, bucket: str, by: str = "", selector: str = "") -> str:
    """The q-quantile over the rate window, only where the window had the samples it needs
    (``charts.needed``: a p99 from 100): the p99 of a canary's ten answers is their largest at best."""
    everything = sel(selector, 'le="+Inf"')
    count = f"{bucket}{{{everything}}}"
    return (f"histogram_quantile({q}, sum by (le{', ' if by else ''}{by}) ({rate(bucket, selector)}))\n"
            f"  and on ({by}) sum by ({by}) (increase({count}[{W}])) >= {needed(q)}")


def indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def or_zero(expr: str, total: str) -> str:
    """``expr``, or 0 for every series of ``total`` that ``expr`` lacks (a counter not yet written)."""
    return f"(\n{indent(expr)}\n  or 0 * {total}\n)"


def error_ratio(by: str, selector: str) -> str:
    """Share of answers in class 5xx, per attempt (every answer an environment gave counts)."""
    total = f"sum by ({by}) ({rate(fam.REQUESTS.name, selector)})"
    errors = f"sum by ({by}) ({rate(fam.REQUESTS.name, sel(FIVE_XX, selector))})"
    return f"{or_zero(errors, total)}\n/ {total}"


def after_fallback(selector: str) -> tuple[str, str]:
    """(5xx answers, all answers) per service as its callers saw them, i.e. after the router's retries.

    A retried attempt is one 5xx answer of the environment that failed (``from_environment``)
    followed by a second answer from ``to_environment``: the caller only sees the second. So per
    service, what callers saw = answers - retries, of which 5xx = 5xx answers - retries. For a
    service without a split the retries term is 0 and this is its plain answer count.
    """
    total = f"sum by (service) ({rate(fam.REQUESTS.name, selector)})"
    retries = or_zero(f"sum by (service) ({rate(fam.RETRIES.name, selector)})", total)
    errors = or_zero(f"sum by (service) ({rate(fam.REQUESTS.name, sel(FIVE_XX, selector))})", total)
    return f"(\n{indent(errors)}\n  - {indent(retries)[2:]}\n)", f"(\n  {total}\n  - {indent(retries)[2:]}\n)"


# Top-level requests by entry service, as the ingress answered them: one per request, after fallbacks.
ENTRY = fam.REQUEST_DURATION.sample("_count")
CLIENT = fam.CLIENT_REQUESTS.name


def ratio_after_fallback(selector: str) -> str:
    """5xx share of what each service's callers saw."""
    errors, total = after_fallback(selector)
    return f"(\n{indent(errors)}\n  / {indent(total)[2:]}\n)"


def effective_error_ratio(by: str, selector: str) -> str:
    """5xx share of what users got (edge_client_requests_total), by ``by`` ("" for all together)."""
    grouping = f" by ({by})" if by else ""
    total = f"sum{grouping} ({rate(CLIENT, selector)})"
    errors = f"sum{grouping} ({rate(CLIENT, sel(FIVE_XX, selector))})"
    return f"{or_zero(errors, total)}\n/ {total}"


# -- The dashboards ----------------------------------------------------------------------------------

S = 'service=~"$service"'
SE = 'service=~"$service", environment=~"$environment"'


def overview() -> dict[str, Any]:
    latency = fam.REQUEST_DURATION.sample("_bucket")
    rps = f"sum by (service, environment) ({rate(ENTRY, S)})"
    panels = [
        stat("Top-level requests per second", "Requests answered at the ingress, every entry service together.",
             [Query(f"sum({rate(ENTRY, S)})")], "reqps"),
        stat("Error ratio users saw", "5xx among top-level answers, after the routers' fallbacks (edge_client_requests_total).",
             [Query(effective_error_ratio("", S))], "percentunit", decimals=2),
        stat("Top-level p99", "99th percentile of top-level latency at the ingress, every entry service together.",
             [Query(quantile(0.99, latency, selector=S))], "s"),
        stat("Fallbacks per second", "Failed attempts a router retried on another environment (edge_retries_total).",
             [Query(f"sum({rate(fam.RETRIES.name, S)}) or vector(0)")], "reqps"),
        timeseries("Top-level requests per second", "By entry service and the environment that answered "
                   "(edge_request_duration_seconds_count).", queries((rps, "{{service}}@{{environment}}")), "reqps", stack=True),
        timeseries("Answers per second by status class (what users got)", "Top-level answers by entry service and status "
                   "class, after fallbacks (edge_client_requests_total); service \"\" is requests no route matched (404).",
                   queries((f"sum by (service, status_class) ({rate(CLIENT, S)})", "{{service}} {{status_class}}")), "reqps", stack=True),
        timeseries(
            "Error ratio: what users saw vs per attempt",
            "Effective: 5xx among top-level answers, after fallbacks (edge_client_requests_total). "
            "Per attempt: 5xx among every answer of each service environment, edge_requests_total; a GET that failed on "
            "the canary and was retried on production counts as one 5xx attempt of the canary, but users saw production's answer.",
            queries((effective_error_ratio("service", S), "effective {{service}}"),
                    (error_ratio("service, environment", S), "attempt {{service}}@{{environment}}")),
            "percentunit", w=24,
        ),
        timeseries("Top-level latency p50 / p99",
                   "At the ingress, from arrival to answer, by entry service and the environment that answered.",
                   queries((quantile(0.5, latency, "service, environment", S), "p50 {{service}}@{{environment}}"),
                           (quantile(0.99, latency, "service, environment", S), "p99 {{service}}@{{environment}}")),
                   "s"),
        timeseries("Service environments: latency p50 / p99",
                   "Every call each service environment answered, per attempt, from its mailbox to its answer "
                   "(edge_environment_duration_seconds).",
                   queries((quantile(0.5, fam.ENVIRONMENT_DURATION.sample("_bucket"), "service, environment", S), "p50 {{service}}@{{environment}}"),
                           (quantile(0.99, fam.ENVIRONMENT_DURATION.sample("_bucket"), "service, environment", S), "p99 {{service}}@{{environment}}")),
                   "s"),
        timeseries(
            "Requests clients never got answered",
            "Timeouts: the client gave up waiting (its traffic group's timeout), by entry service (edge_client_timeouts_total). "
            "Dropped: arrivals an open traffic group could not send, max_inflight requests being outstanding "
            "(edge_client_dropped_total). Refused: requests the live HTTP ingress answered itself, by status: 400 malformed, "
            "408 too slow, 413 body too large, 431 head too large, 503 shed under overload, 505 HTTP version (edge_ingress_rejected_total). "
            "Faults: worker answers HTTP/1.1 cannot carry (sent as 500) and clients dropped for not reading (edge_ingress_faults_total).",
            queries((f"sum by (service) ({rate(fam.CLIENT_TIMEOUTS.name, S)})", "timeouts {{service}}"),
                    (f"sum by (group) ({rate(fam.CLIENT_DROPPED.name)})", "dropped {{group}}"),
                    (f"sum by (status) ({rate(fam.INGRESS_REJECTED.name)})", "refused {{status}}"),
                    (f"sum by (kind) ({rate(fam.INGRESS_FAULTS.name)})", "fault {{kind}}")),
            "reqps", w=24,
        ),
        # A generator behind its schedule sends less than the scenario says: without these, that
        # would pass for a server answering less (edge serve --traffic exports them; empty otherwise).
        timeseries("Load generator: share of its schedule sent",
                   "edge serve --traffic only: requests sent over requests due by each traffic group's schedule, over the "
                   "rate window (edge_loadgen_sent_total / edge_loadgen_planned_total). Under 100%, the server is offered "
                   "less than the scenario's rate: the generator, not the server, is short (a busy machine, a full "
                   "max_inflight).",
                   queries((f"sum by (group) ({rate(fam.LOADGEN_SENT.name)})\n/ sum by (group) ({rate(fam.LOADGEN_PLANNED.name)})",
                            "{{group}}")),
                   "percentunit", needs="edge serve --traffic"),
        timeseries("Load generator: lag behind its schedule",
                   "edge serve --traffic only: time since the oldest request due and not yet sent fell due, per traffic "
                   "group (edge_loadgen_lag_seconds; 0 on time). edge serve warns on stderr past half a second.",
                   queries((f"max by (group) ({fam.LOADGEN_LAG.name})", "{{group}}")), "s", needs="edge serve --traffic"),
    ]
    return board("edge-overview", "edge / Overview", "Traffic, errors and latency of every service environment.",
                     [variable("service", "service", f"label_values({fam.REQUESTS.name}, service)")], panels)


def bindings() -> dict[str, Any]:
    b = 'caller=~"$caller", binding=~"$binding", target=~"$target"'
    bucket = fam.BINDING_DURATION.sample("_bucket")
    count = fam.BINDING_DURATION.sample("_count")
    path = "caller, binding, target"
    path_legend = "{{caller}} → {{binding}} → {{target}}"
    calls = f"sum by ({path}) ({rate(count, b)})"
    calls_5xx = f"sum by ({path}) ({rate(count, sel(b, FIVE_XX))})"
    panels = [
        timeseries("Calls per second", "Service-binding calls by caller → binding → target environment.",
                   queries((f"sum by ({path}, environment) ({rate(count, b)})", path_legend + "@{{environment}}")),
                   "reqps", stack=True),
        timeseries("5xx share of calls", "Calls answered 5xx, as the caller saw them (after the target's fallbacks).",
                   queries((f"(\n  {calls_5xx}\n  or 0 * {calls}\n)\n/ {calls}", path_legend)), "percentunit"),
        timeseries("p50 latency", "Median latency of binding calls, caller side, every target environment together.",
                   queries((quantile(0.5, bucket, path, b), path_legend)), "s"),
        timeseries("p99 latency", "99th percentile latency of binding calls, caller side, every target environment together.",
                   queries((quantile(0.99, bucket, path, b), path_legend)), "s"),
        timeseries("p99 latency by target environment and version", "Where a slow binding spends its time: canary or production, which version.",
                   queries((quantile(0.99, bucket, f"{path}, environment, version", b), path_legend + "@{{environment}} v{{version}}")), "s"),
        timeseries("Mean latency", "Sum over count of the binding histogram.",
                   queries((f"sum by ({path}) ({rate(fam.BINDING_DURATION.sample('_sum'), b)})\n/ {calls}", path_legend)), "s"),
        heatmap("Latency distribution of the selected bindings", "Binding calls per latency bucket and second; pick caller, binding "
                "and target above to look at one edge of the graph.", bucket, b, "s"),
    ]
    variables = [
        variable("caller", "caller", f"label_values({count}, caller)"),
        variable("binding", "binding", f'label_values({count}{{caller=~"$caller"}}, binding)'),
        variable("target", "target", f'label_values({count}{{caller=~"$caller", binding=~"$binding"}}, target)'),
    ]
    return board("edge-bindings", "edge / Per-binding latency", "Caller → binding → target: calls, errors and latency quantiles.",
                     variables, panels)


def cpu() -> dict[str, Any]:
    entry = 'service=~"$entry"'
    bucket = fam.REQUEST_CPU.sample("_bucket")
    count = fam.REQUEST_CPU.sample("_count")
    by_env = f"sum by (service, environment) ({rate(fam.CPU.name, S)})"
    panels = [
        stat("Mean CPU per top-level request", "CPU of a whole chain (every worker reached through bindings) per top-level request.",
             [Query(f"sum({rate(fam.REQUEST_CPU.sample('_sum'), entry)})\n/ sum({rate(count, entry)})")], "s", w=8),
        stat("Top-level requests over the CPU limit", "Share of top-level requests whose shared CPU budget ran out (503, error 1102).",
             [Query(f"sum({rate(fam.CPU_LIMIT_EXCEEDED.name)})\n/ sum({rate(count, entry)})")],
             "percentunit", w=8, decimals=2),
        stat("Cores busy", "CPU seconds per second spent by the selected services: the number of cores they keep busy.",
             [Query(f"sum({rate(fam.CPU.name, S)})")], "short", w=8, decimals=2),
        timeseries("CPU per top-level request p50 / p90 / p99", "Distribution of the CPU a top-level request costs along its whole "
                   "binding chain (edge_request_cpu_seconds), by entry service; compare with the scenario's cpu_limit.",
                   queries(*((quantile(q, bucket, "service", entry), f"p{round(q * 100)} {{{{service}}}}") for q in (0.5, 0.9, 0.99))),
                   "s", w=24),
        heatmap("CPU per top-level request", "Top-level requests per CPU bucket and second.", bucket, entry, "s"),
        timeseries("CPU by service environment (cores busy)", "rate(edge_cpu_seconds_total): CPU seconds per second.",
                   queries((by_env, "{{service}}@{{environment}}")), "short", stack=True),
        timeseries("Share of CPU by service", "Each service's part of the CPU the selected services spend.",
                   queries((f"sum by (service) ({rate(fam.CPU.name, S)})\n/ ignoring (service) group_left\n"
                            f"sum({rate(fam.CPU.name, S)})", "{{service}}")), "percentunit", stack=True),
        timeseries("CPU per answered call", "CPU seconds per answer of each service environment (its own work, not its callees').",
                   queries((f"{by_env}\n/ sum by (service, environment) ({rate(fam.REQUESTS.name, S)})", "{{service}}@{{environment}}")), "s"),
        timeseries("CPU limit exceeded per second", "Top-level requests whose budget ran out, by the service environment that was "
                   "running when it did (not necessarily the one that spent most).",
                   queries((f"sum by (service, environment) ({rate(fam.CPU_LIMIT_EXCEEDED.name, S)})", "{{service}}@{{environment}}")), "reqps"),
    ]
    variables = [
        variable("entry", "entry service", f"label_values({count}, service)"),
        variable("service", "service", f"label_values({fam.CPU.name}, service)"),
    ]
    return board("edge-cpu", "edge / Shared CPU", "The CPU budget a top-level request shares along its binding chain.",
                     variables, panels)


def canary() -> dict[str, Any]:
    per_env = "{{service}}@{{environment}}"

    def success(counter: str) -> str:
        ok = rate(counter, f'{S}, status_class!="5xx"')
        return f"sum by (service, environment) ({ok})\n/ sum by (service, environment) ({rate(counter, S)})"

    def latency(q: float) -> str:
        return quantile(q, fam.ENVIRONMENT_DURATION.sample("_bucket"), "service, environment", S)

    from_env = f'label_replace({rate(fam.RETRIES.name, S)}, "environment", "$1", "from_environment", "(.*)")'
    retried = f"sum by (service, environment) (\n  {from_env}\n)"
    panels = [
        timeseries("Weight by environment", "Percent of the service's traffic each environment gets (edge_canary_weight); "
                   "changes with `edge weight` / the admin API.",
                   queries((f"{fam.CANARY_WEIGHT.name}{{{S}}}", per_env)), "percent", w=16, h=7, step=True),
        stat("Current weight", "The split the router applies now.", [Query(f"{fam.CANARY_WEIGHT.name}{{{S}}}", per_env)], "percent", w=8, h=7),
        timeseries("5xx ratio per attempt: canary vs production", "Every answer each environment gave, including attempts the "
                   "router then retried elsewhere (edge_requests_total).",
                   queries((error_ratio("service, environment", S), per_env),
                           (ratio_after_fallback(S), "{{service}} after fallback")), "percentunit"),
        timeseries("Latency p50 / p99: canary vs production", "Per attempt, from the environment's mailbox to its answer "
                   "(edge_environment_duration_seconds): the canary's own latency, failed attempts included.",
                   queries((latency(0.5), "p50 " + per_env), (latency(0.99), "p99 " + per_env)), "s"),
        timeseries("Fallbacks per second", "Attempts that failed (>= 500) and were retried on another environment (edge_retries_total).",
                   queries((f"sum by (service, from_environment, to_environment) ({rate(fam.RETRIES.name, S)})",
                            "{{service}} {{from_environment}} → {{to_environment}}")), "reqps"),
        timeseries("Share of attempts retried", "Fallbacks over the answers of the environment that failed.",
                   queries((f"{retried}\n/ sum by (service, environment) ({rate(fam.REQUESTS.name, S)})", per_env)), "percentunit"),
        timeseries("Answers per second by environment and version", "edge_requests_total, per attempt.",
                   queries((f"sum by (service, environment, version) ({rate(fam.REQUESTS.name, S)})", per_env + " v{{version}}")),
                   "reqps", w=24, stack=True),
        timeseries(
            "Success: effective vs per attempt",
            "Effective: non-5xx share of what callers finally got for the calls the router sent to each environment first, "
            "after fallbacks (edge_routed_requests_total). Per attempt: each environment's own answers (edge_requests_total).",
            queries((success(fam.ROUTED_REQUESTS.name), "effective " + per_env), (success(fam.REQUESTS.name), "attempt " + per_env)),
            "percentunit", minimum=None,
        ),
        timeseries("Retries denied by the budget per second", "Failed attempts the split's retry budget left unretried: their "
                   "callers got the failure (edge_retries_denied_total).",
                   queries((f"sum by (service, from_environment) ({rate(fam.RETRIES_DENIED.name, S)})", "{{service}} {{from_environment}}")),
                   "reqps"),
        timeseries("Rollout phase", "1 for the rollout's current phase: pending, progressing, waiting (a step's pause or an approval), "
                   "paused (by the operator: edge rollout pause), promoted, rolled back (edge_rollout_phase).",
                   queries((f"{fam.ROLLOUT_PHASE.name}{{{S}}} == 1", "{{service}} {{phase}}")), "short", step=True),
        timeseries("Rollout analyses per second by verdict", "Each interval's verdict on the canary: pass, fail, no_data, hold, "
                   "rollback (edge_rollout_checks_total).",
                   queries((f"sum by (service, verdict) ({rate(fam.ROLLOUT_CHECKS.name, S)})", "{{service}} {{verdict}}")), "reqps"),
    ]
    return board("edge-canary", "edge / Canary", "Split services: weights, canary vs production errors and latency, fallbacks.",
                     [variable("service", "split service", f"label_values({fam.CANARY_WEIGHT.name}, service)", all_value=None)], panels)


def actors() -> dict[str, Any]:
    per_env = "{{service}}@{{environment}}"
    panels = [
        timeseries("Mailbox depth (max over the window)", "Calls waiting for a free slot. A gauge read at scrape time; the max "
                   "over the rate window keeps short bursts between scrapes visible.",
                   queries((f"max by (service, environment) (max_over_time({fam.MAILBOX_DEPTH.name}{{{SE}}}[{W}]))", per_env)), "short"),
        timeseries("In-flight calls (max over the window)", "Calls being served by a slot of the environment.",
                   queries((f"max by (service, environment) (max_over_time({fam.INFLIGHT.name}{{{SE}}}[{W}]))", per_env)), "short"),
        timeseries("Queue wait p50 / p99", "From arrival in the mailbox to a free slot (edge_queue_wait_seconds).",
                   queries((quantile(0.5, fam.QUEUE_WAIT.sample("_bucket"), "service, environment", SE), "p50 " + per_env),
                           (quantile(0.99, fam.QUEUE_WAIT.sample("_bucket"), "service, environment", SE), "p99 " + per_env)), "s"),
        timeseries("Shed per second", "Calls refused because the mailbox was full (503, error 1200).",
                   queries((f"sum by (service, environment) ({rate(fam.SHED.name, SE)})", per_env)), "reqps"),
        timeseries("Cold starts per second", "Calls that found no warm isolate (idle for keep_warm, or evicted) and paid a cold start.",
                   queries((f"sum by (service, environment, version) ({rate(fam.COLD_STARTS.name, SE)})", per_env + " v{{version}}")), "reqps"),
        timeseries("Isolate evictions per second",
                   "Warm isolates dropped: capacity (more idle than max_isolates, least recently used first) or expired "
                   "(idle for keep_warm). The next call that finds none warm pays a cold start.",
                   queries((f"sum by (service, environment, reason) ({rate(fam.ISOLATE_EVICTIONS.name, SE)})", per_env + " {{reason}}")),
                   "reqps"),
        timeseries("Worker exceptions and stalls per second",
                   "Worker code that raised: that call answered 500 (error 1101), the slot carried on. Stalled: a step held the "
                   "event loop past the step limit and the watchdog stopped it (503, error 1102).",
                   queries((f"sum by (service, environment) ({rate(fam.WORKER_EXCEPTIONS.name, SE)})", "raised " + per_env),
                           (f"sum by (service, environment) ({rate(fam.WORKER_STALLS.name, SE)})", "stalled " + per_env)), "reqps"),
        timeseries("Server tasks (live)", "trio tasks alive in edge serve: actors, slots, connections, timers (edge_tasks; 0 in "
                   "a simulation). Flat under steady load; a rise that stays after load ends is a leak.",
                   queries((f"max({fam.TASKS.name})", "tasks")), "short"),
        timeseries("Ingress: in flight and admission limit (live)",
                   "Requests in the handler against how many the ingress lets in (edge_ingress_admission_limit): the "
                   "adaptive limit shrinks while every request waits over the queue-delay target; beyond it, requests "
                   "wait up to an interval, then get 503 with Retry-After (edge_ingress_rejected_total).",
                   queries((f"max({fam.INGRESS_IN_FLIGHT.name})", "in flight"), (f"max({fam.ADMISSION_LIMIT.name})", "limit")),
                   "short"),
    ]
    variables = [
        variable("service", "service", f"label_values({fam.INFLIGHT.name}, service)"),
        variable("environment", "environment", f'label_values({fam.INFLIGHT.name}{{service=~"$service"}}, environment)'),
    ]
    return board("edge-actors", "edge / Actors", "Service environment actors: mailboxes, slots, shedding, cold starts.",
                     variables, panels)


BOARDS: dict[str, Board] = {"overview": overview(), "bindings": bindings(), "cpu": cpu(), "canary": canary(), "actors": actors()}
