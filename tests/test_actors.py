"""Actor behaviour: canary split, retry fallback, failures, shedding, CPU and invocation limits."""

from __future__ import annotations

import math

import pytest
from conftest import send, text
from scenario_builder import canary_service, compose, service

from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey

WEB = ["example.com/*"]
RETRY = {"on": "5xx", "methods": ["GET", "HEAD"], "to": "production"}

FRONT = """
async def fetch(request, env, ctx):
    return await env.APP.fetch(request)
"""


def split(make_scenario, *, canary: float, canary_errors: float = 0.0, prod_errors: float = 0.0, retry: bool = True):
    front = service("front", routes=WEB, bindings={"APP": "app"}, worker="front.py")
    app = canary_service(routes=None, production={"model": {"errors": prod_errors}}, canary={"model": {"errors": canary_errors}},
                         weight=canary, split={"retry": RETRY} if retry else None)
    return make_scenario(compose(front, app, cores=64), {"front.py": FRONT})


def served(result, env: str) -> int:
    return result.metrics.environments[EnvironmentKey("app", env)].answered


@pytest.mark.parametrize("canary, n", [(1.0, 40_000), (0.1, 200_000)])
def test_canary_share_is_within_binomial_bounds(make_scenario, canary, n):
    loaded = split(make_scenario, canary=canary)
    _, result = send(loaded, [(i * 1e-3, Request("https://example.com/")) for i in range(n)])
    p = canary / 100
    got = served(result, "canary")
    sd = math.sqrt(n * p * (1 - p))
    assert abs(got - n * p) < 4 * sd, (got, n * p, sd)
    assert served(result, "production") == n - got
    assert result.metrics.canary_weights[("app", "canary")] == canary


def test_failed_canary_get_is_retried_on_production(make_scenario):
    loaded = split(make_scenario, canary=50, canary_errors=1.0)
    responses, result = send(loaded, [(i * 1e-3, Request("https://example.com/")) for i in range(400)])
    assert all(r.status == 200 for r in responses)  # every canary failure was rescued
    retried = result.metrics.retries[("app", "canary", "production")]
    assert retried == served(result, "canary") > 100
    assert served(result, "production") == 400  # every request ends on production


def test_post_is_not_retried(make_scenario):
    loaded = split(make_scenario, canary=50, canary_errors=1.0)
    requests = [(i * 1e-3, Request("https://example.com/", method="POST", body="x")) for i in range(400)]
    responses, result = send(loaded, requests)
    failed = sum(r.status == 500 for r in responses)
    assert failed == served(result, "canary") > 100
    assert not result.metrics.retries


def test_only_5xx_is_retried(make_scenario):
    worker = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        return Response("gone", status=404)
    """
    app = canary_service(routes=WEB, production={"model": {"errors": 0}}, canary={"worker": "canary.py"}, weight=50, split={"retry": RETRY})
    loaded = make_scenario(compose(app), {"canary.py": worker})
    responses, result = send(loaded, [(i * 1e-3, Request("https://example.com/")) for i in range(200)])
    assert sum(r.status == 404 for r in responses) == served(result, "canary") > 50
    assert not result.metrics.retries


EXCEPTIONS = service(routes=WEB, worker="app.py", concurrency=1)


def test_worker_exception_is_a_500_for_that_request_only(make_scenario):
    worker = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        await ctx.cpu("1ms")
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        return Response("fine")
    """
    loaded = make_scenario(compose(EXCEPTIONS), {"app.py": worker})
    paths = ["/", "/boom", "/", "/boom", "/"]
    responses, result = send(loaded, [Request(f"https://example.com{p}") for p in paths])
    assert [r.status for r in responses] == [200, 500, 200, 500, 200]
    assert text(responses[1]) == "error code: 1101"
    stats = result.metrics.environments[EnvironmentKey("app", "production")]
    assert stats.exceptions == 2
    assert stats.requests["1"][1] == 3 and stats.requests["1"][4] == 2


def test_exception_messages_never_leak_secrets(make_scenario, caplog):
    worker = """
    async def fetch(request, env, ctx):
        raise ValueError("token was " + env.TOKEN)
    """
    loaded = make_scenario(compose(EXCEPTIONS | {"secrets": {"TOKEN": "hunter2-very-secret"}}), {"app.py": worker})
    [response], _ = send(loaded, [Request("https://example.com/")])
    assert response.status == 500
    assert "hunter2" not in caplog.text
    assert "token was ***" in caplog.text


