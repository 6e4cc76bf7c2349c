"""The batched engine against the per-request one, in distribution (the slow tier: ``pytest -m slow``).

Each engine replicates the same rollouts on 200 seeds of its own; for every outcome ``edge tune``
reports (phase, time to rollback or promotion, canary requests, canary errors, errors seen after
the fallback, retries, requests) and the per-window counts (canary answers and 5xx of each
analysis), a two-sample test must not tell the engines apart. Anderson and Darling's k-sample
test handles the ties of these discrete outcomes; the phase is a 2 x k contingency table.
Each test is at 0.001: with about sixty of them, a false alarm somewhere has about a 6% chance,
and the seeds are fixed, so an outcome that passes keeps passing until the engines change.

Scenarios: the worked example's recommended schedule (``scenarios/tune-canary.toml`` #3: SPRT on
5/25/100), its gate-only schedule (#1, failure limit 1), and a retry-heavy one whose budget denies
retries (every decision taken in the order of the failures).
"""

from __future__ import annotations

import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from edge.tune.tuner import Task, replicate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LEVEL = 0.001
N = 200

RETRY_HEAVY = """
[scenario]
name = "retry-heavy"
duration = "3m"

[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
model = { cpu = "exp(200us)", latency = "lognormal(p50=3ms, p99=40ms)", errors = 0.01 }
[services.environments.canary]
model = { cpu = "exp(200us)", latency = "lognormal(p50=3ms, p99=40ms)", errors = 0.01 }
[services.split]
weights = { production = 100, canary = 0 }
retry = { to = "production", methods = ["GET"], budget = { ratio = 0.05, min_per_second = 1, window = "5s" } }

[services.rollout]
steps = [20, 50, 100]
interval = "20s"
gates = ["error ratio < 40%", "p99 latency < 100ms"]
min_requests = 50
no_data = "hold"
failure_limit = 2

[[traffic]]
arrivals = "poisson(120/s)"
requests = [{ weight = 8, url = "https://app.test/" }, { weight = 2, method = "POST", url = "https://app.test/" }]

[tune]
bad = { errors = "30%" }
candidates = [{ steps = [20, 50, 100], interval = "20s" }]
"""

OUTCOMES = ("ended_at_s", "requests", "canary_requests", "canary_errors", "canary_errors_seen", "retries")


def _replicate(path: str, candidate: int, hypothesis: str, per_request: bool) -> list:
    tasks = [Task(path, candidate, hypothesis, (20_000 if per_request else 10_000) + i, per_request) for i in range(N)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(replicate, tasks, chunksize=4))


def _same(name: str, a: list[float], b: list[float]) -> None:
    if len(set(a) | set(b)) < 2:
        assert a == b, name
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when it caps the p-value at 0.25 or 0.001
        p = stats.anderson_ksamp([np.asarray(a, float), np.asarray(b, float)]).pvalue
    assert p > LEVEL, f"{name}: the engines differ (Anderson-Darling p = {p:.4f}; means {np.mean(a):.4g} vs {np.mean(b):.4g})"


def _agree(path: str, candidate: int, hypothesis: str) -> list:
    batched, per_request = _replicate(path, candidate, hypothesis, False), _replicate(path, candidate, hypothesis, True)
    assert {r.engine for r in batched} == {"batched"} and {r.engine for r in per_request} == {"per-request"}
    phases = sorted({r.phase for r in batched + per_request})
    table = [[sum(r.phase == p for r in runs) for p in phases] for runs in (batched, per_request)]
    if len(phases) > 1:
        p = stats.chi2_contingency(table).pvalue if min(map(min, table)) >= 5 else stats.fisher_exact(table).pvalue
        assert p > LEVEL, f"phase: {Counter(r.phase for r in batched)} vs {Counter(r.phase for r in per_request)} (p = {p:.4f})"
    for field in OUTCOMES:
        _same(field, [_number(getattr(r, field)) for r in batched], [_number(getattr(r, field)) for r in per_request])
    for k in range(2):  # the first two analyses, which (nearly) every run has
        for i, what in ((1, "answers"), (2, "errors")):
            _same(f"window {k + 1} canary {what}", [r.windows[k][i] for r in batched if len(r.windows) > k],
                  [r.windows[k][i] for r in per_request if len(r.windows) > k])
    return batched


def _number(value: float | None) -> float:
    return -1.0 if value is None else float(value)  # never ended: a value of its own


@pytest.mark.parametrize("hypothesis", ["bad", "good"])
@pytest.mark.parametrize("candidate", [3, 1])
def test_the_worked_example_agrees(candidate, hypothesis):
    _agree(str(ROOT / "scenarios" / "tune-canary.toml"), candidate, hypothesis)


@pytest.mark.parametrize("hypothesis", ["bad", "good"])
def test_a_retry_heavy_rollout_agrees(tmp_path, hypothesis):
    path = tmp_path / "retry.toml"
    path.write_text(RETRY_HEAVY)
    runs = _agree(str(path), 0, hypothesis)
    if hypothesis == "bad":
        # The budget denied retries: 80% of the canary's failures are GETs, far fewer were retried.
        assert sum(r.retries for r in runs) < 0.6 * sum(r.canary_errors for r in runs)
