"""``edge tune --export``: the chosen schedule as Argo Rollouts, Flagger and wrangler read it.

Each export is read back by its consumer: the YAML by a YAML parser and then checked against what
the tools' CRDs require (the fields, types and enums below, taken from argo-rollouts'
``manifests/crds/{rollout,analysis-template}-crd.yaml`` and flagger's ``artifacts/flagger/crd.yaml``);
the script by ``sh``, run with a stand-in ``wrangler`` and ``curl``; every query by a real
Prometheus scraping ``edge serve``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from live import ROOT, serve
from scenario_builder import canary_service, compose, load, traffic, write
from test_dashboards import Prometheus

from edge.scenario.resolved import LoadedScenario
from edge.tune import schedules
from edge.tune.export import ExportError, chosen, export
from edge.tune.intervals import Estimate
from edge.tune.results import CandidateResult, EngineUse, TuneResult

# -- what the CRDs require of the fields we write ----------------------------------------------------

GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")  # Argo's durations: time.ParseDuration
FLAGGER_INTERVAL = re.compile(r"^[0-9]+(m|s)")  # the Canary CRD's pattern for analysis.interval
ROLLOUT_STEP_KEYS = {"analysis", "experiment", "pause", "plugin", "setCanaryScale", "setHeaderRoute", "setMirrorRoute", "setWeight"}
ANALYSIS_METRIC_KEYS = {"consecutiveErrorLimit", "consecutiveSuccessLimit", "count", "failureCondition", "failureLimit",
                        "inconclusiveLimit", "initialDelay", "interval", "name", "provider", "successCondition"}
FLAGGER_ANALYSIS_KEYS = {"alerts", "canaryReadyThreshold", "interval", "iterations", "match", "maxWeight", "metrics", "mirror",
                         "mirrorWeight", "primaryReadyThreshold", "sessionAffinity", "stepWeight", "stepWeightPromotion", "stepWeights",
                         "threshold", "webhooks"}
FLAGGER_TARGET_KINDS = {"DaemonSet", "Deployment", "Service"}
FLAGGER_PROVIDERS = {"prometheus", "influxdb", "datadog", "externalmetrics", "stackdriver", "cloudwatch", "newrelic", "graphite",
                     "dynatrace", "keptn", "splunk"}
INT32 = 2**31 - 1


def documents(text: str) -> dict[str, list[dict[str, Any]]]:
    """The YAML documents of an export, by kind."""
    found: dict[str, list[dict[str, Any]]] = {}
    for document in yaml.safe_load_all(text):
        found.setdefault(document["kind"], []).append(document)
    return found


def check_argo(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Rollout and AnalysisTemplate of an argo export, after the CRDs' checks."""
    kinds = documents(text)
    assert set(kinds) <= {"Rollout", "AnalysisTemplate"} and len(kinds["Rollout"]) == 1
    template = None
    for document in kinds.get("AnalysisTemplate", []):
        template = document
        assert document["apiVersion"] == "argoproj.io/v1alpha1" and document["metadata"]["name"]
        for metric in document["spec"]["metrics"]:
            assert {"name", "provider"} <= set(metric) <= ANALYSIS_METRIC_KEYS, metric
            for key in ("interval", "initialDelay"):
                assert GO_DURATION.match(metric[key]), metric[key]
            assert isinstance(metric["failureLimit"], int) and metric["failureLimit"] >= 0
            assert all(isinstance(metric[key], str) for key in ("successCondition", "failureCondition") if key in metric)
            prometheus = metric["provider"]["prometheus"]
            assert isinstance(prometheus["address"], str) and isinstance(prometheus["query"], str)
        assert len({m["name"] for m in document["spec"]["metrics"]}) == len(document["spec"]["metrics"])
    rollout = kinds["Rollout"][0]
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    canary = rollout["spec"]["strategy"]["canary"]
    most = canary.get("trafficRouting", {}).get("maxTrafficWeight", 100)
    assert isinstance(most, int) and 0 < most <= INT32
    for step in canary["steps"]:
        assert len(step) == 1 and set(step) <= ROLLOUT_STEP_KEYS, step
        if "setWeight" in step:
            assert isinstance(step["setWeight"], int) and 0 <= step["setWeight"] <= most
        if "pause" in step:
            assert GO_DURATION.match(step["pause"]["duration"])
    if "analysis" in canary:
        assert template is not None
        assert [t["templateName"] for t in canary["analysis"]["templates"]] == [template["metadata"]["name"]]
    return rollout, template


