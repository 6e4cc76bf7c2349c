"""Service bindings as workerd has them, in virtual time: a callee's error raised in its caller,
redirects followed, immutable headers, and ``ctx.wait_until``. ``tests/test_conformance.py``
checks the same behaviours live against workerd itself; these hold them in ``edge run``."""

from __future__ import annotations

import pytest
from conftest import send, text
from scenario_builder import compose, service

from edge.engine.front_door import LATER_POLL
from edge.platform.fetch import MAX_REDIRECTS, ImmutableHeaders, Request, Response, follow_redirect
from edge.scenario.values import EnvironmentKey

def pair(**meta: object) -> str:
    """caller, public, bound to callee as CALLEE."""
    return compose(service("caller", routes=["example.com/*"], worker="caller.py", bindings={"CALLEE": "callee"}),
                   service("callee", routes=None, worker="callee.py"), cpu_limit="50ms", **meta)


PAIR = pair()


def run_pair(make_scenario, caller: str, callee: str, *requests: Request):
    loaded = make_scenario(PAIR, {"caller.py": caller, "callee.py": callee})
    return send(loaded, list(requests) or [Request("https://example.com/")])


CATCHING_CALLER = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    try:
        answer = await env.CALLEE.fetch(request)
    except Exception as e:
        return Response(f"{type(e).__name__}: {e}")
    return Response(f"answered {answer.status}")
"""


@pytest.mark.parametrize(
    ("raised", "caught"),
    [
        ('raise RuntimeError("boom")', "RuntimeError: boom"),
        ('raise ValueError("bad", 2)', "ValueError: ('bad', 2)"),
        ("return 'not a Response'", "TypeError: fetch() must return a Response, returned str"),
        ('class Mine(Exception): pass\n    raise Mine("its own class")', "Exception: its own class"),
    ],
)
def test_a_callee_that_raises_makes_its_callers_fetch_raise_the_same_message(make_scenario, raised, caught):
    callee = f"async def fetch(request, env, ctx):\n    {raised}\n"
    [response], result = run_pair(make_scenario, CATCHING_CALLER, callee)
    assert (response.status, text(response)) == (200, caught)
    callee_stats = result.metrics.environments[EnvironmentKey("callee", "production")]
    assert callee_stats.exceptions == 1 and callee_stats.totals()[4] == 1  # the callee's own answer was a 500
    assert result.metrics.environments[EnvironmentKey("caller", "production")].exceptions == 0


def test_an_uncaught_callee_error_fails_the_caller_too_and_the_client_sees_1101(make_scenario):
    caller = "async def fetch(request, env, ctx):\n    return await env.CALLEE.fetch(request)\n"
    callee = "async def fetch(request, env, ctx):\n    raise RuntimeError('boom')\n"
    [response], result = run_pair(make_scenario, caller, callee)
    assert (response.status, text(response)) == (500, "error code: 1101")
    assert result.metrics.environments[EnvironmentKey("caller", "production")].exceptions == 1


def test_an_answer_the_callee_chose_is_still_an_answer(make_scenario):
    callee = "from edge.platform.fetch import Response\nasync def fetch(request, env, ctx):\n    return Response('no', status=503)\n"
    [response], _ = run_pair(make_scenario, CATCHING_CALLER, callee)
    assert text(response) == "answered 503"


REDIRECTING_CALLEE = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    hops = int(request.path.strip("/") or 0)
    if hops > 0:
        return Response.redirect(f"https://callee.test/{hops - 1}", 302)
    return Response(f"{request.method} arrived after the redirects")
"""


def _following_caller(mode: str) -> str:
    option = "" if mode == "default" else f', {{"redirect": "{mode}"}}'
    return f"""
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    try:
        answer = await env.CALLEE.fetch("https://callee.test" + request.path{option})
    except TypeError as e:
        return Response(f"TypeError: {{e}}")
    return Response(f"{{answer.status}} {{answer.redirected}} {{await answer.text()}}")
"""


@pytest.mark.parametrize(
    ("mode", "hops", "seen"),
    [
        ("default", 0, "200 False GET arrived after the redirects"),
        ("default", 1, "200 True GET arrived after the redirects"),
        ("follow", MAX_REDIRECTS, "200 True GET arrived after the redirects"),  # exactly the limit
        ("follow", MAX_REDIRECTS + 1, f"TypeError: CALLEE.fetch: more than {MAX_REDIRECTS} redirects"),
        ("manual", 1, "302 False "),
        ("error", 1, 'TypeError: CALLEE.fetch: a redirect (302) with redirect set to "error"'),
        ("error", 0, "200 False GET arrived after the redirects"),
    ],
)
def test_a_binding_follows_redirects_as_fetch_does(make_scenario, mode, hops, seen):
    loaded = make_scenario(pair(max_invocations=64), {"caller.py": _following_caller(mode), "callee.py": REDIRECTING_CALLEE})
    [response], result = send(loaded, [Request(f"https://example.com/{hops}")])
    assert text(response) == seen
    expected_calls = min(hops, MAX_REDIRECTS) + 1 if mode in ("default", "follow") else 1
    assert result.metrics.environments[EnvironmentKey("callee", "production")].answered == expected_calls  # each hop an invocation


