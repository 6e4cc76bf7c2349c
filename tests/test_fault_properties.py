"""Property test of fault isolation: random sequences of requests, each asking the worker for a
random fault (raise any kind of exception, return garbage, spin, block) or for a plain answer.

Whatever the mix, each faulty request gets the platform's error for its fault, every plain one
gets its 200, and the actor still serves a plain request at the end. Virtual time, in process, a
fixed derandomized budget (spins and blocks cost real time up to the step limit).
"""

from __future__ import annotations

import pytest
from conftest import send, text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey

SCENARIO = """
[scenario]
step_limit = "50ms"

[[services]]
name = "app"
routes = ["example.com/*"]
worker = "app.py"
concurrency = 2
secrets = { KEY = "hunter2-prop-secret" }
"""

WORKER = """
import sys, time
from edge.platform.fetch import Response

class Custom(BaseException):
    pass

FAULTS = {
    "exit": lambda env: sys.exit(env.KEY),
    "keyboard": lambda env: (_ for _ in ()).throw(KeyboardInterrupt(env.KEY)),
    "custom": lambda env: (_ for _ in ()).throw(Custom(env.KEY)),
    "generator-exit": lambda env: (_ for _ in ()).throw(GeneratorExit()),
    "runtime": lambda env: 1 / 0,
    "group": lambda env: (_ for _ in ()).throw(BaseExceptionGroup("g", [Custom(), ValueError()])),
}

async def fetch(request, env, ctx):
    fault = request.path.strip("/")
    await ctx.sleep("1ms")  # interleave with the other slot
    if fault in FAULTS:
        FAULTS[fault](env)
    if fault == "garbage":
        return {"not": "a Response"}
    if fault == "none":
        return None
    if fault == "spin":
        while True:
            pass
    if fault == "block":
        time.sleep(10)
    await ctx.cpu("1ms")
    return Response("fine")
"""

EXPECTED = {
    **dict.fromkeys(["exit", "keyboard", "custom", "generator-exit", "runtime", "group", "garbage", "none"], (500, "exception")),
    "spin": (503, "stalled"),
    "block": (503, "stalled"),
    "ok": (200, None),
}
CHEAP = [name for name in EXPECTED if name not in ("spin", "block")]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from edge.scenario.load import load

    folder = tmp_path_factory.mktemp("faults")
    (folder / "app.py").write_text(WORKER)
    (folder / "scenario.toml").write_text(SCENARIO)
    return load(folder / "scenario.toml")


FAULTS = st.lists(st.sampled_from(list(EXPECTED)), min_size=1, max_size=8).filter(
    # Each spin or block costs the 50 ms step limit; and a second stall stops the environment's
    # worker for the rest of the run (actors.environment.STOP_AFTER_STALLS, tests/test_faults.py),
    # after which faults no longer cost only their own requests.
    lambda faults: sum(f not in CHEAP for f in faults) <= 1
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(faults=FAULTS, spacing=st.sampled_from([0.0, 0.0005, 0.002]))
def test_random_faults_cost_their_own_requests_and_the_actor_keeps_serving(loaded, faults, spacing):
    requests = [(i * spacing, Request(f"https://example.com/{fault}")) for i, fault in enumerate([*faults, "ok"])]
    responses, result = send(loaded, requests)
    seen = [(r.status, r.headers.get("x-edge-error")) for r in responses]
    assert seen == [EXPECTED[fault] for fault in [*faults, "ok"]]
    assert text(responses[-1]) == "fine"
    stats = result.metrics.environments[EnvironmentKey("app", "production")]
    assert stats.exceptions == sum(EXPECTED[f][0] == 500 for f in faults)
    assert stats.stalls == sum(f in ("spin", "block") for f in faults)
