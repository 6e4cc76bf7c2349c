"""Progressive rollouts: steps, gates, failure limits, no-data choices, pauses, approvals, the
statistical gates, promotion and rollback, on metrics scripted by the scenario's timeline."""

from __future__ import annotations

import pytest

from edge.scenario.errors import ConfigError
from edge.metrics.exposition import registry_for
from edge.report.build import build_report
from edge.engine.simulate import simulate

SCENARIO = """
[scenario]
name = "rollout"
duration = "{duration}"

[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
version = 1
model = {{ latency = "lognormal(p50=2ms, p99=10ms)", errors = 0.001 }}
[services.environments.canary]
version = 2
model = {{ latency = "{canary_latency}", errors = {canary_errors} }}
[services.split]
weights = {{ production = 100, canary = 0 }}

[services.rollout]
{rollout}

[[traffic]]
arrivals = "constant(100/s)"
requests = [{{ url = "https://app.test/" }}]

{timeline}
"""

STEPS = 'steps = [10, 25, 50, 100]\ninterval = "1m"\ngates = ["error ratio < 1%", "p99 latency < 50ms"]'


def run(make_scenario, rollout: str = STEPS, *, errors: float = 0.001, latency: str = "lognormal(p50=2ms, p99=10ms)",
        timeline: str = "", duration: str = "10m"):
    loaded = make_scenario(SCENARIO.format(duration=duration, canary_errors=errors, canary_latency=latency, rollout=rollout, timeline=timeline))
    result = simulate(loaded, seed=2)
    return result, build_report(result)


def events(report) -> list[tuple[float, str, float]]:
    return [(e.at_s, e.event, e.weight) for e in report.rollouts["app"].events]


def weight_at(report, key: str, t: float) -> float:
    """The weight the report's series shows at simulated time ``t``."""
    series = report.series
    return next(w for end, w in zip(series.end_s, series.weights[key]) if end >= t)


def test_a_good_canary_walks_every_step_and_is_promoted(make_scenario):
    _, report = run(make_scenario)
    rollout = report.rollouts["app"]
    assert rollout.phase == "promoted" and rollout.ended_at_s == 240.0 and rollout.steps_passed == 4
    assert [(at, event) for at, event, _ in events(report) if event in ("step", "promote")] == [
        (0.0, "step"), (60.0, "step"), (120.0, "step"), (180.0, "step"), (240.0, "promote")]
    assert [weight_at(report, "app@canary", t) for t in (30, 90, 150, 210, 270)] == [10, 25, 50, 100, 0]
    assert weight_at(report, "app@production", 270) == 100
    assert report.environments["app@production"].version == "2"  # adopted the canary's version


def test_a_bad_canary_is_rolled_back_after_the_failure_limit(make_scenario):
    _, report = run(make_scenario, STEPS + "\nfailure_limit = 2", errors=0.05)
    rollout = report.rollouts["app"]
    assert rollout.phase == "rolled back" and rollout.weight == 0 and rollout.failures == 2
    assert [event for _, event, _ in events(report)] == ["start", "step", "fail", "fail", "rollback"]
    assert rollout.ended_at_s == 120.0
    assert report.routers["app"].weights == {"production": 100.0, "canary": 0.0}
    assert weight_at(report, "app@canary", 130) == 0  # visible in edge_canary_weight


def test_scripted_errors_mid_rollout_roll_back_at_the_step_in_progress(make_scenario):
    timeline = '[[timeline]]\nat = "2m30s"\naction = "set"\ntarget = "app@canary"\nerrors = 0.2'
    _, report = run(make_scenario, timeline=timeline)
    rollout = report.rollouts["app"]
    assert rollout.phase == "rolled back" and rollout.steps_passed == 2
    assert events(report)[-1][:2] == (180.0, "rollback")  # the 2m-3m interval failed: 50% step


def test_gates_measure_the_interval_not_the_whole_run(make_scenario):
    # After three clean minutes, a bad minute must fail on its own: a cumulative ratio would not.
    timeline = '[[timeline]]\nat = "3m"\naction = "set"\ntarget = "app@canary"\nerrors = 0.02'
    _, report = run(make_scenario, 'steps = [50, 60, 70, 80, 90]\ninterval = "1m"\ngates = ["error ratio < 1.5%"]', timeline=timeline)
    assert events(report)[-1][:2] == (240.0, "rollback")


@pytest.mark.parametrize("no_data, phase, last", [("fail", "rolled back", "rollback"), ("pass", "promoted", "promote"), ("hold", "progressing", "hold")])
def test_no_data_counts_as_the_scenario_says(make_scenario, no_data, phase, last):
    rollout = f'steps = [1, 2]\ninterval = "1m"\nmin_requests = 1000\nno_data = "{no_data}"\nfailure_limit = 3'
    result, report = run(make_scenario, rollout)
    assert report.rollouts["app"].phase == phase
    assert events(report)[-1][1] == last
    checks = result.metrics.rollout_checks
    if no_data == "hold":
        assert checks == {("app", "hold"): 10}  # every interval of ten minutes, nothing counted
        assert report.rollouts["app"].failures == 0
    elif no_data == "fail":
        assert checks == {("app", "no_data"): 3}