def test_full_mailbox_sheds_with_503_and_counts(make_scenario):
    loaded = make_scenario(compose(service(routes=WEB, model={"latency": "10ms"}, concurrency=2, mailbox=3)))
    responses, result = send(loaded, [Request("https://example.com/") for _ in range(10)])
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 5  # 2 in service + 3 queued
    assert statuses.count(503) == 5
    assert result.metrics.environments[EnvironmentKey("app", "production")].shed == 5
    assert result.metrics.clients.shed == 5
    assert all(text(r) == "error code: 1200" for r in responses if r.status == 503)


CPU_CHAIN = compose(service("front", routes=WEB, worker="front.py", bindings={"HEAVY": "heavy"}),
                    service("heavy", routes=None, worker="heavy.py"), cpu_limit="10ms")


def test_cpu_limit_fails_the_top_level_request_and_names_the_burner(make_scenario):
    front = """
    async def fetch(request, env, ctx):
        await ctx.cpu("4ms")
        return await env.HEAVY.fetch(request)
    """
    heavy = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        await ctx.cpu(request.path.strip("/"))
        return Response("done")
    """
    loaded = make_scenario(CPU_CHAIN, {"front.py": front, "heavy.py": heavy})
    responses, result = send(loaded, [Request("https://example.com/5ms"), Request("https://example.com/7ms")])
    assert [r.status for r in responses] == [200, 503]
    assert text(responses[1]) == "error code: 1102"
    envs = result.metrics.environments
    assert envs[EnvironmentKey("heavy", "production")].cpu_limit_exceeded == 1
    assert envs[EnvironmentKey("front", "production")].cpu_limit_exceeded == 0
    assert result.metrics.clients.cpu_limit_exceeded == 1
    # The failing chain was charged exactly its budget, not what it asked for.
    assert envs[EnvironmentKey("heavy", "production")].cpu_seconds == pytest.approx(0.005 + 0.006)
    assert result.metrics.request_cpu["front"].max == pytest.approx(0.010)


def test_front_cannot_swallow_the_cpu_limit(make_scenario):
    front = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        try:
            return await env.HEAVY.fetch(request)
        except Exception:
            return Response("pretend all is well")
    """
    heavy = """
    async def fetch(request, env, ctx):
        await ctx.cpu("50ms")
    """
    loaded = make_scenario(CPU_CHAIN, {"front.py": front, "heavy.py": heavy})
    [response], _ = send(loaded, [Request("https://example.com/")])
    assert response.status == 503


def test_binding_invocations_are_limited_per_request(make_scenario):
    toml = compose(service("loop", routes=WEB, worker="loop.py", bindings={"SELF": "loop"}), max_invocations=32)
    worker = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        depth = int(request.headers.get("depth") or 0)
        if depth == int(request.path.strip("/")):
            return Response(str(depth))
        return await env.SELF.fetch(request.url, {"headers": {"depth": str(depth + 1)}})
    """
    loaded = make_scenario(toml, {"loop.py": worker})
    responses, result = send(loaded, [Request("https://example.com/32"), Request("https://example.com/1000000")])
    assert responses[0].status == 200 and text(responses[0]) == "32"
    assert responses[1].status == 500  # the 33rd invocation raised in the caller: no hang, no RecursionError
    assert result.metrics.environments[EnvironmentKey("loop", "production")].exceptions >= 1


def test_rpc_methods_are_callable_through_bindings(make_scenario):
    toml = compose(service("gateway", routes=WEB, worker="gateway.py", bindings={"HOOKS": "hooks"}),
                   service("hooks", routes=None, worker="hooks.py"))
    gateway = """
    from edge.platform.fetch import Response
    from actors.environment import RpcError
    async def fetch(request, env, ctx):
        before = await env.HOOKS.before(request.path, tag="x")
        try:
            await env.HOOKS.broken()
        except RpcError as exc:
            return Response.json({"before": before, "error": str(exc)})
    """
    hooks = """
    async def fetch(request, env, ctx):
        raise NotImplementedError
    async def before(env, ctx, path, tag):
        await ctx.cpu("1ms")
        return {"path": path, "tag": tag}
    async def broken(env, ctx):
        raise KeyError("missing")
    """
    import msgspec

    loaded = make_scenario(toml, {"gateway.py": gateway, "hooks.py": hooks})
    [response], result = send(loaded, [Request("https://example.com/orders")])
    body = msgspec.json.decode(text(response))
    assert body["before"] == {"path": "/orders", "tag": "x"}
    assert body["error"] == "'missing'"  # the callee's message as it is (str of its KeyError), as on workerd
    assert result.metrics.environments[EnvironmentKey("hooks", "production")].cpu_seconds == pytest.approx(0.001)