def test_following_a_redirect_changes_the_method_only_where_fetch_does():
    post = Request("https://a.test/x/y", method="POST", headers={"content-type": "text/plain", "x-keep": "1"}, body="data")
    for status, method, body in [(301, "GET", None), (302, "GET", None), (303, "GET", None), (307, "POST", b"data"), (308, "POST", b"data")]:
        following = follow_redirect(post, Response(None, status, headers={"location": "../z?q=1"}))
        assert following is not None
        assert (following.url, following.method, following._body) == ("https://a.test/z?q=1", method, body)
        assert following.headers.get("x-keep") == "1"
        assert (following.headers.get("content-type") is None) == (method == "GET")
    put = Request("https://a.test/", method="PUT", body="data")
    assert follow_redirect(put, Response(None, 302, headers={"location": "/b"})).method == "PUT"
    assert follow_redirect(put, Response(None, 303, headers={"location": "/b"})).method == "GET"
    assert follow_redirect(put, Response(None, 302)) is None  # no Location: nothing to follow
    assert follow_redirect(put, Response(None, 304)) is None and follow_redirect(put, Response("x")) is None


def test_a_delivered_requests_headers_and_a_bindings_answer_are_immutable_and_copies_are_not(make_scenario):
    caller = """
from edge.platform.fetch import Request, Response, Headers
async def fetch(request, env, ctx):
    said = []
    for name, change in [("request", lambda: request.headers.set("x", "1")),
                         ("clone", lambda: request.clone().headers.append("x", "1"))]:
        try:
            change()
            said.append(f"{name}: changed")
        except TypeError as e:
            said.append(f"{name}: {e}")
    copy = Request(request)
    copy.headers.set("x", "1")
    answer = await env.CALLEE.fetch(copy)
    try:
        answer.headers.delete("x-callee")
    except TypeError:
        said.append("answer: immutable")
    mutable = Headers(answer.headers)
    mutable.set("x-callee", "changed")
    said.append(f"copy: {mutable.get('x-callee')}; callee saw x={await answer.text()}")
    return Response("; ".join(said))
"""
    callee = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    return Response(request.headers.get("x"), headers={"x-callee": "1"})
"""
    [response], _ = run_pair(make_scenario, caller, callee)
    assert text(response) == (
        "request: Can't modify immutable headers.; clone: Can't modify immutable headers.; "
        "answer: immutable; copy: changed; callee saw x=1"
    )
    assert isinstance(Request("https://a.test/").headers.copy(), type(Request("https://a.test/").headers))
    assert not isinstance(Request("https://a.test/").headers, ImmutableHeaders)


WAITING_WORKER = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    async def later(seconds, fail):
        await ctx.sleep(seconds)
        await ctx.cpu("{cpu}")
        if fail:
            raise RuntimeError("after the answer")
    ctx.wait_until(later(0.05, False))
    ctx.wait_until(later(0.01, request.path == "/fail"))
    return Response("answered")
"""


@pytest.mark.parametrize(("cpu", "limited"), [("1ms", False), ("25ms", False), ("26ms", True)])
def test_wait_until_work_runs_after_the_answer_on_the_calls_cpu_budget(make_scenario, cpu, limited):
    # Two pieces of 25 ms + 25 ms spend the 50 ms budget exactly; 26 ms each goes over it.
    loaded = make_scenario(PAIR, {"caller.py": WAITING_WORKER.format(cpu=cpu), "callee.py": "async def fetch(r, e, c):\n    pass\n"})
    [response], result = send(loaded, [Request("https://example.com/")])
    assert (response.status, text(response)) == (200, "answered")
    stats = result.metrics.environments[EnvironmentKey("caller", "production")]
    assert stats.answered == 1 and stats.latency.max < 0.01  # answered before the work: its 60 ms are not the latency
    spent = min(2 * float(cpu[:-2]) / 1000, 0.05)
    assert stats.cpu_seconds == pytest.approx(spent)
    assert stats.cpu_limit_exceeded == (1 if limited else 0) and stats.exceptions == 0
    # The run drained only once the work had ended: its waits (60 ms) and CPU, one after the other.
    assert 0.06 + spent - 1e-9 <= result.simulated <= 0.06 + spent + LATER_POLL + 1e-9


def test_wait_until_work_that_raises_is_counted_and_answers_nobody(make_scenario):
    loaded = make_scenario(PAIR, {"caller.py": WAITING_WORKER.format(cpu="1ms"), "callee.py": "async def fetch(r, e, c):\n    pass\n"})
    [response], result = send(loaded, [Request("https://example.com/fail")])
    assert (response.status, text(response)) == (200, "answered")
    assert result.metrics.environments[EnvironmentKey("caller", "production")].exceptions == 1


def test_wait_until_takes_only_awaitables():
    from actors.context import Context

    class Actor:
        rng = None

    ctx = Context(Actor())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes an awaitable"):
        ctx.wait_until(lambda: None)  # type: ignore[arg-type]


def test_work_handed_over_by_wait_until_work_runs_too_and_not_with_the_next_call(make_scenario):
    worker = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    async def second():
        await ctx.cpu("2ms")
    async def first():
        await ctx.cpu("1ms")
        ctx.wait_until(second())
    ctx.wait_until(first())
    return Response("answered")
"""
    loaded = make_scenario(PAIR, {"caller.py": worker, "callee.py": "async def fetch(r, e, c):\n    pass\n"})
    responses, result = send(loaded, [Request("https://example.com/"), (1.0, Request("https://example.com/"))])
    assert [text(r) for r in responses] == ["answered", "answered"]
    stats = result.metrics.environments[EnvironmentKey("caller", "production")]
    assert stats.cpu_seconds == pytest.approx(2 * 0.003) and stats.exceptions == 0
