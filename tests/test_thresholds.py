"""Thresholds: parsing, the values they are checked against, and the exit codes of `edge run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.scenario.load import load
from edge.report.build import abort_check, build_report
from edge.engine.simulate import simulate
from edge.scenario.thresholds import CLIENT_COUNTS, ENVIRONMENT_COUNTS, ThresholdResult, parse_threshold
from scenario_builder import canary_service, compose, service, traffic, write

ROOT = Path(__file__).resolve().parent.parent

API = service("api", model={"latency": "2ms", "errors": 0.5, "error_status": 503})


def scenario(tmp_path: Path, *thresholds: str) -> Path:
    return write(tmp_path, compose(API, traffic=[traffic(url="https://api.test/")], thresholds=thresholds,
                                 name="thresholds", duration="10s"), file="t.toml")


def edge_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "run", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(
    "text, metric, stat, subject, op, value",
    [
        ("p99 latency of app@canary < 200ms", "latency", "p99", "app@canary", "<", 0.2),
        ("effective error ratio < 0.1%", "effective error ratio", None, "clients", "<", 0.001),
        ("cpu_limit_exceeded == 0", "cpu_limit_exceeded", None, "clients", "==", 0.0),
        ("p50 queue wait of auth@production <= 1ms", "queue wait", "p50", "auth@production", "<=", 0.001),
        ("cold starts of app@canary != 3", "cold starts", None, "app@canary", "!=", 3.0),
        ("mean cpu per request>=2ms", "cpu per request", "mean", "clients", ">=", 0.002),
    ],
)
def test_parse(text, metric, stat, subject, op, value):
    t = parse_threshold(text)
    assert (t.metric, t.stat, t.subject, t.op) == (metric, stat, subject, op)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("latency < 200ms", "needs a statistic"),
        ("p99 errors < 3", "applies to latency"),
        ("p99 latency < 3bananas", "duration"),
        ("error ratio < 5", "ratio"),
        ("p99 queue wait < 1ms", "service environment's"),
        ("timeouts of api@production == 0", "not counted for a service environment"),
        ("throughput > 5", "[STAT] METRIC"),
        ("requests > lots", "expected a number"),
    ],
)
def test_parse_errors_say_what_was_expected(text, expected):
    with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_threshold(text)


def test_values_come_from_the_run(tmp_path):
    path = scenario(
        tmp_path,
        "requests == 1000",
        "p99 latency of api@production < 3ms",
        "p50 latency > 1ms",
        "error ratio < 1%",
        "errors of api@production > 400",
    )
    report = build_report(simulate(load(path), seed=1, duration=10))
    results = {t.threshold: t for t in report.thresholds}
    assert results["requests == 1000"].passed and results["requests == 1000"].value == 1000
    assert results["p99 latency of api@production < 3ms"].passed
    assert results["p50 latency > 1ms"].passed
    ratio = results["error ratio < 1%"]
    assert not ratio.passed and ratio.value == pytest.approx(0.5, abs=0.06)
    assert results["errors of api@production > 400"].passed


def test_edge_run_exits_1_and_prints_the_failing_lines(tmp_path):
    path = scenario(tmp_path, "requests == 1000", "error ratio < 1%", "p99 latency < 1ms")
    out = tmp_path / "r.json"
    done = edge_run(str(path), "-q", "--json", str(out))
    assert done.returncode == 1, done.stderr
    failing = [line for line in done.stderr.splitlines() if "threshold failed" in line]
    assert len(failing) == 2 and "error ratio < 1%" in failing[0] and "p99 latency < 1ms" in failing[1]
    written = json.loads(out.read_text())["thresholds"]
    assert [t["passed"] for t in written] == [True, False, False]


def test_edge_run_exits_0_when_every_threshold_holds(tmp_path):
    done = edge_run(str(scenario(tmp_path, "requests >= 900", "p99 latency < 10ms")), "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "threshold, expected",
    [
        ("p99 latency of api@canary < 1ms", "expected clients or a service environment (api@production)"),
        ("p99 latency of app < 1ms", "thresholds[0]"),
    ],
)
def test_bad_thresholds_exit_2_naming_the_path(tmp_path, threshold, expected):
    done = edge_run(str(scenario(tmp_path, threshold)), "-q")
    assert done.returncode == 2
    assert "thresholds[0]" in done.stderr and expected in done.stderr, done.stderr


def aborting_toml(*rules: str | dict) -> str:
    """Errors from 2m on, ten minutes of traffic: an aborting rule stops the run early."""
    return compose(service("api", model={"latency": "2ms"}), traffic=[traffic(url="https://api.test/")],
                 timeline=[{"at": "2m", "action": "set", "target": "api@production", "errors": 0.5}],
                 thresholds=rules, name="abort", duration="10m")


def aborting(make_scenario, *rules: str | dict):
    loaded = make_scenario(aborting_toml(*rules))
    result = simulate(loaded, seed=1, interval=10, stop_when=abort_check(loaded))
    return result, build_report(result)


def test_an_aborting_threshold_stops_the_traffic_at_the_first_interval_it_fails(make_scenario):
    result, report = aborting(make_scenario, {"threshold": "error ratio < 5%", "abort": True})
    # Errors start at 2m; at 50% the cumulative ratio passes 5% 13.3 s later: the 2m20s check sees it.
    assert report.stopped_early is not None
    assert report.stopped_early.at_s == 140.0 and report.stopped_early.threshold == "error ratio < 5%"
    assert report.clients.requests in (13_999, 14_000)  # 100/s until the stop, not one arrival after it
    assert report.simulated_s < 141  # drained, then ended: not ten minutes
    assert not report.thresholds[0].passed


def test_abort_waits_for_its_delay(make_scenario):
    _, report = aborting(make_scenario, {"threshold": "requests > 1000000", "abort": True, "delay": "1m"})
    assert report.stopped_early is not None and report.stopped_early.at_s == 60.0


def test_thresholds_without_abort_let_the_run_finish(make_scenario):
    _, report = aborting(make_scenario, "error ratio < 5%", {"threshold": "requests > 1", "abort": True})
    assert report.stopped_early is None
    assert report.clients.requests == 600 * 100
    assert [t.passed for t in report.thresholds] == [False, True]


def test_edge_run_says_where_it_stopped_and_exits_1(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(aborting_toml({"threshold": "error ratio < 5%", "abort": True}))
    done = edge_run(str(path), "--no-progress", "--interval", "10s", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1
    assert "run stopped at 2m20s of 10m0s: threshold failed: error ratio < 5%" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["stopped_early"] == {"at_s": 140.0, "threshold": "error ratio < 5%"}


@pytest.mark.parametrize(
    "rule, path, expected",
    [
        ({"threshold": "p99 latency < soon", "abort": True}, "thresholds[0].threshold", "duration"),
        ({"threshold": "requests > 1", "abortt": True}, "thresholds[0]", "abortt"),
        ({"threshold": "requests > 1", "abort": True, "delay": "-1s"}, "thresholds[0].delay", "duration"),
        ({"abort": True}, "thresholds[0]", "threshold"),
    ],
)
def test_bad_threshold_rules_exit_2_naming_the_path(tmp_path, rule, path, expected):
    scenario_path = tmp_path / "a.toml"
    scenario_path.write_text(aborting_toml(rule))
    done = edge_run(str(scenario_path), "-q")
    assert done.returncode == 2, done.stderr
    assert path in done.stderr and expected in done.stderr, done.stderr


def no_data_report(make_scenario, *rules: str | dict, rate: int = 100, sending: str = "10s"):
    loaded = make_scenario(compose(
        canary_service("api", production={"model": {"latency": "2ms"}}, canary={"model": {"latency": "2ms"}}),
        traffic=[traffic(f"constant({rate}/s)", "https://api.test/", duration=sending)],
        thresholds=rules, name="no-data", duration="10s",
    ))
    return build_report(simulate(loaded, seed=1, stop_when=abort_check(loaded), interval=1))


def test_a_threshold_over_an_environment_that_answered_nothing_fails_with_no_data(make_scenario):
    report = no_data_report(make_scenario, "error ratio of api@canary < 5%", "p99 latency of api@canary < 1s",
                            "errors of api@canary == 0", "requests of api@canary == 0", "error ratio < 5%")
    verdicts = {t.threshold: (t.passed, t.no_data, t.shown()) for t in report.thresholds}
    assert verdicts == {
        "error ratio of api@canary < 5%": (False, True, "no data"),
        "p99 latency of api@canary < 1s": (False, True, "no data"),
        "errors of api@canary == 0": (False, True, "no data"),  # zero errors out of nothing is not a pass
        "requests of api@canary == 0": (True, False, "measured 0"),  # a count of requests is its own data
        "error ratio < 5%": (True, False, "measured 0.000% of 1,000 requests"),  # the clients sent 1,000
    }


def test_no_data_pass_lets_a_rule_accept_an_idle_subject(make_scenario):
    report = no_data_report(make_scenario, {"threshold": "error ratio of api@canary < 5%", "no_data": "pass"})
    assert report.thresholds[0].passed and report.thresholds[0].no_data


@pytest.mark.parametrize("rate, sending, requests, no_data", [("1", "1500ms", 1, False), ("1", "500ms", 0, True)])
def test_one_request_is_data_and_none_is_not(make_scenario, rate, sending, requests, no_data):
    # constant(1/s) sends at 1 s: before 1 s nothing is sent, up to 1.5 s exactly one request.
    report = no_data_report(make_scenario, "p99 latency < 1s", rate=int(rate), sending=sending)
    assert report.clients.requests == requests
    assert report.thresholds[0].no_data is no_data and report.thresholds[0].passed is not no_data


def test_an_aborting_threshold_does_not_stop_the_run_for_no_data_yet(make_scenario):
    report = no_data_report(make_scenario, {"threshold": "error ratio of api@canary < 5%", "abort": True})
    assert report.stopped_early is None and report.clients.requests == 1000
    assert not report.thresholds[0].passed and report.thresholds[0].no_data


def test_edge_run_for_no_time_fails_its_thresholds_with_no_data(tmp_path):
    out = tmp_path / "r.json"
    done = edge_run("--duration", "0s", "-q", "--json", str(out))  # the bundled scenario
    assert done.returncode == 1, done.stderr
    failing = [line for line in done.stderr.splitlines() if "threshold failed" in line]
    assert len(failing) == 4 and all(line.endswith("(no data)") for line in failing), done.stderr
    written = json.loads(out.read_text())["thresholds"]
    assert all(t["no_data"] is True and t["passed"] is False for t in written)


def test_no_data_is_left_out_of_the_json_when_there_is_data(tmp_path):
    out = tmp_path / "r.json"
    assert edge_run(str(scenario(tmp_path, "requests >= 900")), "-q", "--json", str(out)).returncode == 0
    assert json.loads(out.read_text())["thresholds"] == [{"threshold": "requests >= 900", "value": 1000.0, "passed": True, "samples": 1000}]


def test_a_bad_no_data_choice_exits_2_naming_the_path(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(aborting_toml({"threshold": "requests > 1", "no_data": "hold"}))
    done = edge_run(str(path), "-q")
    assert done.returncode == 2 and "thresholds[0].no_data" in done.stderr, done.stderr


# -- pinned by mutation testing (docs/mutation.md) -------------------------------------------------
def test_a_threshold_that_is_not_text_says_what_was_expected():
    with pytest.raises(ValueError, match=r'^expected "\[STAT\] METRIC .* got 5$'):
        parse_threshold(5)


def test_a_timed_metric_without_a_statistic_lists_the_statistics():
    with pytest.raises(ValueError, match=r"^latency needs a statistic \(p50, p90, p99, max, mean\) in 'latency < 1ms'$"):
        parse_threshold("latency < 1ms")


@pytest.mark.parametrize("text, expected", [
    ("p99 cpu per request of api@production < 1ms", "cpu per request is the clients' (top-level requests)"),
    ("effective error ratio of api@production < 1%", "effective error ratio is the clients' (after fallbacks)"),
])
def test_a_clients_only_metric_over_an_environment_is_refused(text, expected):
    with pytest.raises(ValueError) as raised:
        parse_threshold(text)
    assert str(raised.value) == f"{expected}, in {text!r}"


@pytest.mark.parametrize("count", sorted({*CLIENT_COUNTS, *ENVIRONMENT_COUNTS}))
def test_each_count_is_accepted_exactly_for_the_subjects_that_count_it(count):
    """Clients and environments count different things: each list is the one its subject is checked against."""
    for subject, allowed, name in ((None, CLIENT_COUNTS, "clients"), ("api@production", ENVIRONMENT_COUNTS, "a service environment")):
        text = f"{count} of {subject} == 0" if subject else f"{count} == 0"
        if count in allowed:
            assert parse_threshold(text).metric == count
        else:
            with pytest.raises(ValueError) as raised:
                parse_threshold(text)
            assert str(raised.value) == f"{count} is not counted for {name} (there: {', '.join(allowed)}), in {text!r}"


@pytest.mark.parametrize("threshold, value, shown", [
    ("p99 latency < 3ms", 0.0159, "measured 15.9ms of 1,204 requests"),
    ("error ratio < 1%", 0.00108, "measured 0.108% of 1,204 requests"),
    ("errors > 400", 412.0, "measured 412 of 1,204 requests"),
    ("requests == 1000", 1204.0, "measured 1204"),  # a count of requests needs no "of N requests"
])
def test_a_result_shows_its_value_in_the_thresholds_own_terms(threshold, value, shown):
    assert ThresholdResult(threshold, value, False, samples=1204).shown() == shown
    assert ThresholdResult(threshold, value, False, no_data=True, samples=0).shown() == "no data"


def test_thresholds_are_the_same_when_their_text_and_subject_are():
    """A gate (over its canary by default) and the same line over the clients are two thresholds."""
    line = "p99 latency < 50ms"
    assert parse_threshold(line) == parse_threshold(line) and hash(parse_threshold(line)) == hash(parse_threshold(line))
    assert parse_threshold(line) != parse_threshold(line, default_subject="app@canary")
    assert parse_threshold(line) != parse_threshold("p99 latency < 60ms")
    assert len({parse_threshold(line), parse_threshold(line), parse_threshold(line, "app@canary")}) == 2
    assert parse_threshold(line) != line
    assert repr(parse_threshold(line)) == "Threshold('p99 latency < 50ms')" and str(parse_threshold(line)) == line
