"""The batched engine (``edge.engine.batched``): which scenarios it takes, the checks on its draws
at their limits, its retry budget against the router's, the fallback, and a quick agreement with
the per-request engine (the full one, 200 replications per scenario, is ``test_batched_agreement``)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections import Counter

import msgspec
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from actors.router import RetryBudget
from edge.engine import batched
from edge.scenario.load import load
from edge.scenario.schema import tuned_service
from edge.tune import tuner
from edge.tune.budget import Budget
from edge.tune.tuner import Task, replicate

SCENARIO = """
[scenario]
name = "batched"
duration = "{duration}"
{meta}

[[services]]
name = "app"
routes = ["app.test/*"]
{service}
[services.environments.production]
model = {{ cpu = "exp(300us)", latency = "lognormal(p50=2ms, p99=20ms)", errors = 0.002 }}
{production}
[services.environments.canary]
model = {{ cpu = "exp(300us)", latency = "lognormal(p50=2ms, p99=20ms)", errors = 0.002 }}
[services.split]
weights = {{ production = 100, canary = 0 }}
retry = {{ to = "production", methods = ["GET"] }}

[services.rollout]
steps = [10, 50, 100]
interval = "20s"
gates = ["error ratio < 3%", "p99 latency < 200ms"]
compare = {{ alpha = 0.01 }}
min_requests = 20
no_data = "hold"

[[traffic]]
arrivals = "poisson({rate}/s)"
requests = [{{ weight = 9, url = "https://app.test/" }}, {{ weight = 1, method = "POST", url = "https://app.test/" }}]
{more}

[tune]
bad = {{ errors = "4%" }}
candidates = [{{ steps = [10, 50, 100], interval = "20s" }}]
"""


def write(tmp_path, *, duration="2m", meta="", service="", production="", rate=50, more="", name="s.toml"):
    path = tmp_path / name
    path.write_text(SCENARIO.format(duration=duration, meta=meta, service=service, production=production, rate=rate, more=more))
    return str(path)


def plan_of(path: str) -> batched.Plan | str:
    loaded = load(path)
    service = tuned_service(loaded.spec)
    return batched.plan_for(loaded, service, service.rollout, 2.0)


def run(plan: batched.Plan, seed: int = 1) -> batched.Outcome:
    return batched.run(plan, plan.models[plan.canary], plan.models[plan.stable], seed)


@pytest.mark.parametrize(("change", "why"), [
    (dict(more='[[timeline]]\nat = "10s"\naction = "crash"\ntarget = "app@canary"\nduration = "1s"'), "the scenario has a timeline"),
    (dict(meta='request_limit = "1s"'), "a request limit is set"),
    (dict(production='cold_start = "50ms"'), "app@production has cold starts"),
    (dict(more='[[traffic]]\nusers = 5\nrequests = [{ url = "https://app.test/" }]'), "traffic[1] is not an open group"),
    (dict(more='[[traffic]]\narrivals = "constant(5/s)"\nrequests = [{ url = "https://app.test/" }]'), "traffic[1] is not Poisson"),
    (dict(more='[[traffic]]\ntimeout = "1s"\nrequests = [{ url = "https://app.test/" }]'), "traffic[1] has a client timeout"),
    (dict(more='[[traffic]]\nrequests = [{ url = "https://canary.app.edge.workers.dev/" }]'), "traffic[1] pins an environment"),
])
def test_a_scenario_it_cannot_take_is_named_with_the_reason(tmp_path, change, why):
    assert plan_of(write(tmp_path)).__class__ is batched.Plan
    reason = plan_of(write(tmp_path, name="other.toml", **change))
    assert isinstance(reason, str) and reason.startswith(why), reason


def test_a_template_that_reaches_no_route_is_sent_nowhere(tmp_path):
    # A 404 never reaches the split: the service sees the other template's requests alone.
    plan = plan_of(write(tmp_path, more='[[traffic]]\narrivals = "poisson(50/s)"\nrequests = [{ url = "https://elsewhere.test/" }]'))
    assert isinstance(plan, batched.Plan) and plan.groups[1].split == (False,)
    assert batched.coupling_bound(plan, plan.models["canary"], plan.models["production"])[0] < 1e-6
    outcome = run(plan)
    assert outcome.requests == pytest.approx(50 * outcome.simulated_s, rel=0.1)  # the first group's alone


def _limits(tmp_path, **change) -> tuple[batched.Plan, batched.Peaks]:
    plan = plan_of(write(tmp_path, **change))
    assert isinstance(plan, batched.Plan)
    return plan, run(plan).peaks


def _exact_peaks(plan: batched.Plan) -> tuple[dict[str, int], int]:
    """The most calls per environment and CPU steps at once in seed 1's run, counted exactly."""
    done = batched._Run(plan, batched.Model.of(plan.models["canary"]), batched.Model.of(plan.models["production"]), 1)
    done.go()
    calls = {name: batched._most_at_once(*answers.columns()[:2], 0) for name, answers in done.answers.items()}
    starts, ends = (np.concatenate(side) for side in zip(*done.cpu))
    busy = ends > starts
    return calls, batched._most_at_once(starts[busy], ends[busy], 0)


