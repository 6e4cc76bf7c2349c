"""A quantile from too few samples is not drawn (issue 28, item 3): the per-interval p99 of ten
answers is their largest at best, and a canary's was once drawn below production's although its
model's p99 was higher. Each point carries its samples; plots, the HTML report and the dashboard
leave a gap below what the quantile needs and say how many samples each line had."""

from __future__ import annotations

import pytest

from edge.engine.simulate import simulate
from edge.metrics.charts import needed, quantile, quantile_ms, sections, with_samples
from edge.report.build import build_report
from scenario_builder import canary_service, compose, traffic

# A canary of 2% at 500/s: ten answers a second, too few for its p99 of an interval.
SPLIT = compose(canary_service(production={"model": {"latency": "lognormal(p50=2ms, p99=10ms)"}},
                               canary={"model": {"latency": "lognormal(p50=2ms, p99=50ms)"}}, weight=2),
                traffic=[traffic("constant(500/s)", "https://app.test/")], name="small-canary", duration="1m")


@pytest.mark.parametrize("q, least", [(0.5, 2), (0.9, 10), (0.99, 100), (0.999, 1000)])
def test_a_quantile_needs_one_over_its_tail_in_samples(q, least):
    assert needed(q) == least


@pytest.mark.parametrize("samples, drawn", [(100, True), (99, False), (101, True)], ids=["exactly enough", "one short", "one over"])
def test_a_p99_is_drawn_from_100_samples_and_not_from_99(samples, drawn):
    assert quantile_ms([0.012], [samples], 0.99) == ([12.0] if drawn else [None])


def test_an_interval_without_answers_is_a_gap_whatever_it_needs():
    assert quantile_ms([0.0, 0.004], [0, 2], 0.5) == [None, 4.0]


def test_a_label_gives_the_samples_and_says_when_a_quantile_needs_more():
    assert with_samples("app@canary", [0, 8, 14], 0.99) == "app@canary, n 8–14 (p99 needs 100)"
    assert with_samples("app@production", [250, 250], 0.99) == "app@production, n 250"
    assert with_samples("idle", [0, 0], 0.99) == "idle"


def test_a_quantile_line_carries_each_points_samples_for_the_legend():
    line = quantile("p99", [0.01, 0.02], [150, 40], 0.99)
    assert line == {"label": "p99", "values": [10.0, None], "samples": [150, 40], "needs": 100}


def p99_lines(report) -> dict[str, dict]:
    [latency] = [s for s in sections(report.series, report.cpu_limit_s) if s["title"] == "Latency"]
    [by_environment] = [c for c in latency["charts"] if c["title"].startswith("Latency p99 by service environment")]
    return {line["label"]: line for line in by_environment["series"]}


def test_a_small_canarys_p99_is_a_gap_while_productions_is_drawn(make_scenario):
    """2% of 500/s: about 10 canary answers a second interval, production about 490."""
    report = build_report(simulate(make_scenario(SPLIT), seed=3, interval=1))
    lines = p99_lines(report)
    canary, production = lines["app@canary"], lines["app@production"]
    assert all(n < 100 for n in canary["samples"]) and canary["values"] == [None] * len(canary["values"])
    assert all(v is not None for v, n in zip(production["values"], production["samples"]) if n >= 100)
    assert sum(v is not None for v in production["values"]) >= len(production["values"]) - 1  # the drain may be short
    # The JSON report keeps every interval's value and its samples: the gap is the drawing's choice.
    env = report.series.environments["app@canary"]
    assert any(v > 0 for v in env.latency_p99_s) and env.requests == canary["samples"]
    assert report.series.clients.latency_samples == [sum(n) for n in zip(*(e.requests for e in report.series.environments.values()))]


def test_the_png_legend_says_which_lines_had_too_few_samples(make_scenario, tmp_path):
    from edge.report import plots

    report = build_report(simulate(make_scenario(SPLIT), seed=3, interval=1))
    figure = plots._canary(report)
    legend = [text.get_text() for ax in figure.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    [canary] = [t for t in legend if t.startswith("app@canary, n ")]
    assert canary.endswith("(p99 needs 100)")
    [line] = [line for ax in figure.axes for line in ax.get_lines() if line.get_label() == canary]
    assert all(y is None or y != y for y in line.get_ydata())  # None (or NaN): nothing drawn


def test_a_dashboards_quantile_is_drawn_only_from_a_window_with_the_samples_it_needs(tmp_path):
    """The panels' PromQL, run by promtool's engine: services answering 99, 100 and 101 times in
    the window; the p99 exists for 100 and 101 only."""
    import json
    import shutil
    import subprocess

    from edge.metrics.panels import W, quantile as panel_quantile

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("the `promtool` binary is not on PATH: install prometheus (apt-get install prometheus) to run this test")
    expr = panel_quantile(0.99, "lat_bucket", "service").replace(W, "2m")  # three samples a minute apart: no extrapolation
    series = []
    for service, answers in (("short", 99), ("exact", 100), ("over", 101)):
        half = answers // 2
        for le in ("0.01", "+Inf"):
            series.append({"series": f'lat_bucket{{service="{service}", le="{le}"}}', "values": f"0 {half} {answers}"})
    tests = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": "2m", "exp_samples": [
            {"labels": '{service="exact"}', "value": 0.0099}, {"labels": '{service="over"}', "value": 0.0099}]}],
    }]}
    (tmp_path / "test.yml").write_text(json.dumps(tests))  # JSON is YAML
    checked = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
