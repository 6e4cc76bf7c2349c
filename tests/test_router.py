"""Gradual-deployment routing: sticky affinity, override headers, fractional weights, retry budgets,
and effective (what callers got) against per-attempt success per environment."""

from __future__ import annotations

import random

import pytest

from actors.router import RetryBudget, RouterActor, key_point
from edge.platform.clock import VirtualClock
from edge.platform.fetch import Request
from edge.metrics.recorders import RunMetrics
from edge.report.build import build_report
from edge.engine.simulate import simulate
from conftest import send, text
from scenario_builder import canary_service, compose, traffic

WHO = {
    "who.py": """
        from edge.platform.fetch import Response

        async def fetch(request, env, ctx):
            return Response(env.WHO)
    """
}


def scenario(make_scenario, canary: float, **split):
    """app's environments answer with their names; ``canary`` percent of the traffic goes to the canary."""
    app = canary_service(worker="who.py", production={"vars": {"WHO": "production"}}, canary={"vars": {"WHO": "canary"}},
                         weight=canary, split=split)
    return make_scenario(compose(app, name="router"), WHO)


def who(loaded, requests: list[Request]) -> list[str]:
    responses, _ = send(loaded, requests)
    return [text(r) for r in responses]


def users(n: int, **headers: str) -> list[Request]:
    return [Request("https://app.test/", headers={"x-user": f"user-{i}", **headers}) for i in range(n)]


def test_affinity_keeps_each_key_on_one_environment(make_scenario):
    loaded = scenario(make_scenario, 20, affinity={"header": "x-user"})
    first = who(loaded, users(2000))
    again = who(loaded, users(2000))
    assert first == again  # every user, the same environment, run after run
    assert first.count("canary") == pytest.approx(400, abs=60)
    keyless = who(loaded, [Request("https://app.test/") for _ in range(2000)])
    assert 300 < keyless.count("canary") < 500  # no key: drawn at random by weight


def test_raising_the_canary_weight_only_moves_users_onto_it(make_scenario):
    at_5 = who(scenario(make_scenario, 5, affinity={"header": "x-user"}), users(3000))
    at_25 = who(scenario(make_scenario, 25, affinity={"header": "x-user"}), users(3000))
    assert all(later == "canary" for earlier, later in zip(at_5, at_25) if earlier == "canary")
    assert at_25.count("canary") > 4 * at_5.count("canary")


def test_cookie_affinity(make_scenario):
    loaded = scenario(make_scenario, 50, affinity={"cookie": "session"})
    cookies = [Request("https://app.test/", headers={"cookie": f"theme=dark; session={i % 10}"}) for i in range(200)]
    seen = who(loaded, cookies)
    for session in range(10):
        assert len({seen[i] for i in range(session, 200, 10)}) == 1
    assert 0 < seen.count("canary") < 200


def test_key_points_are_stable_and_uniform():
    assert key_point("user-1") == key_point("user-1")
    assert key_point("user-1") == pytest.approx(key_point.__wrapped__("user-1"))  # not a per-process hash
    points = [key_point(f"k{i}") for i in range(20000)]
    assert all(0 <= p < 100 for p in points)
    assert sum(p < 10 for p in points) == pytest.approx(2000, abs=180)


def test_override_header_pins_a_request_even_at_weight_zero(make_scenario):
    loaded = scenario(make_scenario, 0, override="x-edge-environment")
    pinned = who(loaded, [Request("https://app.test/", headers={"x-edge-environment": "canary"}) for _ in range(50)])
    assert pinned == ["canary"] * 50
    unknown, _ = send(loaded, [Request("https://app.test/", headers={"x-edge-environment": "staging"}) for _ in range(50)])
    assert {r.status for r in unknown} == {400}  # not an environment of app: refused, never routed by weight


def test_fractional_weights_route_their_share():
    metrics = RunMetrics()
    router = RouterActor(
        service="app", targets={"production": lambda c: None, "canary": lambda c: None},
        weights={"production": 99.99, "canary": 0.01}, retry=None, rng=random.Random(7), clock=VirtualClock(), metrics=metrics,
    )
    draws = 1_000_000
    canary = sum(router._choose(None) == "canary" for _ in range(draws))
    assert canary == pytest.approx(draws * 0.0001, abs=4 * (draws * 0.0001) ** 0.5)


def test_retry_budget_window():
    budget = RetryBudget(ratio=0.1, min_per_second=1, window=10)
    for i in range(100):
        budget.note_request(i * 0.05)  # 100 requests in the first 5 s
    allowed = sum(budget.spend(5.0) for _ in range(100))
    assert allowed == 10 + 10  # 1/s over 10 s, plus 10% of 100
    assert not budget.spend(9.9)
    # Ten seconds on, the first requests and retries have left the window: the floor is back.
    assert sum(budget.spend(16.0) for _ in range(100)) == 10


def run_flaky(make_scenario, **budget):
    """A canary that always fails, half the traffic, each failure retried on production (within ``budget``)."""
    app = canary_service(production={"model": {"latency": "1ms"}}, canary={"model": {"latency": "1ms", "errors": 1.0}}, weight=50,
                         split={"retry": {"to": "production"} | budget})
    result = simulate(make_scenario(compose(app, traffic=[traffic()], name="budget")), seed=1, duration=60)
    return build_report(result).routers["app"]


def test_without_a_budget_every_failure_is_retried(make_scenario):
    router = run_flaky(make_scenario)
    assert router.retries["canary->production"] == router.actual["canary"].requests
    assert router.effective["canary"].success_ratio == 1.0 and router.actual["canary"].success_ratio == 0.0
    assert router.retries_denied == {}


def test_a_retry_budget_caps_retries_and_the_rest_fail(make_scenario):
    router = run_flaky(make_scenario, budget={"ratio": 0.1, "min_per_second": 1, "window": "10s"})
    attempts = router.actual["canary"].requests  # half of 6000
    retried = router.retries["canary->production"]
    # 10% of the window's requests plus 1/s: about 0.1 x 100/s + 1/s = 11/s of the 50/s that fail.
    assert retried == pytest.approx(11 * 60, rel=0.1)
    assert router.retries_denied["canary"] == attempts - retried
    assert router.effective["canary"].errors == attempts - retried
    assert router.effective["production"].success_ratio == 1.0
    assert router.actual["production"].requests == router.effective["production"].requests + retried


@pytest.mark.parametrize(
    "split, path, expected",
    [
        ({"affinity": {"header": "x-user", "cookie": "s"}}, "services[0].split.affinity.header", "either `header` or `cookie`"),
        ({"affinity": {}}, "services[0].split.affinity.header", "either `header` or `cookie`"),
        ({"retry": {"budget": {"ratio": -1}}}, "services[0].split.retry.budget.ratio", "retries per request >= 0"),
        ({"retry": {"budget": {"window": "0s"}}}, "services[0].split.retry.budget.window", "positive duration"),
        ({"retry": {"budget": {"min_per_second": "many"}}}, "services[0].split.retry.budget.min_per_second", "expected `int | float`"),
    ],
)
def test_bad_split_options_name_the_path(make_scenario, split, path, expected):
    from edge.scenario.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        scenario(make_scenario, 10, **split)
    assert path in str(raised.value) and expected in str(raised.value), str(raised.value)