@pytest.mark.parametrize(("intervals", "exact"), [
    ([(0, 2), (1, 3), (2, 4)], 2),  # one ends as the third begins: not counted
    ([(0, 1), (1, 2), (2, 3)], 1),
    ([(0, 5), (1, 2), (1.5, 3), (4, 6)], 3),
])
def test_most_at_once_is_exact_when_it_may_pass_the_limit_and_a_bound_below_it(intervals, exact):
    begin, end = (np.asarray(side, dtype=float) for side in zip(*intervals))
    assert batched._most_at_once(begin, end, exact - 1) == exact  # could be over: counted exactly
    bound = batched._most_at_once(begin, end, 10)
    assert exact <= bound <= 10


def test_slots_full_at_one_more_call_than_concurrency(tmp_path):
    plan, peaks = _limits(tmp_path, rate=400)
    most = _exact_peaks(plan)[0]["production"]
    assert 1 < most <= peaks.calls["production"]
    run(dataclasses.replace(plan, concurrency={**plan.concurrency, "production": most}))  # exactly full: no call waited
    with pytest.raises(batched.Coupled, match="calls to production filled its slots"):
        run(dataclasses.replace(plan, concurrency={**plan.concurrency, "production": most - 1}))


def test_cores_busy_at_one_more_step_than_cores(tmp_path):
    plan, peaks = _limits(tmp_path, rate=400)
    most = _exact_peaks(plan)[1]
    assert 1 < most <= peaks.cores
    run(dataclasses.replace(plan, cores=most))
    with pytest.raises(batched.Coupled, match="filled the node's cores"):
        run(dataclasses.replace(plan, cores=most - 1))


def test_a_cpu_budget_spent_exactly_is_not_over_it(tmp_path):
    # No failures, so no retry adds a second step: the peak is one draw, and a budget of exactly
    # that is spent, not exceeded (``CpuAccount.charge`` fails only for more than is left).
    plan, _ = _limits(tmp_path)
    plan = dataclasses.replace(plan, models={name: _no_errors(m) for name, m in plan.models.items()})
    peak = run(plan).peaks.cpu_s
    run(dataclasses.replace(plan, cpu_limit=peak))
    with pytest.raises(batched.Coupled, match="over its CPU limit"):
        run(dataclasses.replace(plan, cpu_limit=math.nextafter(peak, 0)))


def _no_errors(model):
    from edge.platform.workers import ModelWorker

    return ModelWorker(model.cpu, model.latency, 0.0, model.error_status, model.size)


def test_an_answer_at_the_end_of_the_drain_is_in_time(tmp_path):
    plan, peaks = _limits(tmp_path, rate=400)  # requests in flight when the traffic stops
    assert 0 < peaks.drain_s < 1
    run(dataclasses.replace(plan, drain=peaks.drain_s))
    with pytest.raises(batched.Coupled, match="unanswered when the drain ended"):
        run(dataclasses.replace(plan, drain=peaks.drain_s * (1 - 1e-9)))  # the stop is at 2 minutes: a relative step shows there


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    arrivals=st.lists(st.floats(0, 30, allow_nan=False), max_size=200),
    failures=st.lists(st.floats(0, 30, allow_nan=False), max_size=80),
    ratio=st.sampled_from([0.0, 0.1, 0.5]),
    per_second=st.sampled_from([0.0, 0.5, 2.0]),
    window=st.sampled_from([1.0, 2.5, 10.0]),
)
def test_the_batched_retry_budget_decides_as_the_routers(arrivals, failures, ratio, per_second, window):
    assume(not set(arrivals) & set(failures))  # a request and a failure at one instant: drawn times never tie
    routed, failed_at = np.sort(np.asarray(arrivals, dtype=float)), np.sort(np.asarray(failures, dtype=float))
    budget = RetryBudget(ratio, per_second, window)
    expected = []
    events = sorted([(t, 0) for t in routed.tolist()] + [(t, 1) for t in failed_at.tolist()])
    for t, kind in events:
        if kind == 0:
            budget.note_request(t)
        else:
            expected.append(budget.spend(t))
    width = window / RetryBudget.BUCKETS
    got = batched.budget_allows(routed, (routed / width).astype(np.int64), failed_at, ratio, per_second * window, width, [])
    assert got.tolist() == expected