def test_a_manual_step_waits_for_its_approval(make_scenario):
    rollout = 'steps = [10, { weight = 50, manual = true }, 100]\ninterval = "1m"'
    _, waiting = run(make_scenario, rollout)
    assert waiting.rollouts["app"].phase == "waiting" and waiting.rollouts["app"].weight == 10
    approve = '[[timeline]]\nat = "5m"\naction = "approve"\ntarget = "app"'
    _, approved = run(make_scenario, rollout, timeline=approve)
    steps = [(at, weight) for at, event, weight in events(approved) if event == "step"]
    assert steps == [(0.0, 10.0), (300.0, 50.0), (360.0, 100.0)]
    assert approved.rollouts["app"].phase == "promoted"


def test_a_pause_delays_its_step(make_scenario):
    _, report = run(make_scenario, 'steps = [10, { weight = 50, pause = "3m" }]\ninterval = "1m"')
    steps = [(at, weight) for at, event, weight in events(report) if event == "step"]
    assert steps == [(0.0, 10.0), (240.0, 50.0)]  # passed at 1m, then three minutes' pause


def test_step_weight_and_max_weight(make_scenario):
    _, report = run(make_scenario, 'step_weight = 20\nmax_weight = 60\ninterval = "30s"')
    assert [w for _, event, w in events(report) if event == "step"] == [20, 40, 60]
    assert report.rollouts["app"].phase == "promoted" and report.rollouts["app"].ended_at_s == 90.0


def test_mann_whitney_gate_catches_a_slower_canary(make_scenario):
    compare = 'steps = [20, 50, 100]\ninterval = "1m"\ncompare = { alpha = 0.001, min_shift = "1ms" }'
    _, slow = run(make_scenario, compare, latency="lognormal(p50=4ms, p99=20ms)")
    assert slow.rollouts["app"].phase == "rolled back"
    assert "Mann-Whitney" in slow.rollouts["app"].events[-2].detail  # the failed analysis, then the rollback
    _, same = run(make_scenario, compare)
    assert same.rollouts["app"].phase == "promoted"


def test_mann_whitney_never_compares_against_the_leftovers_of_a_stable_environment_without_weight(make_scenario):
    # At the 100% step the stable environment gets no new calls: what it answers in the window is
    # the few still in flight when the weight moved. The gate compares nothing there (it passes).
    compare = 'steps = [50, 100]\ninterval = "1m"\ncompare = { alpha = 0.001 }'
    loaded = make_scenario(SCENARIO.format(duration="3m", canary_latency="lognormal(p50=2ms, p99=10ms)", canary_errors=0.001,
                                           rollout=compare, timeline=""))
    result = simulate(loaded, seed=3)
    analyses = result.topology.rollouts["app"].analyses
    assert [a.comparison is not None for _, a in analyses] == [True, False]
    assert result.topology.rollouts["app"].phase == "promoted"


@pytest.mark.parametrize(("canary", "stable", "weight", "compared"), [
    (20, 20, 50.0, True), (19, 20, 50.0, False), (20, 19, 50.0, False), (20, 20, 0.0, False), (400, 400, 1e-9, True),
])
def test_mann_whitney_needs_min_samples_a_side_and_a_stable_weight(canary, stable, weight, compared):
    import numpy as np

    from edge.engine import rollout_machine as machine
    from edge.engine.rollout import analysis
    from edge.metrics.histogram import Bins

    plan = machine.Plan(steps=(machine.Step(100.0),), interval_s=60.0, interval_label="1m", stable="production",
                        compare=machine.CompareLimits(alpha=0.01, min_shift_s=0.0, min_samples=20))
    rng = np.random.default_rng(1)
    window = analysis(plan, answered=canary, errors=0, shed=0, latency=Bins.of(rng.exponential(0.002, canary)), queue_wait=Bins(),
                      stable_latency=Bins.of(rng.exponential(0.002, stable)), stable_weight=weight)
    assert (window.comparison is not None) is compared


def test_sequential_test_rolls_back_a_bad_canary_at_once_and_settles_for_a_good_one(make_scenario):
    sprt = 'steps = [10, 25, 50, 100]\ninterval = "1m"\nsequential = { p0 = 0.001, p1 = 0.01 }'
    _, bad = run(make_scenario, sprt, errors=0.01)
    assert bad.rollouts["app"].phase == "rolled back" and bad.rollouts["app"].failures == 0
    assert "sequential test" in bad.rollouts["app"].events[-1].detail
    _, good = run(make_scenario, sprt, errors=0.0005)
    assert good.rollouts["app"].phase == "promoted"
    assert any(e.event == "settled" for e in good.rollouts["app"].events)