def check_flagger(text: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The Canary and its MetricTemplates (by name) of a flagger export, after the CRDs' checks."""
    kinds = documents(text)
    assert set(kinds) <= {"Canary", "MetricTemplate"} and len(kinds["Canary"]) == 1
    templates = {}
    for document in kinds.get("MetricTemplate", []):
        assert document["apiVersion"] == "flagger.app/v1beta1"
        spec = document["spec"]
        assert {"provider", "query"} <= set(spec) and spec["provider"]["type"] in FLAGGER_PROVIDERS
        templates[document["metadata"]["name"]] = document
    canary = kinds["Canary"][0]
    assert canary["apiVersion"] == "flagger.app/v1beta1"
    spec = canary["spec"]
    assert {"targetRef", "analysis"} <= set(spec)
    assert {"apiVersion", "kind", "name"} <= set(spec["targetRef"]) and spec["targetRef"]["kind"] in FLAGGER_TARGET_KINDS
    assert "port" in spec["service"]
    analysis = spec["analysis"]
    assert set(analysis) <= FLAGGER_ANALYSIS_KEYS and FLAGGER_INTERVAL.match(analysis["interval"])
    assert isinstance(analysis["threshold"], (int, float)) and all(isinstance(w, (int, float)) for w in analysis["stepWeights"])
    for metric in analysis.get("metrics", []):
        assert "name" in metric and metric["templateRef"]["name"] in templates
        assert set(metric["thresholdRange"]) <= {"min", "max"} and FLAGGER_INTERVAL.match(metric["interval"])
    return canary, templates


# -- a tune's result, made by hand: the exports read nothing else of it ------------------------------

def result(loaded: LoadedScenario, recommended: int | None = 0, decided: bool = True) -> TuneResult:
    def estimate(value: float, low: float, high: float) -> Estimate:
        return Estimate(value, low, high, 200)

    candidates = [
        CandidateResult(
            schedule=f"schedule {i}", steps=[], interval_s=60.0, replications=200, dropped=None, dropped_after=None, paused=None,
            caught=estimate(0.99, 0.97, 1.0), time_to_rollback_s=estimate(190.0, 170.0, 220.0),
            canary_requests_to_rollback=estimate(900.0, 800.0, 1000.0), errors_seen=estimate(12.0, 9.0, 15.0),
            errors_without_fallback=estimate(40.0, 30.0, 50.0), extra_load=estimate(0.001, 0.0, 0.002),
            false_rollback=estimate(0.01, 0.0, 0.03), rollout_time_s=estimate(480.0, 480.0, 500.0),
            completed=estimate(1.0, 0.98, 1.0), closed_form_requests=None, checks=[], meets_limits=True,
        )
        for i in range(len(schedules.candidates(loaded)))
    ]
    return TuneResult(
        scenario=loaded.spec.scenario.name, service="app", seed=1, confidence=0.95, budget="200 replications", replications=200,
        rounds=4, stopped="decided" if decided else "budget", decided=decided, candidates=candidates, recommended=recommended,
        undecided=[] if decided else ["#0 caught >= 95%: about 40 more replications"], more_replications=None, limits={},
        engine=EngineUse(0, 200, 0, None, 0.0, 0.0, []),
    )


EXAMPLE = ROOT / "scenarios" / "tune-canary.toml"


def tuned(tmp_path: Path, rollout: dict[str, Any], **tune: Any) -> LoadedScenario:
    app = canary_service(production={"model": {"latency": "2ms", "errors": "0.1%"}}, rollout=rollout)
    itself = {key: rollout[key] for key in ("steps", "interval") if key in rollout}  # the rollout's own schedule, as #0
    table = {"bad": {"errors": "1%"}, "candidates": [itself]} | tune
    return load(tmp_path, compose(app, traffic=[traffic("poisson(100/s)")], tune=table, name="exported", duration="10m"))


def test_argo_has_the_schedules_steps_pauses_and_one_metric_per_gate_with_the_failure_limit():
    loaded = load_example()
    rollout, template = check_argo(export(loaded, result(loaded, 2), "argo"))
    # Candidate #2 of the example: 1/10/50/100 every 2m, SPRT 0.1%/0.5%, the rollout's gates, failure_limit 2.
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert steps == [s for w in (1, 10, 50, 100) for s in ({"setWeight": w}, {"pause": {"duration": "2m"}})]
    assert "trafficRouting" not in rollout["spec"]["strategy"]["canary"]  # whole percents need no finer scale
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert list(metrics) == ["error-ratio", "p99-latency", "sprt-errors"]
    assert metrics["error-ratio"]["failureLimit"] == 1  # edge's failure_limit 2: one failure is tolerated, the second rolls back
    assert metrics["sprt-errors"]["failureLimit"] == 0  # the SPRT rolls back at its first crossing
    assert all(m["interval"] == m["initialDelay"] == "2m" for m in metrics.values())
    # no_data = "hold": no data is neither success nor failure (Inconclusive)
    assert metrics["error-ratio"]["successCondition"] == "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.01"
    assert metrics["error-ratio"]["failureCondition"] == "len(result) > 0 && !isNaN(result[0]) && !(result[0] < 0.01)"
    assert "result[0] < 0.05" in metrics["p99-latency"]["successCondition"]
    assert "histogram_quantile(0.99," in metrics["p99-latency"]["provider"]["prometheus"]["query"]
    # min_requests = 100: fewer canary answers in the interval is no data
    assert metrics["error-ratio"]["provider"]["prometheus"]["query"].endswith(">= 100)")


def load_example() -> LoadedScenario:
    from edge.scenario.load import load as load_file

    return load_file(EXAMPLE)


def test_the_sprt_is_its_log_likelihood_ratio_against_walds_upper_bound():
    loaded = load_example()
    _, template = check_argo(export(loaded, result(loaded, 2), "argo"))
    sprt = {m["name"]: m for m in template["spec"]["metrics"]}["sprt-errors"]
    import math

    # p0 0.1%, p1 0.5%, alpha 0.01, beta 0.05: errors * ln(p1/p0) + successes * ln((1-p1)/(1-p0)) < ln((1-beta)/alpha)
    query = sprt["provider"]["prometheus"]["query"]
    assert repr(math.log(5)) in query and repr(math.log(0.995 / 0.999)) in query
    assert sprt["successCondition"].endswith(f"result[0] < {math.log(0.95 / 0.01)!r}")


def test_weights_of_a_fraction_of_a_percent_are_steps_out_of_a_thousand(tmp_path):
    loaded = tuned(tmp_path, {"steps": [0.5, 2.5, 100], "interval": "30s", "gates": ["error ratio < 2%"]})
    rollout, _ = check_argo(export(loaded, result(loaded), "argo"))
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {"maxTrafficWeight": 1000}
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [5, 25, 1000]
    canary_resource, _ = check_flagger(export(loaded, result(loaded), "flagger"))
    assert canary_resource["spec"]["analysis"]["stepWeights"] == [0.5, 2.5, 100]


def test_flagger_has_the_interval_threshold_step_weights_and_a_template_per_gate():
    loaded = load_example()
    canary, templates = check_flagger(export(loaded, result(loaded, 2), "flagger"))
    analysis = canary["spec"]["analysis"]
    assert (analysis["interval"], analysis["threshold"], analysis["stepWeights"]) == ("2m", 2, [1, 10, 50, 100])
    ranges = {m["name"]: m["thresholdRange"] for m in analysis["metrics"]}
    assert ranges["error-ratio"] == {"max": 0.01} and ranges["p99-latency"] == {"max": 0.05}
    assert set(templates) == {"app-error-ratio", "app-p99-latency", "app-sprt-errors"}


def test_a_gate_the_tool_cannot_express_is_left_out_and_said_so(tmp_path):
    loaded = tuned(tmp_path, {"steps": [10, 100], "interval": "1m", "no_data": "pass",
                              "gates": ["requests >= 50", "max latency < 1s", "errors == 0"], "compare": {"alpha": 0.05}})
    argo_text = export(loaded, result(loaded), "argo")
    _, template = check_argo(argo_text)
    names = [m["name"] for m in template["spec"]["metrics"]]
    assert names == ["requests", "errors"]  # a histogram has no maximum
    assert 'gate "max latency < 1s" is not exported' in argo_text and "Mann-Whitney latency comparison" in argo_text
    requests = template["spec"]["metrics"][0]
    assert requests["successCondition"] == "len(result) == 0 || isNaN(result[0]) || result[0] >= 50"  # no_data = "pass"
    assert "failureCondition" not in requests
    flagger_text = export(loaded, result(loaded), "flagger")
    canary, _ = check_flagger(flagger_text)
    assert [m["name"] for m in canary["spec"]["analysis"]["metrics"]] == ["requests"]
    assert canary["spec"]["analysis"]["metrics"][0]["thresholdRange"] == {"min": 50}
    assert "not exported: \"errors == 0\": Flagger has only ranges" in flagger_text
    assert 'no_data = "pass": Flagger counts a check that finds no data as failed, where edge passes it' in flagger_text


def test_the_header_says_what_edge_predicted_and_whether_it_was_decided():
    loaded = load_example()
    text = export(loaded, result(loaded, 2), "argo")
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert head[0].startswith("# edge tune: schedule #2 (schedule 2) of tune-canary, service app: recommended (decided)")
    assert "caught 99% (97–100%), rolled back after 3m10s (2m50s–3m40s), errors seen 12 (9.0–15)" in text
    assert "false rollback 1.0% (0–3.0%), promoted after 8m0s (8m0s–8m20s)" in text
    leading = export(loaded, result(loaded, 2, decided=False), "flagger")
    assert "leading, NOT decided" in leading.splitlines()[0]


def test_without_a_schedule_meeting_the_limits_nothing_is_exported():
    loaded = load_example()
    with pytest.raises(ExportError, match="no schedule meets the limits") as raised:
        export(loaded, result(loaded, None), "argo")
    assert raised.value.exit_code == 1


def test_an_interval_of_a_fraction_of_a_second_is_whole_seconds_for_flagger_only(tmp_path):
    loaded = tuned(tmp_path, {"steps": [50, 100], "interval": "1.5s", "gates": ["error ratio < 2%"]})
    rollout, template = check_argo(export(loaded, result(loaded), "argo"))
    assert rollout["spec"]["strategy"]["canary"]["steps"][1] == {"pause": {"duration": "1500ms"}}
    flagger_text = export(loaded, result(loaded), "flagger")
    canary, _ = check_flagger(flagger_text)
    assert canary["spec"]["analysis"]["interval"] == "2s" and "Flagger's interval is whole seconds: 2s for 1.5s" in flagger_text


# -- the wrangler script, run by sh -----------------------------------------------------------------

def stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run_script(tmp_path: Path, script: str, values: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the exported script with ``wrangler`` recording its arguments and ``curl`` answering the
    queries with ``values`` in turn (``none``: an empty result)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    answers = tmp_path / "answers"
    answers.write_text("\n".join(values) + "\n")
    stand_in(bin_dir, "wrangler", f'echo "$*" >> {shlex.quote(str(calls))}\n')
    stand_in(bin_dir, "curl", f"""value=$(head -n 1 {shlex.quote(str(answers))}); sed -i 1d {shlex.quote(str(answers))}
if [ "$value" = none ]; then echo '{{"status":"success","data":{{"resultType":"vector","result":[]}}}}'
else echo '{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"'$value'"]}}]}}}}'; fi
""")
    (tmp_path / "plan.sh").write_text(script)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NEW": "v-new", "OLD": "v-old", "WRANGLER": "wrangler",
           "EDGE_SLEEP": "true"}
    done = subprocess.run(["sh", str(tmp_path / "plan.sh")], capture_output=True, text=True, env=env, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_the_wrangler_script_parses_and_deploys_each_step_after_its_checks_pass(tmp_path):
    loaded = tuned(tmp_path, {"steps": [10, 50, 100], "interval": "1m", "gates": ["error ratio < 1%"]})
    script = export(loaded, result(loaded), "wrangler")
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    done, calls = run_script(tmp_path, script, ["0.002", "0.009", "0.0"])
    assert done.returncode == 0, done.stderr
    assert calls == ['versions deploy v-new@10% v-old@90% -y --message edge: step 1 of 3, 10%',
                     'versions deploy v-new@50% v-old@50% -y --message edge: step 2 of 3, 50%',
                     'versions deploy v-new@100% -y --message edge: step 3 of 3, 100%']


@pytest.mark.parametrize(("values", "why"), [
    (["0.002", "0.01"], "error-ratio = 0.01, expected < 0.01: fails"),  # exactly at a strict limit fails, as in edge
    (["0.002", "none"], "error-ratio: no data"),  # no_data = "fail"
])
def test_a_check_that_fails_rolls_the_script_back_to_the_old_version(tmp_path, values, why):
    loaded = tuned(tmp_path, {"steps": [10, 50, 100], "interval": "1m", "gates": ["error ratio < 1%"]})
    done, calls = run_script(tmp_path, export(loaded, result(loaded), "wrangler"), values)
    assert done.returncode == 1 and why in done.stderr, done.stderr
    assert calls[-1] == "versions deploy v-old@100% -y --message edge: rolled back at 50%" and len(calls) == 3


# -- the CLI ----------------------------------------------------------------------------------------

def test_edge_tune_writes_each_export_asked_for(tmp_path):
    argo_path, script_path = tmp_path / "rollout.yaml", tmp_path / "plan.sh"
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", str(EXAMPLE), "--replications", "3", "--jobs", "1", "-q",
                           "--export", f"argo={argo_path}", "--export", f"wrangler={script_path}", "--prometheus-url", "http://p:9090"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    rollout, template = check_argo(argo_path.read_text())
    assert {m["provider"]["prometheus"]["address"] for m in template["spec"]["metrics"]} == {"http://p:9090"}
    assert "PROMETHEUS_URL:=http://p:9090" in script_path.read_text()


@pytest.mark.parametrize(("args", "said"), [
    (["--export", "helm=x.yaml"], "expected FORMAT=PATH with FORMAT one of argo, flagger, wrangler"),
    (["--export", "argo"], "expected FORMAT=PATH"),
    (["--export", "argo=/nonexistent/folder/x.yaml"], "folder /nonexistent/folder does not exist"),
    (["--power", "p.png", "--export", "argo=x.yaml"], "--power compares schedules and chooses none"),
])
def test_a_bad_export_is_refused_before_the_tune_runs(args, said):
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", str(EXAMPLE), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr


# -- the queries, run by Prometheus against edge serve ------------------------------------------------

def test_every_exported_query_runs_on_prometheus_scraping_edge_serve(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is not on PATH: install it (apt-get install prometheus) to run this test")
    app = canary_service(
        production={"model": {"latency": "lognormal(p50=2ms, p99=15ms)", "errors": "1%"}},
        canary={"model": {"latency": "lognormal(p50=2ms, p99=15ms)", "errors": "5%"}},
        rollout={"steps": [50, 100], "interval": "4s", "gates": ["error ratio < 50%", "p99 latency < 1s", "requests >= 1"],
                 "min_requests": 5, "no_data": "hold", "sequential": {"p0": "1%", "p1": "50%"}},
        routes=["example.com/*"],
    )
    toml = compose(app, traffic=[traffic("poisson(200/s)", "https://example.com/")], tune={"bad": {"errors": "5%"}},
                   name="exported", duration="10m")
    path = write(tmp_path, toml, file="exported.toml")
    loaded = load(tmp_path, toml)
    queries = {}
    _, template = check_argo(export(loaded, result(loaded), "argo"))
    queries |= {f"argo {m['name']}": m["provider"]["prometheus"]["query"] for m in template["spec"]["metrics"]}
    _, templates = check_flagger(export(loaded, result(loaded), "flagger"))
    queries |= {f"flagger {name}": t["spec"]["query"] for name, t in templates.items()}
    script = export(loaded, result(loaded), "wrangler")
    for line in script.splitlines():
        if line.startswith("check "):
            words = shlex.split(line)
            queries[f"wrangler {words[1]}"] = words[2]
    assert len(queries) == 12
    with serve(str(path), "--traffic") as served:
        prometheus = Prometheus(binary, tmp_path, f"127.0.0.1:{served.port}")
        try:
            deadline = time.monotonic() + 60
            prometheus.wait_until("Prometheus to scrape edge serve", lambda: bool(prometheus.query('up{job="edge"} == 1')[0]), deadline)
            while True:
                answers = {name: prometheus.query(query) for name, query in queries.items()}
                missing = {name: error or "no value" for name, (found, error) in answers.items() if not found}
                if not missing or time.monotonic() > deadline or any("HTTP 400" in why for why in missing.values()):
                    break
                time.sleep(1.0)
        finally:
            prometheus.stop()
    assert not missing, json.dumps(missing, indent=1)
    values = {name: float(found[0]["value"][1]) for name, (found, _) in answers.items()}
    assert 0 < values["argo error-ratio"] < 0.5 and values["argo requests"] >= 5, values
    assert values["argo sprt-errors"] == pytest.approx(values["flagger app-sprt-errors"], rel=0.5)  # one query, two scrapes


def test_the_exports_name_what_the_scenario_names(tmp_path):
    # The example's service and environments, not hard-wired ones.
    loaded = tuned(tmp_path, {"steps": [10, 100], "interval": "1m", "gates": ["p90 queue wait < 5ms"], "canary": "canary",
                              "stable": "production"})
    schedule = chosen(loaded, result(loaded))
    assert (schedule.service, schedule.canary, schedule.stable) == ("app", "canary", "production")
    assert schedule.checks[0].query == ('histogram_quantile(0.9, sum by (le) (rate(edge_queue_wait_seconds_bucket'
                                        '{service="app",environment="canary"}[1m])))')
    assert msgspec.json.encode(result(loaded))  # the hand-made result is a valid TuneResult


EXAMPLES = ROOT / "docs" / "examples"


@pytest.mark.parametrize(("format", "file"), [("argo", "rollout.yaml"), ("flagger", "canary.yaml"), ("wrangler", "rollout.sh")])
def test_the_worked_examples_exports_are_what_its_tune_result_gives(format, file):
    # docs/examples holds the worked example's tune result and its three exports (README); they are
    # made again from that result here, so they cannot drift from what the exporter writes.
    loaded = load_example()
    result_ = msgspec.json.decode((EXAMPLES / "tune-canary.json").read_bytes(), type=TuneResult)
    assert result_.decided and result_.recommended == 3
    assert export(loaded, result_, format) == (EXAMPLES / file).read_text()