def test_the_budget_allows_a_retry_that_spends_it_exactly():
    # floor 1 + 0.5 x 2 requests = 2 retries in the window: the second is exactly the budget, the third one over.
    routed = np.array([0.1, 0.2])
    allowed = batched.budget_allows(routed, (routed / 1.0).astype(np.int64), np.array([0.3, 0.4, 0.5]), 0.5, 1.0, 1.0, [])
    assert allowed.tolist() == [True, True, False]


def test_the_same_seed_gives_the_same_replication_and_seeds_differ(tmp_path):
    path = write(tmp_path)
    a, b, c = (replicate(Task(path, 0, "bad", seed)) for seed in (5, 5, 6))
    assert a == b and a != c and a.engine == "batched"


def test_requests_that_could_meet_run_per_request_and_a_replication_whose_did_falls_back(tmp_path, monkeypatch):
    # Four slots a environment at 200 req/s of ~3 ms calls: several find them full in any run.
    path = write(tmp_path, rate=200, service="concurrency = 4")
    plan, why, bound = tuner.batch_engine(path, 0, "bad")
    assert plan is None and why.startswith("requests could meet") and "slots full" in why and bound > batched.COUPLING_LIMIT
    ran = replicate(Task(path, 0, "bad", 3))
    assert (ran.engine, ran.why, ran.fell_back) == ("per-request", why, False)
    tuner.batch_engine.cache_clear()
    monkeypatch.setattr(batched, "COUPLING_LIMIT", 1.0)  # let it try: its draws show the calls that met
    try:
        fell = replicate(Task(path, 0, "bad", 3))
    finally:
        tuner.batch_engine.cache_clear()
    assert fell.fell_back and fell.engine == "per-request" and "filled its slots" in fell.why
    assert msgspec.structs.replace(fell, why=None, fell_back=False) == msgspec.structs.replace(ran, why=None)  # the same per-request run


def test_a_bound_exactly_at_the_limit_runs_batched(tmp_path, monkeypatch):
    path = write(tmp_path, rate=200)
    _, _, bound = tuner.batch_engine(path, 0, "bad")
    for limit, engine in ((bound, "batched"), (math.nextafter(bound, 0), "per-request")):
        tuner.batch_engine.cache_clear()
        monkeypatch.setattr(batched, "COUPLING_LIMIT", limit)
        assert replicate(Task(path, 0, "bad", 1)).engine == engine
    tuner.batch_engine.cache_clear()


def test_it_agrees_with_the_per_request_engine_on_a_small_rollout(tmp_path):
    # 150 replications each, other seeds: the phase and the figures tune reports cannot be told
    # apart (the slow tier does 200 per scenario on the worked example and a retry-heavy one).
    path = write(tmp_path, rate=20)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2) as pool:
        fast = list(pool.map(replicate, [Task(path, 0, "bad", 1000 + i) for i in range(150)], chunksize=10))
        slow = list(pool.map(replicate, [Task(path, 0, "bad", 2000 + i, True) for i in range(150)], chunksize=10))
    phases = sorted({r.phase for r in fast + slow})
    table = [[sum(r.phase == p for r in runs) for p in phases] for runs in (fast, slow)]
    assert len(phases) > 1 and stats.chi2_contingency(table).pvalue > 0.001, (Counter(r.phase for r in fast), Counter(r.phase for r in slow))
    for field in ("ended_at_s", "canary_requests", "canary_errors", "canary_errors_seen", "retries", "requests"):
        a = [getattr(r, field) or -1.0 for r in fast]
        b = [getattr(r, field) or -1.0 for r in slow]
        assert stats.ks_2samp(a, b).pvalue > 0.001, (field, np.mean(a), np.mean(b))


