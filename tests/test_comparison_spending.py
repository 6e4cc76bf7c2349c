"""The Mann-Whitney gate's alpha spent over a rollout's comparisons (O'Brien-Fleming, Pocock) or
taken at each (per-look): the levels, the machine's use of them, and the false rollbacks they give."""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import pytest

from edge.engine import rollout_machine as machine
from edge.engine.rollout import comparison_levels, planned_comparisons
from edge.tune.tuner import Task, replicate


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
@pytest.mark.parametrize("looks", [1, 2, 5, 12])
def test_spent_levels_give_exactly_alpha_over_independent_comparisons(spending, looks):
    levels = comparison_levels(0.05, spending, looks)
    assert len(levels) == looks and all(0 < level <= 0.05 for level in levels)
    assert 1 - math.prod(1 - level for level in levels) == pytest.approx(0.05, abs=1e-12)
    if looks > 1 and spending == "obrien-fleming":
        assert list(levels) == sorted(levels)  # little at the first steps, where the canary has few answers


def test_per_look_is_alpha_at_each_comparison():
    assert comparison_levels(0.05, "per-look", 3) == (0.05, 0.05, 0.05)
    assert comparison_levels(0.05, "obrien-fleming", 1) == comparison_levels(0.05, "pocock", 1) == pytest.approx((0.05,))


def test_planned_comparisons_skip_the_100_percent_step_and_add_the_failures_survived():
    steps = tuple(machine.Step(w) for w in (10.0, 50.0, 100.0))
    assert planned_comparisons(steps, 1) == 2  # at 100% the stable environment has no traffic: nothing to compare
    assert planned_comparisons(steps, 3) == 4


def _plan(levels):
    return machine.Plan(steps=(machine.Step(20.0), machine.Step(50.0), machine.Step(100.0)), interval_s=60.0, interval_label="1m",
                        stable="production", failure_limit=3,
                        compare=machine.CompareLimits(alpha=0.05, min_shift_s=0.0, spending="pocock", levels=levels))


def _window(p_value):
    return machine.Analysis(answered=100, errors=0, gate_values=(), comparison=machine.Comparison(p_value, 0.001))


def test_the_kth_comparison_is_judged_at_the_kth_level_and_none_past_the_plan():
    state, _ = machine.step(machine.RolloutState(_plan((0.01, 0.02))), machine.Start())
    state, actions = machine.step(state, _window(0.01))  # exactly at the first level: not below it
    assert state.step == 1 and state.comparisons == 1 and state.failures == 0
    state, actions = machine.step(state, _window(0.0199))  # just under the second
    assert state.failures == 1 and state.comparisons == 2
    [failed] = [c for a in actions if isinstance(a, machine.Log) for c in a.checks if not c.passed]
    assert (failed.measured, failed.op, failed.limit) == (0.0199, ">=", 0.02) and failed.note.endswith("comparison 2 of 2")
    state, _ = machine.step(state, _window(1e-9))  # a third comparison: past the plan, it cannot fail
    assert state.failures == 1 and state.step == 2


def test_a_window_without_a_comparison_spends_nothing():
    state, _ = machine.step(machine.RolloutState(_plan((0.01, 0.02))), machine.Start())
    state, _ = machine.step(state, machine.Analysis(answered=100, errors=0, gate_values=(), comparison=None))
    assert state.comparisons == 0 and state.step == 1


SCENARIO = """
[scenario]
name = "spending"
duration = "5m"

[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
model = {{ latency = "lognormal(p50=2ms, p99=15ms)" }}
[services.environments.canary]
model = {{ latency = "lognormal(p50=2ms, p99=15ms)" }}
[services.split]
weights = {{ production = 100, canary = 0 }}

[services.rollout]
steps = {steps}
interval = "10s"
compare = {{ alpha = 0.05, spending = "{spending}" }}

[[traffic]]
arrivals = "poisson(100/s)"
requests = [{{ url = "https://app.test/" }}]

[tune]
bad = {{ latency = "x1.5" }}
candidates = [{{ steps = {steps}, interval = "10s" }}]
"""

N = 1500


@pytest.mark.slow  # statistical agreement: the slow tier (pytest -m slow)
@pytest.mark.parametrize(("steps", "spending", "low", "high"), [
    ("[10, 20, 30, 40, 50, 100]", "per-look", 0.15, 1.0),  # 5 comparisons at 5% each: measured 22%
    ("[20, 50, 100]", "obrien-fleming", 0.0, 0.05),
    ("[10, 20, 30, 40, 50, 100]", "obrien-fleming", 0.0, 0.05),
    ("[10, 20, 30, 40, 50, 100]", "pocock", 0.0, 0.05),
])
def test_a_canary_as_fast_as_production_is_rolled_back_within_the_overall_alpha(tmp_path, steps, spending, low, high):
    # 1,500 rollouts of a canary exactly as fast as production, the comparison their only gate.
    # Spent, the false rollbacks stay within 5% over 2 and 5 comparisons (up to sampling noise:
    # 2.5 standard errors); per look they add up.
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(steps=steps, spending=spending))
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(replicate, [Task(str(path), 0, "good", seed) for seed in range(N)], chunksize=25))
    rate = sum(r.phase == "rolled back" for r in runs) / N
    noise = 2.5 * math.sqrt(0.05 * 0.95 / N)
    assert low <= rate <= high + noise, rate


def test_edge_check_shows_the_levels_per_comparison_and_over_the_rollout(tmp_path):
    import subprocess
    import sys

    for spending, shown in (
        ("obrien-fleming", "app: Mann-Whitney at 0.05 overall over 2 comparisons (O'Brien-Fleming: 0.56%, 4.47%)"),
        ("per-look", "app: Mann-Whitney at 0.05 per comparison over 2 comparisons: 0.0975 overall"),
    ):
        path = tmp_path / f"{spending}.toml"
        path.write_text(SCENARIO.format(steps="[20, 50, 100]", spending=spending).replace(
            'compare = {', 'sequential = { p0 = "0.1%", p1 = "0.5%" }\ncompare = {'))
        done = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert shown in done.stdout.splitlines()[1]
        assert "sequential test 0.100% against 0.500%: false rollback at most 0.01, missed at most 0.05 (Wald's bounds" in done.stdout


def test_a_spending_that_does_not_exist_is_refused_naming_the_field(tmp_path):
    from edge.scenario.errors import ConfigError
    from edge.scenario.load import load

    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.format(steps="[20, 50, 100]", spending="bonferroni"))
    with pytest.raises(ConfigError, match=r"services\[0\].rollout.compare.spending: expected one of obrien-fleming, pocock, per-look"):
        load(path)