def test_rollout_metrics_are_exported(make_scenario):
    result, _ = run(make_scenario, STEPS + "\nfailure_limit = 2", errors=0.05)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in registry_for(result.metrics).collect() for s in family.samples
    }
    assert samples[("edge_rollout_checks_total", (("service", "app"), ("verdict", "fail")))] == 2
    assert samples[("edge_rollout_phase", (("phase", "rolled back"), ("service", "app")))] == 1
    assert samples[("edge_rollout_phase", (("phase", "progressing"), ("service", "app")))] == 0
    assert samples[("edge_canary_weight", (("environment", "canary"), ("service", "app")))] == 0


@pytest.mark.parametrize(
    "rollout, path, expected",
    [
        ("steps = [10, 5]", "services[0].rollout.steps[1]", "increase"),
        ("steps = [10]\nstep_weight = 5", "services[0].rollout.steps", "not both"),
        ('steps = [10]\nno_data = "ignore"', "services[0].rollout.no_data", "fail, pass, hold"),
        ('steps = [10]\ngates = ["mean cpu per request < 1ms"]', "services[0].rollout.gates[0]", "cpu per request is the clients'"),
        ('steps = [10]\ngates = ["cold starts < 1"]', "services[0].rollout.gates[0]", "expected a gate on latency"),
        ('steps = [10]\ncanary = "staging"', "services[0].rollout.canary", "expected an environment of 'app'"),
        ("steps = [10]\nfailure_limit = 0", "services[0].rollout.failure_limit", "at least 1"),
        ("steps = [10]\nsequential = { p0 = 0.01, p1 = 0.001 }", "services[0].rollout.sequential.p1", "p0 < p1"),
        ('steps = [{ weight = 150 }]', "services[0].rollout.steps[0].weight", "(0, 100]"),
    ],
)
def test_bad_rollouts_name_the_path(make_scenario, rollout, path, expected):
    with pytest.raises(ConfigError) as raised:
        run(make_scenario, rollout)
    assert path in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_approve_needs_a_rollout(make_scenario):
    text = SCENARIO.format(duration="1m", canary_errors=0, canary_latency="1ms", rollout="steps = [10]",
                           timeline='[[timeline]]\nat = "1m"\naction = "approve"\ntarget = "app"')
    text = text.replace("[services.rollout]\nsteps = [10]\n", "")
    with pytest.raises(ConfigError) as raised:
        make_scenario(text)
    assert "timeline[0].target" in str(raised.value) and "with a rollout" in str(raised.value)


def test_a_failed_analysis_says_what_was_measured_over_how_many_answers_against_which_limit(make_scenario, tmp_path):
    """In all three outputs: the JSON's checks, the terminal summary and the HTML page."""
    import html
    import json
    from rich.console import Console
    from edge.report.build import print_summary, write_json
    from edge.report.page import render

    _, report = run(make_scenario, STEPS, errors=0.05)
    [failed] = [e for e in report.rollouts["app"].events if e.event == "fail"]
    ratio, p99 = failed.checks
    canary = report.environments["app@canary"]
    assert (ratio.name, ratio.op, ratio.limit, ratio.passed, ratio.unit) == ("error ratio", "<", 0.01, False, "%")
    assert 0.03 < ratio.measured < 0.07 and 500 < ratio.samples <= canary.requests  # about 600 answers at 10% of 100/s for 1m
    assert (p99.name, p99.passed, p99.samples) == ("p99 latency", True, ratio.samples)  # passes are carried too
    shown = f"error ratio {ratio.measured:.3%} of {ratio.samples:,} answers (needs < 1%)"
    assert failed.detail == shown

    out = tmp_path / "r.json"
    write_json(report, out)
    [written] = [e for e in json.loads(out.read_text())["rollouts"]["app"]["events"] if e["event"] == "fail"]
    assert written["checks"][0] == {"name": "error ratio", "measured": ratio.measured, "op": "<", "limit": 0.01,
                                    "samples": ratio.samples, "passed": False, "unit": "%"}
    for width in (80, 120):
        console = Console(width=width, record=True)
        print_summary(report, console)
        assert shown in console.export_text(), width  # on one line, whole
    assert shown in html.unescape(render(report))


@pytest.mark.parametrize("width", [80, 120])
def test_rollout_status_fits_the_terminal_and_shows_the_last_analysis_checks(make_scenario, width):
    from rich.console import Console
    from edge.report.rollouts import print_rollout

    _, report = run(make_scenario, STEPS + "\nfailure_limit = 2", errors=0.05)
    console = Console(width=width, record=True)
    print_rollout(console, "app", report.rollouts["app"])
    text = console.export_text()
    assert "…" not in text and all(len(line.rstrip()) <= width for line in text.splitlines()), text
    assert text.startswith("app: rolled back at 2m0s, step 1 of 4, canary at 0%, against production;")
    assert "last analysis at 2m0s: fail ✗ error ratio" in text and "(needs < 1%)" in text and "✓ p99 latency" in text