def test_edge_tune_per_request_says_so_in_its_json(tmp_path):
    path = write(tmp_path)
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", path, "--replications", "3", "--jobs", "1", "--per-request",
                           "--json", out, "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    engine = json.loads(out.read_text())["engine"]
    assert (engine["batched"], engine["per_request"], engine["why_per_request"], engine["coupling_bound"]) == (0, 6, ["--per-request"], None)
    done = subprocess.run([sys.executable, "-m", "edge.cli", "tune", path, "--replications", "3", "--jobs", "1", "--json", out, "-q"],
                          capture_output=True, text=True, timeout=300)
    engine = json.loads(out.read_text())["engine"]
    assert (engine["batched"], engine["per_request"], engine["fell_back"]) == (6, 0, 0)
    assert 0 < engine["coupling_bound"] < batched.COUPLING_LIMIT and engine["batched_s"] == engine["simulated_s"] > 0


@pytest.mark.parametrize(("rate", "phase"), [(400, "promoted"), (1, "unfinished")])
def test_an_analysis_due_as_the_traffic_ends_runs_only_while_requests_are_in_flight(tmp_path, rate, phase):
    # The last analysis is due at exactly the end of the traffic (2 steps of 1 minute, 2 minutes).
    # The traffic stops first (its timer was set first); the analysis then runs in the drain if a
    # request is still in flight, and never if none is: the run ends at once. Both engines agree.
    path = tmp_path / "end.toml"
    path.write_text(SCENARIO.format(duration="2m", meta="", service="", production="", rate=rate, more="").replace(
        'steps = [10, 50, 100]\ninterval = "20s"', 'steps = [50, 100]\ninterval = "1m"').replace(
        'candidates = [{ steps = [10, 50, 100], interval = "20s" }]', 'candidates = [{ steps = [50, 100], interval = "1m" }]').replace(
        'compare = { alpha = 0.01 }\n', '').replace('"lognormal(p50=2ms, p99=20ms)"', '"20ms"'))
    for seed in (1, 2):
        fast, slow = replicate(Task(str(path), 0, "good", seed)), replicate(Task(str(path), 0, "good", seed, True))
        assert fast.engine == "batched" and (fast.phase, fast.ended_at_s) == (slow.phase, slow.ended_at_s), (fast, slow)
        assert fast.phase == phase and fast.windows[-1][0] == (120.0 if phase == "promoted" else 60.0)


def test_a_retry_on_the_canary_is_answered_by_the_canarys_model(tmp_path):
    # Production fails 30% and retries on the canary, which (the "bad" hypothesis here) never
    # fails: every retry the canary answers succeeds, on both engines.
    path = tmp_path / "to-canary.toml"
    path.write_text(SCENARIO.format(duration="2m", meta="", service="", production="", rate=50, more="").replace(
        'errors = 0.002 }\n\n[services.environments.canary]', 'errors = 0.3 }\n\n[services.environments.canary]', 1).replace(
        'retry = { to = "production", methods = ["GET"] }', 'retry = { to = "canary", methods = ["GET"] }').replace(
        'bad = { errors = "4%" }', 'bad = { errors = "0%" }').replace('gates = ["error ratio < 3%", "p99 latency < 200ms"]', 'gates = []'))
    for seed in (1, 2, 3):
        fast, slow = replicate(Task(str(path), 0, "bad", seed)), replicate(Task(str(path), 0, "bad", seed, True))
        assert fast.engine == "batched" and fast.retries > 0 and slow.retries > 0
        assert fast.canary_errors == slow.canary_errors == 0


@pytest.mark.parametrize(("change", "part"), [
    (dict(rate=200, service="concurrency = 2"), "slots full"),  # the slot limit binds
    (dict(rate=400, meta="cores = 1"), "every core busy"),  # the node's one core saturates
])
def test_a_scenario_whose_requests_meet_runs_per_request_and_says_why(tmp_path, change, part):
    path = write(tmp_path, **change)
    plan, why, bound = tuner.batch_engine(path, 0, "good")
    assert plan is None and part in why and bound > batched.COUPLING_LIMIT
    result = tuner.tune(load(path), budget=Budget(fixed=3), executor=None)
    forced = tuner.tune(load(path), budget=Budget(fixed=3), executor=None, per_request=True)
    assert result.engine.batched == 0 and result.engine.per_request == 6 and result.engine.why_per_request == [why]
    assert msgspec.json.encode(result.candidates) == msgspec.json.encode(forced.candidates)  # the same simulations
