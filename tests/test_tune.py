"""``edge tune``: estimates against brute-force replays, the closed form against simulation, the
same answers on every executor (this process, a process pool, a local Dask cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import msgspec
import pytest

from edge.scenario import config
from edge.report.build import build_report
from edge.engine.simulate import simulate
from edge.tune.tuner import mean, proportion, tune, wald_expected_requests

SCENARIO = """
[scenario]
name = "tune-test"
duration = "{duration}"

[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
model = {{ latency = "2ms", errors = {p0} }}
[services.environments.canary]
model = {{ latency = "2ms", errors = {canary_errors} }}
[services.split]
weights = {{ production = 100, canary = 0 }}
retry = {{ to = "production", methods = ["GET"] }}

[services.rollout]
{rollout}

[[traffic]]
arrivals = "poisson({rate}/s)"
requests = [{{ weight = 9, url = "https://app.test/" }}, {{ weight = 1, method = "POST", url = "https://app.test/" }}]

[tune]
bad = {{ errors = {p1} }}
replications = {replications}
{candidates}
"""

GATED = 'steps = [10, 50, 100]\ninterval = "30s"\ngates = ["error ratio < 3%"]\nmin_requests = 20\nno_data = "hold"'


SAME = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }]'


def write(tmp_path, *, rollout=GATED, candidates=SAME, rate=50, p0=0.002, p1=0.025, canary_errors=None, replications=24, duration="5m"):
    path = tmp_path / "tune.toml"
    path.write_text(SCENARIO.format(
        duration=duration, p0=p0, p1=p1, canary_errors=p0 if canary_errors is None else canary_errors,
        rollout=rollout, rate=rate, replications=replications, candidates=candidates,
    ))
    return path


def test_estimates_agree_with_a_brute_force_replay_of_the_chosen_schedule(tmp_path):
    result = tune(config.load(write(tmp_path)), executor=None)
    chosen = result.candidates[0]
    # The replay: the schedule as a plain scenario, the canary's bug written into its model, other
    # seeds, judged by `edge run`'s own report.
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = config.load(write(tmp_path / "bad", canary_errors=0.025))
    good = config.load(write(tmp_path / "good", canary_errors=0.002))
    seeds = range(1000, 1024)
    caught = sum(build_report(simulate(bad, seed=seed)).rollouts["app"].phase == "rolled back" for seed in seeds)
    times = []
    for seed in seeds:
        rollout = build_report(simulate(good, seed=seed)).rollouts["app"]
        if rollout.phase == "promoted":
            times.append(rollout.ended_at_s)
    replayed_caught, replayed_time = proportion(caught, 24), mean(times)
    assert _overlap(chosen.caught, replayed_caught), (chosen.caught, replayed_caught)
    assert _overlap(chosen.rollout_time_s, replayed_time) or chosen.rollout_time_s.value == replayed_time.value
    assert 0.2 < chosen.caught.value < 1.0  # a case where the estimate has something to agree about


def _overlap(a, b) -> bool:
    return a.low <= b.high and b.low <= a.high


def test_the_closed_form_matches_the_simulation_for_a_sequential_test(tmp_path):
    # The canary takes all the traffic at once and is judged every half second on a handful of
    # answers: the SPRT sees nearly every observation, as Wald's formula assumes. The other gates
    # hold for ever (no interval has a million answers), so only the SPRT can end the rollout.
    rollout = (
        'steps = [100]\ninterval = "500ms"\nsequential = { p0 = 0.01, p1 = 0.03, alpha = 0.01, beta = 0.05 }\n'
        'min_requests = 1000000\nno_data = "hold"'
    )
    candidates = 'candidates = [{ steps = [100], interval = "500ms" }]'
    loaded = config.load(write(tmp_path, rollout=rollout, candidates=candidates, rate=10, p0=0.01, p1=0.03, replications=40, duration="5m"))
    result = tune(loaded, executor=None)
    c = result.candidates[0]
    assert c.closed_form_requests == pytest.approx(wald_expected_requests(0.01, 0.03, 0.01, 0.05)) == pytest.approx(317.6, abs=0.5)
    assert c.caught.value > 0.9
    # Wald's approximation ignores the overshoot of the boundary (an error moves the statistic by
    # ln 3, a quarter of the way), and the test sees five answers at a time: the simulated mean
    # sits somewhat above it, and its interval must still reach near it.
    simulated = c.canary_requests_to_rollback
    assert c.closed_form_requests <= simulated.value <= 1.3 * c.closed_form_requests, simulated
    assert simulated.low <= 1.15 * c.closed_form_requests, simulated


def test_every_executor_gives_the_same_answer(tmp_path):
    from distributed import Client, LocalCluster

    loaded = config.load(write(tmp_path, replications=4, duration="3m"))
    here = msgspec.json.encode(tune(loaded, executor=None))
    with ProcessPoolExecutor(max_workers=2) as pool:
        assert msgspec.json.encode(tune(loaded, executor=pool)) == here
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        assert msgspec.json.encode(tune(loaded, executor=client.get_executor())) == here


def test_a_bad_canary_costs_fewer_errors_with_the_fallback(tmp_path):
    result = tune(config.load(write(tmp_path, replications=8)), executor=None)
    c = result.candidates[0]
    assert c.errors_seen.value < c.errors_without_fallback.value  # GETs retried on production
    assert c.errors_seen.value > 0  # the POSTs are not retried
    assert 0 < c.extra_load.value < 0.05


def test_edge_tune_cli_writes_json_and_plot_and_recommends(tmp_path):
    candidates = 'candidates = [{ steps = [10, 50, 100], interval = "30s" }, { steps = [50, 100], interval = "20s" }]'
    path = write(tmp_path, candidates=candidates, replications=6, duration="5m")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "tune", str(path), "--jobs", "2", "--json", str(tmp_path / "t.json"), "--plot", str(tmp_path / "t.png")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "t.json").read_text())
    assert [c["schedule"] for c in written["candidates"]] == ["10/50/100 every 30s", "50/100 every 20s"]
    assert written["replications"] == 6 and {"caught", "false_rollback", "rollout_time_s", "errors_seen"} <= set(written["candidates"][0])
    assert "recommended" in done.stdout or "no schedule meets the limits" in done.stdout
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "tune_table, path, expected",
    [
        ('bad = { errors = "lots" }', "tune.bad.errors", "ratio"),
        ('bad = { errors = "1%" }\ncandidates = [{ steps = [50, 10] }]', "tune.candidates[0].steps[1]", "increase"),
        ('bad = { errors = "1%" }\ncandidates = [{ intervall = "1m" }]', "tune.candidates[0]", "intervall"),
        ('bad = { errors = "1%" }\nreplications = 1', "tune.replications", "at least 2"),
        ('bad = { errors = "1%" }\nservice = "db"', "tune.service", "with a rollout"),
    ],
)
def test_bad_tune_tables_name_the_path(tmp_path, tune_table, path, expected):
    text = write(tmp_path).read_text()
    text = text[: text.index("[tune]")] + "[tune]\n" + tune_table + "\n"
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(config.ConfigError) as raised:
        config.load(tmp_path / "bad.toml")
    assert path in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_fixed_sample_closed_form():
    from scipy.stats import binom

    from edge.tune.tuner import fixed_sample_requests

    # 0.1% against 0.5% at 5% / 80%: checked against the exact binomial test of that size.
    n = round(fixed_sample_requests(0.001, 0.005))
    assert n == pytest.approx(775, abs=1)
    critical = int(binom.isf(0.05, n, 0.001)) + 1  # the fewest errors that reject p0 at 5%
    assert binom.sf(critical - 1, n, 0.001) <= 0.05
    assert 0.7 < binom.sf(critical - 1, n, 0.005) < 0.9  # the power the formula promised, near 80%
    assert fixed_sample_requests(0.01, 0.1) < fixed_sample_requests(0.01, 0.02)  # bigger effects need fewer


@pytest.mark.parametrize(
    "args, expected",
    [
        (["scenarios/default.toml"], "expected a [tune] table"),
        (["scenarios/tune-canary.toml", "--dask", "tcp://127.0.0.1:9", "--replications", "2"], "cannot reach the Dask scheduler"),
    ],
)
def test_edge_tune_bad_input_exits_2(args, expected):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", *args], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr
