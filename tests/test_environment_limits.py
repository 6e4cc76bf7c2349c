"""An environment actor's limits, each at its boundary: binding invocations per request (32 allowed,
the 33rd refused), concurrency plus mailbox before a call is shed, redirects a binding follows;
and what a caller sees of a worker's failure through a binding (the callee's error, an RPC
method's deliberate status, a missing method).

Driven by hand in virtual time: the scenario's actors (``topology.build``, ``start_actors``) under
``trio.run`` with a ``VirtualClock``, calls posted straight to a service's entry as the front door
posts them, each with its own ``CpuAccount``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.environment import Env
from actors.mailbox import Call
from edge.engine.topology import build, start_actors
from edge.metrics.recorders import RunMetrics
from edge.platform.clock import VirtualClock
from edge.platform.cpu import CpuAccount
from edge.platform.fetch import MAX_REDIRECTS, Request
from scenario_builder import canary_service, compose, service

ENOUGH = 60.0  # seconds of model time: every call here is answered long before


class Answered:
    def __init__(self, call: Call, result: Any) -> None:
        self.call, self.result = call, result

    @property
    def status(self) -> int:
        return self.result.status

    def text(self) -> str:
        async def read() -> str:
            return await self.result.clone().text()

        return trio.run(read)


def serve(loaded, calls: list, *, max_invocations: int = 32, cpu_limit: float = 0.05, setup=None):
    """Post each (service, request) at time 0, or (at, service, request) at ``at``, and run until all
    are answered; returns the answers in order, the topology (its actors' stats) and the calls'
    accounts. ``setup(topology, clock)`` runs first, to schedule what happens meanwhile."""
    clock, metrics = VirtualClock(), RunMetrics()
    topology = build(loaded, seed=1, clock=clock, metrics=metrics)
    answers: dict[int, Answered] = {}
    accounts: list[CpuAccount] = []

    def post(index: int, service: str, request: Request) -> None:
        account = CpuAccount(cpu_limit, max_invocations)
        accounts.append(account)
        call = Call(request, account, lambda c, r: answers.__setitem__(index, Answered(c, r)), clock.now())
        immediate = topology.entries[service](call)
        if immediate is not None:
            answers[index] = Answered(call, immediate)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = start_actors(topology, nursery)
            if setup is not None:
                setup(topology, clock)
            for index, item in enumerate(calls):
                at, service, request = item if len(item) == 3 else (0.0, *item)
                clock.call_later(at, post, index, service, request)
            await clock.sleep(ENOUGH)
            clock.close()
            supervisor.stop()

    trio.run(main, clock=clock)
    assert sorted(answers) == list(range(len(calls))), "every call must be answered"
    return [answers[i] for i in range(len(calls))], topology, accounts


def actor(topology, service: str, environment: str = "production"):
    return next(a for a in topology.environments.values() if (a.service, a.environment) == (service, environment))


# --- binding invocations per request ---------------------------------------------------------------

def loop(**fields) -> str:
    return compose(service("loop", routes=["example.com/*"], worker="loop.py", bindings={"SELF": "loop"}, **fields))


LOOP = loop()

LOOP_WORKER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    depth = int(request.headers.get("depth") or 0)
    if depth == int(request.path.strip("/")):
        return Response(str(depth))
    return await env.SELF.fetch(request.url, {"headers": {"depth": str(depth + 1)}})
"""


@pytest.mark.parametrize("invocations, allowed", [(31, True), (32, True), (33, False)], ids=["under", "at", "over"])
def test_a_request_may_make_exactly_32_binding_invocations(make_scenario, invocations, allowed):
    loaded = make_scenario(LOOP, {"loop.py": LOOP_WORKER})
    [answer], topology, [account] = serve(loaded, [("loop", Request(f"https://example.com/{invocations}"))], max_invocations=32)
    if allowed:
        assert answer.status == 200 and answer.text() == str(invocations)
        assert account.invocations == invocations
        assert actor(topology, "loop").stats.exceptions == 0
    else:
        assert answer.status == 500  # the 33rd raised in the caller, and each caller up the chain
        assert account.invocations == 32  # the refused one is not counted
        assert actor(topology, "loop").stats.exceptions == 33  # every worker in the chain raised


def test_the_invocation_limit_is_per_request(make_scenario):
    loaded = make_scenario(LOOP, {"loop.py": LOOP_WORKER})
    answers, _, accounts = serve(loaded, [("loop", Request("https://example.com/20")) for _ in range(3)], max_invocations=32)
    assert [a.status for a in answers] == [200, 200, 200]  # 60 in all, 20 each
    assert [a.invocations for a in accounts] == [20, 20, 20]


def test_the_limit_error_names_the_limit(make_scenario):
    worker = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if request.path == "/inner":
        return Response("inner")
    await env.SELF.fetch("https://example.com/inner")
    try:
        await env.SELF.fetch("https://example.com/inner")
    except Exception as exc:
        return Response(f"{type(exc).__name__}: {exc}")
    return Response("not refused")
"""
    loaded = make_scenario(LOOP, {"loop.py": worker})
    [answer], _, [account] = serve(loaded, [("loop", Request("https://example.com/"))], max_invocations=1)
    assert answer.text() == ("InvocationLimitExceeded: too many service binding invocations in one request (limit 1): "
                             "is a worker calling itself?")
    assert account.invocations == 1


# --- concurrency and the mailbox -------------------------------------------------------------------

def slow(**fields) -> str:
    return compose(service("app", routes=["example.com/*"], worker="app.py", concurrency=2, mailbox=3, **fields), cores=64)


SLOW = slow()

SLOW_WORKER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.sleep("100ms")
    return Response("ok")
"""


@pytest.mark.parametrize("calls, shed", [(4, 0), (5, 0), (6, 1), (8, 3)], ids=["under", "at", "one over", "three over"])
def test_concurrency_plus_mailbox_calls_are_taken_and_the_next_are_shed(make_scenario, calls, shed):
    loaded = make_scenario(SLOW, {"app.py": SLOW_WORKER})
    answers, topology, _ = serve(loaded, [("app", Request("https://example.com/")) for _ in range(calls)])
    statuses = [a.status for a in answers]
    assert statuses == [200] * (calls - shed) + [503] * shed  # 2 running, 3 waiting: the rest refused
    stats = actor(topology, "app").stats
    assert stats.shed == shed
    assert all(a.call.served_by is actor(topology, "app") for a in answers)  # shed ones too: for the metrics
    assert all(a.call.version == "1" for a in answers)
    from edge.metrics.recorders import status_class

    assert (stats.counts("1")[status_class(200)], stats.counts("1")[status_class(503)]) == (calls - shed, shed)


def test_queued_calls_wait_for_a_slot_in_the_order_they_came(make_scenario):
    loaded = make_scenario(SLOW, {"app.py": SLOW_WORKER})
    _, topology, _ = serve(loaded, [("app", Request(f"https://example.com/{i}")) for i in range(5)])
    latency = actor(topology, "app").stats.latency
    assert latency.count == 5
    # two at 100 ms, two at 200 ms, the last at 300 ms: FIFO through two slots
    assert latency.max == pytest.approx(0.3, rel=0.05)


def test_a_down_environment_refuses_every_call_with_a_503(make_scenario):
    loaded = make_scenario(SLOW, {"app.py": SLOW_WORKER})
    clock, metrics = VirtualClock(), RunMetrics()
    topology = build(loaded, seed=1, clock=clock, metrics=metrics)
    app = actor(topology, "app")
    app.down = True
    call = Call(Request("https://example.com/"), CpuAccount(0.05, 32), lambda c, r: None, 0.0)
    answer = app.post(call)
    assert answer is not None and answer.status == 503 and call.served_by is app
    assert app.stats.shed == 0  # not shed for load: down


# --- redirects through a binding -------------------------------------------------------------------

REDIRECTS = compose(service("front", routes=["example.com/*"], worker="front.py", bindings={"BACK": "back"}), service("back", routes=None, worker="back.py"))

BACK = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    hops = int(request.path.strip("/"))
    if hops == 0:
        return Response("arrived")
    return Response(None, status=302, headers={"location": f"https://back.test/{hops - 1}"})
"""

FRONT = """
from edge.platform.fetch import Request, Response

async def fetch(request, env, ctx):
    hops, mode = request.path.strip("/").split("/")
    try:
        if mode == "object":  # a Request, no init: redirects are followed as for a URL
            response = await env.BACK.fetch(Request(f"https://back.test/{hops}"))
        else:
            response = await env.BACK.fetch(f"https://back.test/{hops}", {"redirect": mode})
    except TypeError as exc:
        return Response(f"TypeError: {exc}")
    return Response(f"{response.status} {response.redirected} {await response.text()}")
"""


@pytest.mark.parametrize("hops, answer, mode", [
    (MAX_REDIRECTS - 1, "200 True arrived", "follow"),
    (MAX_REDIRECTS, "200 True arrived", "follow"),
    (MAX_REDIRECTS + 1, f"TypeError: BACK.fetch: more than {MAX_REDIRECTS} redirects", "follow"),
    (0, "200 False arrived", "follow"),
    (2, "200 True arrived", "object"),
], ids=["under", "at", "over", "none", "a request object"])
def test_a_binding_follows_up_to_max_redirects(make_scenario, hops, answer, mode):
    loaded = make_scenario(REDIRECTS, {"front.py": FRONT, "back.py": BACK})
    [got], _, [account] = serve(loaded, [("front", Request(f"https://example.com/{hops}/{mode}"))], max_invocations=64)
    assert got.text() == answer
    assert account.invocations == min(hops, MAX_REDIRECTS) + 1  # each hop an invocation


def test_a_binding_with_manual_redirects_returns_the_redirect_and_with_error_raises(make_scenario):
    loaded = make_scenario(REDIRECTS, {"front.py": FRONT, "back.py": BACK})
    manual, error = serve(loaded, [("front", Request("https://example.com/1/manual")),
                                   ("front", Request("https://example.com/1/error"))])[0]
    assert manual.text() == "302 False "
    assert error.text() == 'TypeError: BACK.fetch: a redirect (302) with redirect set to "error"'


def test_a_redirect_mode_that_does_not_exist_is_a_type_error_at_the_call(make_scenario):
    loaded = make_scenario(REDIRECTS, {"front.py": FRONT, "back.py": BACK})
    [got], _, [account] = serve(loaded, [("front", Request("https://example.com/0/sometimes"))])
    assert got.text() == "TypeError: redirect must be one of follow, manual, error, not 'sometimes'"
    assert account.invocations == 0  # refused before it was sent


# --- failures as the caller sees them --------------------------------------------------------------

FAILING = compose(service("front", routes=["example.com/*"], worker="front.py", bindings={"BACK": "back"}),
                  service("back", routes=None, worker="back.py", vars={"NAME": "back"}, concurrency=1, mailbox=0))

FAILING_BACK = """
from edge.platform.fetch import Response

class Mine(Exception):
    pass

class Refused(Exception):
    def __init__(self, message, status, code=None):
        super().__init__(message)
        self.status = status
        self.code = code

async def fetch(request, env, ctx):
    if request.path == "/value":
        raise ValueError("bad value", 7)
    if request.path == "/mine":
        raise Mine("my own")
    if request.path == "/not-a-response":
        return "text"
    return Response("fine")

async def refuse(env, ctx, status, code=None):
    raise Refused(f"refused with {status}", status, code)

async def greet(env, ctx, word):
    await ctx.sleep("1ms")
    return f"{word} from {env.NAME}"

async def slow(env, ctx):
    await ctx.sleep("100ms")
    return Response("a Response is a result like any other")
"""

FAILING_FRONT = """
from edge.platform.fetch import Request, Response
from actors.environment import RpcError

async def fetch(request, env, ctx):
    kind, _, arg = request.path.strip("/").partition("/")
    try:
        if kind == "fetch":
            response = await env.BACK.fetch(f"https://back.test/{arg}")
            return Response(f"answered {response.status}")
        if kind == "refuse":
            await env.BACK.refuse(int(arg), code="nope")
        if kind == "missing":
            await env.BACK.nothing_here()
        if kind == "greet":
            return Response(f"greeted {await env.BACK.greet('hello')}")
        if kind == "private":
            try:
                env.BACK._secret
            except AttributeError as exc:
                return Response(f"absent: {exc}")
            return Response("present")
        if kind == "slow":
            answer = await env.BACK.slow()
            return Response(f"{type(answer).__name__} {answer.status} {await answer.text()}")
    except RpcError as exc:
        return Response(f"{type(exc).__name__} {isinstance(exc, TypeError)} {exc.status} {exc.code} {exc.detail} | {exc}")
    except Exception as exc:
        return Response(f"{type(exc).__name__} {exc.args}")
    return Response("no error")
"""


@pytest.mark.parametrize("path, seen, exceptions", [
    ("fetch/value", "ValueError ('bad value', 7)", 1),  # a built-in error stays one, arguments and all
    ("fetch/mine", "Exception ('my own',)", 1),  # a worker's own class, which the caller may not know: Exception
    ("fetch/not-a-response", "TypeError", 1),
    ("fetch/fine", "answered 200", 0),
    ("refuse/400", "RpcError False 400 nope refused with 400 | refused with 400", 0),  # deliberate, the caller's error: not counted
    ("refuse/499", "RpcError False 499 nope refused with 499", 0),
    ("refuse/500", "RpcError False 500 nope refused with 500", 1),  # a deliberate 5xx is the callee's failure
    ("refuse/599", "RpcError False 599 nope refused with 599", 1),
    ("refuse/399", "RpcError False 500 None refused with 399", 1),  # not a status it may fail with: a 500
    ("refuse/600", "RpcError False 500 None refused with 600", 1),
    ("missing/", "RpcMethodMissing True 500 None back has no RPC method 'nothing_here' (methods: greet, refuse, slow) | back has", 0),
    ("greet/", "greeted hello from back", 0),  # an RPC method gets the callee's env and ctx
    ("private/", "absent: _secret", 0),  # a binding has no private methods to call
])
def test_what_a_caller_sees_of_a_callees_failure(make_scenario, path, seen, exceptions):
    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": FAILING_BACK})
    [got], topology, _ = serve(loaded, [("front", Request(f"https://example.com/{path}"))])
    assert got.status == 200 and got.text().startswith(seen)
    assert actor(topology, "back").stats.exceptions == exceptions
    assert actor(topology, "front").stats.exceptions == 0


def test_a_worker_that_raises_answers_500_and_its_slot_serves_the_next_call(make_scenario):
    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": FAILING_BACK})
    answers, topology, _ = serve(loaded, [("back", Request("https://back.test/value")), ("back", Request("https://back.test/fine"))])
    assert [a.status for a in answers] == [500, 200]
    back = actor(topology, "back")
    assert back.stats.exceptions == 1 and answers[0].call.served_by is back


def test_an_rpc_error_raised_by_hand_is_a_500_whose_detail_is_its_message():
    from actors.environment import RpcError

    error = RpcError("boom")
    assert (str(error), error.status, error.code, error.detail) == ("boom", 500, None, "boom")
    assert RpcError("boom", 404, "gone", "the detail").detail == "the detail"


def test_env_names_what_it_has_and_never_shows_values():
    env = Env({"TOKEN": "s3cret", "API": "https://api.test"})
    assert env.TOKEN == "s3cret"
    assert repr(env) == "Env(['API', 'TOKEN'])"
    with pytest.raises(AttributeError, match=r"env has no binding, variable or secret 'NOPE' \(it has: API, TOKEN\)"):
        env.NOPE
    with pytest.raises(AttributeError, match=r"\(it has: nothing\)"):
        Env({}).NOPE


# --- versions: what a deploy, a rollback and a promotion change ------------------------------------

def who(canary: dict | None = None) -> str:
    """app: production and canary run who.py (the canary, ``canary`` instead), all traffic to production."""
    return compose(canary_service("app", routes=["example.com/*"], worker="who.py", vars={"WHO": "first"}, canary=canary or {}, weight=0))


WHO = who()

WHO_WORKER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.sleep("10ms")
    return Response(env.WHO)
"""


def test_new_vars_reach_running_slots_and_a_rollback_brings_the_old_ones_back(make_scenario):
    loaded = make_scenario(WHO, {"who.py": WHO_WORKER})
    numbers = []

    def setup(topology, clock):
        production = actor(topology, "app")

        def deploy():
            numbers.append(production.new_version("new vars", vars={"WHO": "second"}).number)

        def back():
            numbers.append(production.rollback(message="bad"))

        clock.call_later(1.0, deploy)
        clock.call_later(2.0, back)

    answers, topology, _ = serve(loaded, [(at, "app", Request("https://example.com/")) for at in (0.5, 1.5, 2.5)], setup=setup)
    assert [a.text() for a in answers] == ["first", "second", "first"]  # the same slot, rebuilt each time
    production = actor(topology, "app")
    assert numbers == [2, 1] and production.version == "1"
    assert [a.call.version for a in answers] == ["1", "2", "1"]
    assert production.stats.counts("1")[1] == 2 and production.stats.counts("2")[1] == 1  # 2xx by version
    assert [(d.at_s, d.version) for d in production.history.deployments] == [(0.0, 1), (1.0, 2), (2.0, 1)]
    assert production.history.deployments[-1].message == "rollback from v2: bad"


def test_a_version_is_dated_from_the_start_and_carries_its_message_tags_and_number(make_scenario):
    loaded = make_scenario(WHO, {"who.py": WHO_WORKER})
    _, topology, _ = serve(loaded, [])
    production = actor(topology, "app")
    version = production.new_version("tagged", number=7, tags={"release": "r7"})
    assert (version.number, version.message, version.tags, version.source) == (7, "tagged", {"release": "r7"}, None)
    assert version.at_s == ENOUGH  # the run's clock stood at its end
    assert production.version == "7" and production.tags == {"release": "r7"}
    untagged = production.new_version("same tags")
    assert untagged.number == 8 and untagged.tags == {"release": "r7"}  # tags are kept unless given
    assert production.rollback(7) == 7 and production.tags == {"release": "r7"}


def test_a_version_of_new_secrets_masks_them(make_scenario):
    from edge.platform import redact

    loaded = make_scenario(WHO, {"who.py": WHO_WORKER})
    _, topology, _ = serve(loaded, [])
    production = actor(topology, "app")
    production.new_version("rotated", secrets={"TOKEN": "hunter2-rotated"})
    assert "hunter2-rotated" not in redact.redact("the token is hunter2-rotated")


def test_a_promotion_runs_the_sources_code_as_a_new_version_saying_where_it_came_from(make_scenario):
    loaded = make_scenario(WHO, {"who.py": WHO_WORKER})
    _, topology, _ = serve(loaded, [])
    production, canary = actor(topology, "app"), actor(topology, "app", "canary")
    canary.new_version("canary build", tags={"build": "c1"})
    promoted = production.adopt(canary)
    assert promoted.source == "from app@canary v2" and promoted.message == "promoted from app@canary v2"
    assert promoted.tags == {"build": "c1"} and production.tags == {"build": "c1"}
    assert production.worker is not canary.worker  # a copy: a later set on one does not change the other


def test_a_code_worker_cannot_be_promoted_into_a_synthetic_model(make_scenario):
    toml = who(canary={"model": {"latency": "1ms"}})
    loaded = make_scenario(toml, {"who.py": WHO_WORKER})
    _, topology, _ = serve(loaded, [])
    production, canary = actor(topology, "app"), actor(topology, "app", "canary")
    with pytest.raises(ValueError, match="cannot promote app@canary into app@production: one is code, the other a synthetic model"):
        production.adopt(canary)
    assert production.version == "1"


# --- faults injected into a code worker ------------------------------------------------------------


def _faulted(make_scenario, faults, calls: int = 1):
    from actors.environment import Faults

    loaded = make_scenario(SLOW, {"app.py": SLOW_WORKER})

    def setup(topology, clock):
        actor(topology, "app").faults = Faults(**faults)

    return serve(loaded, [("app", Request("https://example.com/")) for _ in range(calls)], setup=setup)


def test_an_injected_error_rate_of_one_answers_every_call_500_without_running_the_worker(make_scenario):
    answers, topology, _ = _faulted(make_scenario, {"errors": 1.0}, calls=3)
    assert [(a.status, a.result.headers.get("x-edge-error"), a.text()) for a in answers] == [(500, "injected", "injected fault")] * 3
    assert actor(topology, "app").stats.latency.max == 0.0  # answered at once


def test_injected_latency_and_cpu_come_before_the_worker(make_scenario):
    from edge.platform.distributions import Const

    answers, topology, accounts = _faulted(make_scenario, {"latency": Const(0.05), "cpu": Const(0.01)})
    assert answers[0].status == 200
    assert actor(topology, "app").stats.latency.max == pytest.approx(0.16)  # 10 ms CPU, 50 ms, then the worker's 100 ms
    assert accounts[0].used == pytest.approx(0.01)


def test_injected_cpu_past_the_budget_is_the_calls_cpu_limit(make_scenario):
    from edge.platform.distributions import Const

    answers, topology, _ = _faulted(make_scenario, {"cpu": Const(0.06)})
    assert answers[0].status == 503 and answers[0].result.headers.get("x-edge-error") is not None


# --- ctx.wait_until ---------------------------------------------------------------------------------

def later(concurrency: int = 1) -> str:
    return compose(service("app", routes=["example.com/*"], worker="app.py", concurrency=concurrency))


LATER = later()

LATER_WORKER = """
from edge.platform.fetch import Response

DONE = []

async def record(ctx, what):
    await ctx.sleep("50ms")
    DONE.append(what)

async def fail(ctx):
    await ctx.sleep("10ms")
    raise ValueError("after the answer")

async def burn(ctx):
    await ctx.cpu("100ms")
    DONE.append("burnt")

async def spin(ctx):
    import time
    started = time.thread_time()
    while time.thread_time() - started < 0.005:
        pass
    DONE.append("spun")

async def chain(ctx):
    ctx.wait_until(chain2(ctx))
    DONE.append("first")

async def chain2(ctx):
    ctx.wait_until(record(ctx, "chained"))
    DONE.append("second")

async def fetch(request, env, ctx):
    kind = request.path.strip("/")
    if kind == "record":
        ctx.wait_until(record(ctx, "recorded"))
    elif kind == "fail":
        ctx.wait_until(fail(ctx))
        ctx.wait_until(record(ctx, "after the failure"))
    elif kind == "burn":
        ctx.wait_until(burn(ctx))
        ctx.wait_until(record(ctx, "never"))
    elif kind == "chain":
        ctx.wait_until(chain(ctx))
    elif kind == "spin":
        ctx.wait_until(spin(ctx))
    elif kind == "done":
        return Response(",".join(DONE))
    return Response("answered")
"""


@pytest.mark.parametrize("kind, done, exceptions, cpu_limited", [
    ("record", "recorded", 0, 0),
    ("fail", "after the failure", 1, 0),  # what the work raises answers nobody: counted, and the rest runs
    ("burn", "", 0, 1),  # a spent CPU budget ends the rest
    ("chain", "first,second,chained", 0, 0),  # work handed over by the work runs too, in order
])
def test_wait_until_work_runs_after_the_answer_in_the_calls_slot(make_scenario, kind, done, exceptions, cpu_limited):
    loaded = make_scenario(LATER, {"app.py": LATER_WORKER})
    answers, topology, _ = serve(loaded, [("app", Request(f"https://example.com/{kind}")), (0.001, "app", Request("https://example.com/done")),
                                          (1.0, "app", Request("https://example.com/done"))])
    app = actor(topology, "app")
    assert answers[0].text() == "answered"
    assert answers[1].text() == done  # the one slot was busy with the work: the next call waited for it
    assert answers[2].text() == done
    assert app.stats.exceptions == exceptions and app.stats.cpu_limit_exceeded == cpu_limited
    assert app.later_running == 0


# --- cold starts -----------------------------------------------------------------------------------


def test_the_first_call_pays_a_cold_start_and_the_next_finds_the_isolate_warm(make_scenario):
    toml = slow(cold_start="50ms")
    loaded = make_scenario(toml, {"app.py": SLOW_WORKER})
    answers, topology, _ = serve(loaded, [("app", Request("https://example.com/")), (1.0, "app", Request("https://example.com/"))])
    app = actor(topology, "app")
    assert [a.status for a in answers] == [200, 200]
    assert app.stats.cold_starts == {"1": 1}
    assert app.stats.latency.max == pytest.approx(0.15) and app.stats.latency.min == pytest.approx(0.1)
    app.go_cold()
    assert app.isolates is not None and not app.isolates.take()  # every idle isolate gone


# --- live: slot tasks, the mailbox and calls run in their caller's task ----------------------------

LIVE = compose(service("front", routes=["front.test/*"], worker="front.py", bindings={"BACK": "back"}),
               service("back", routes=["back.test/*"], worker="back.py", concurrency=2, mailbox=1))

LIVE_FRONT = """
import trio
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    mine = id(trio.lowlevel.current_task())
    answer = await env.BACK.fetch(request.url)
    inline = answer.headers.get("x-task") == str(mine)
    return Response(await answer.text(), status=answer.status, headers={"x-inline": str(inline)})
"""

LIVE_BACK = """
import trio
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.sleep("200ms")
    return Response("back", headers={"x-task": str(id(trio.lowlevel.current_task()))})
"""


def _live(make_scenario):
    from edge.live.admin_client import new_token
    from edge.live.serve import LiveRuntime

    return LiveRuntime(make_scenario(LIVE, {"front.py": LIVE_FRONT, "back.py": LIVE_BACK}), admin_token=new_token())


@pytest.mark.parametrize("calls, shed", [(2, 0), (3, 0), (4, 1)], ids=["under", "at", "over"])
async def test_live_concurrency_plus_mailbox_calls_are_taken_and_the_next_is_shed(make_scenario, calls, shed):
    import trio.testing

    live = _live(make_scenario)
    back = actor(live.topology, "back")
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await live.fetch(Request("https://back.test/"))).status)

    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        await trio.testing.wait_all_tasks_blocked(0.01)  # the actors have started: back has its first slot task
        async with trio.open_nursery() as sending:
            for _ in range(calls):
                sending.start_soon(one)
            await trio.testing.wait_all_tasks_blocked(0.01)
            assert (back.stats.inflight, len(back.mailbox)) == (min(calls, 2), min(max(calls - 2, 0), 1))
            assert back._slots <= 2  # never more slot tasks than its concurrency
        assert sorted(statuses) == [200] * (calls - shed) + [503] * shed
        assert back.stats.shed == shed and back.stats.inflight == 0
        nursery.cancel_scope.cancel()


async def test_live_a_bound_call_runs_inline_only_while_the_callee_has_room(make_scenario):
    import trio.testing

    live = _live(make_scenario)
    back = actor(live.topology, "back")
    answers: list[tuple[int, str]] = []

    async def one() -> None:
        answer = await live.fetch(Request("https://front.test/"))
        answers.append((answer.status, answer.headers.get("x-inline")))

    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        await one()
        assert answers == [(200, "True")]  # alone: in the caller's own task
        answers.clear()
        async with trio.open_nursery() as sending:
            for _ in range(4):
                sending.start_soon(one)
            await trio.testing.wait_all_tasks_blocked(0.01)
            # back's one idle slot task counts: one call fits inline beside it, the next goes to
            # that task, the third waits in the mailbox and the fourth is shed.
            assert (back.stats.inflight, back._inline_busy, len(back.mailbox)) == (2, 1, 1)
        assert sorted(answers) == [(200, "False"), (200, "False"), (200, "True"), (503, "False")]
        assert back._inline_busy == 0 and back.stats.inflight == 0 and back.stats.shed == 1
        nursery.cancel_scope.cancel()


def test_an_rpc_method_may_answer_a_response_and_a_platform_answer_is_an_rpc_error(make_scenario):
    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": FAILING_BACK})
    answers, topology, _ = serve(loaded, [("front", Request("https://example.com/slow/")), ("front", Request("https://example.com/slow/"))])
    # back takes one call at a time and queues none: the second is shed, and its caller gets it as an error.
    assert answers[0].text() == "Response 200 a Response is a result like any other"
    assert answers[1].text() == "RpcError False 503 None error code: 1200 | back.slow failed: 503 error code: 1200"
    assert actor(topology, "back").stats.shed == 1


def test_a_method_missing_from_a_worker_without_methods_says_none(make_scenario):
    back = "from edge.platform.fetch import Response\n\nasync def fetch(request, env, ctx):\n    return Response('fine')\n"
    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": back})
    [got], _, _ = serve(loaded, [("front", Request("https://example.com/missing/"))])
    assert got.text().startswith("RpcMethodMissing True 500 None back has no RPC method 'nothing_here' (methods: none)")


def test_a_binding_fetch_of_a_request_with_init_sends_the_request_as_changed(make_scenario):
    front = """
from edge.platform.fetch import Request, Response

async def fetch(request, env, ctx):
    answer = await env.BACK.fetch(Request("https://back.test/echo"), {"method": "POST", "body": "payload"})
    mine = Request("https://back.test/echo", method="PUT", body="abc")
    again = await env.BACK.fetch(mine)  # handed over: the caller's copy is used afterwards
    return Response(f"{await answer.text()} | {await again.text()} | {mine.body_used}")
"""
    back = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    return Response(f"{request.method} {request.headers.get('content-length')} {await request.text()}")
"""
    loaded = make_scenario(FAILING, {"front.py": front, "back.py": back})
    [got], _, _ = serve(loaded, [("front", Request("https://example.com/"))])
    assert got.text() == "POST 7 payload | PUT 3 abc | True"


# --- logs: what an operator reads ------------------------------------------------------------------


def test_a_workers_failures_are_logged_once_per_message_with_the_environment(make_scenario, caplog):
    import logging

    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": FAILING_BACK})
    with caplog.at_level(logging.WARNING, logger="edge.worker"):
        answers, topology, _ = serve(loaded, [(at, "back", Request("https://back.test/value")) for at in (0.0, 1.0, 2.0)])
    assert [a.status for a in answers] == [500] * 3
    assert actor(topology, "back").stats.exceptions == 3  # each counted
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.worker"]
    assert lines == ["back@production threw (answered 500, error 1101): ValueError: ('bad value', 7)"]  # logged once


def test_wait_until_failures_are_counted_each_and_logged_once(make_scenario, caplog):
    import logging

    loaded = make_scenario(LATER, {"app.py": LATER_WORKER})
    with caplog.at_level(logging.WARNING, logger="edge.worker"):
        _, topology, _ = serve(loaded, [(at, "app", Request("https://example.com/fail")) for at in (0.0, 1.0)])
    assert actor(topology, "app").stats.exceptions == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.worker"]
    assert lines == ["app@production raised in ctx.wait_until work, after its answer: ValueError: after the answer"]


def test_only_the_first_20_distinct_failures_are_logged(make_scenario, caplog):
    import logging

    back = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    raise ValueError(request.path)
"""
    loaded = make_scenario(FAILING, {"front.py": FAILING_FRONT, "back.py": back})
    with caplog.at_level(logging.WARNING, logger="edge.worker"):
        serve(loaded, [(i * 0.01, "back", Request(f"https://back.test/{i}")) for i in range(22)])
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.worker"]
    assert len(lines) == 20 and lines[-1].endswith("ValueError: /19")


# --- versions, continued ---------------------------------------------------------------------------


def test_every_change_of_vars_reaches_a_running_slot_and_its_bindings_still_work(make_scenario):
    worker = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if request.path == "/inner":
        return Response(env.WHO)
    inner = await env.SELF.fetch("https://example.com/inner")
    return Response(await inner.text())
"""
    loaded = make_scenario(loop(vars={"WHO": "v1"}), {"loop.py": worker})

    def setup(topology, clock):
        loop = actor(topology, "loop")
        clock.call_later(1.25, lambda: loop.new_version("two", vars={"WHO": "v2"}))
        clock.call_later(2.25, lambda: loop.new_version("three", vars={"WHO": "v3"}))
        clock.call_later(3.25, lambda: loop.rollback(1))  # not the default, v2: the one named

    answers, topology, _ = serve(loaded, [(at, "loop", Request("https://example.com/")) for at in (0.5, 1.5, 2.5, 3.5)], setup=setup)
    assert [a.text() for a in answers] == ["v1", "v2", "v3", "v1"]
    assert [v.at_s for v in actor(topology, "loop").history.versions] == [0.0, 1.25, 2.25]


def test_a_promoted_version_runs_the_sources_code_and_faults_and_a_rollback_returns_to_it(make_scenario):
    from edge.platform.distributions import Uniform

    toml = who(canary={"worker": "canary.py"})
    canary_worker = WHO_WORKER.replace("Response(env.WHO)", 'Response("canary code")')
    loaded = make_scenario(toml, {"who.py": WHO_WORKER, "canary.py": canary_worker})

    def setup(topology, clock):
        production, canary = actor(topology, "app"), actor(topology, "app", "canary")
        from actors.environment import Faults

        canary.faults = Faults(latency=Uniform(0.02, 0.04), cpu=Uniform(0.001, 0.002))
        clock.call_later(1.0, lambda: production.adopt(canary))  # v2: the canary's code and its faults
        clock.call_later(2.0, lambda: production.rollback(1))
        clock.call_later(3.0, lambda: production.rollback(2))

    at = (0.5, 1.5, 2.5, 3.5)
    answers, topology, _ = serve(loaded, [(t, "app", Request("https://example.com/")) for t in at], setup=setup)
    assert [a.text() for a in answers] == ["first", "canary code", "first", "canary code"]
    assert [d.message for d in actor(topology, "app").history.deployments][2:] == ["rollback from v2", "rollback from v1"]
    took = [a.call.answered_at - a.call.posted_at for a in answers]
    assert took[0] == pytest.approx(0.01) and took[2] == pytest.approx(0.01)
    assert 0.031 <= took[1] <= 0.052 and 0.031 <= took[3] <= 0.052  # the faults' 21-42 ms came along, and back


# --- what a binding records ------------------------------------------------------------------------

ROUTED = compose(service("front", routes=["example.com/*"], worker="front.py", bindings={"BACK": "back"}),
                 canary_service("back", routes=None, worker="back.py", vars={"NAME": "back"}, weight=0))


def test_a_binding_records_each_calls_latency_by_callee_version_and_status_class_and_what_the_router_chose(make_scenario):
    from edge.metrics.recorders import status_class

    loaded = make_scenario(ROUTED, {"front.py": FAILING_FRONT, "back.py": FAILING_BACK})
    paths = ["greet/", "greet/", "fetch/value", "refuse/404", "fetch/fine"]
    answers, topology, _ = serve(loaded, [(i * 1.0, "front", Request(f"https://example.com/{p}")) for i, p in enumerate(paths)])
    assert all(a.status == 200 for a in answers)
    metrics = actor(topology, "front").metrics
    counts = {labels: (hist.count, round(hist.max, 6)) for labels, hist in metrics.bindings.items()}
    assert counts == {
        ("front", "BACK", "back", "production", "1", "2xx"): (3, 0.001),  # two greetings (1 ms each), one fetch
        ("front", "BACK", "back", "production", "1", "5xx"): (1, 0.0),
        ("front", "BACK", "back", "production", "1", "4xx"): (1, 0.0),  # a deliberate 404 from an RPC method
    }
    routed = metrics.routed[("back", "production")]
    assert (routed[status_class(200)], routed[status_class(404)], routed[status_class(500)]) == (3, 1, 1)
    assert ("back", "canary") not in metrics.routed


def test_wait_until_work_spending_the_budget_is_counted_each_time_and_the_rest_is_closed_unstarted(make_scenario):
    import gc
    import warnings

    loaded = make_scenario(LATER, {"app.py": LATER_WORKER})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers, topology, _ = serve(loaded, [(at, "app", Request("https://example.com/burn")) for at in (0.0, 1.0)]
                                     + [(2.0, "app", Request("https://example.com/done"))])
        gc.collect()
    assert answers[2].text() == ""  # neither the burn nor what came after it finished
    assert actor(topology, "app").stats.cpu_limit_exceeded == 2
    assert not [w for w in caught if "never awaited" in str(w.message)]  # the work after it was closed, not dropped


def test_wait_until_work_of_calls_in_two_slots_at_once_is_waited_for_until_both_end(make_scenario):
    loaded = make_scenario(later(concurrency=2), {"app.py": LATER_WORKER})
    seen = []

    def setup(topology, clock):
        app = actor(topology, "app")
        clock.call_later(0.02, lambda: seen.append(app.later_running))

    answers, topology, _ = serve(loaded, [("app", Request("https://example.com/record")) for _ in range(2)], setup=setup)
    assert seen == [2] and actor(topology, "app").later_running == 0


def test_wait_until_work_runs_when_cpu_is_measured(make_scenario):
    loaded = make_scenario("[scenario]\nmeasure_cpu = true\n" + LATER, {"app.py": LATER_WORKER})
    answers, topology, accounts = serve(loaded, [("app", Request("https://example.com/spin")), (1.0, "app", Request("https://example.com/done"))])
    assert answers[1].text() == "spun" and actor(topology, "app").stats.exceptions == 0
    assert accounts[0].used >= 0.005  # the work's own CPU is charged to its call


def test_a_caller_whose_callee_spent_the_chains_cpu_gets_the_limit_error_with_the_figures(make_scenario):
    front = """
from edge.platform.fetch import Response

SEEN = []

async def fetch(request, env, ctx):
    if request.path == "/seen":
        return Response(" | ".join(SEEN))
    try:
        await env.BACK.fetch("https://back.test/")
    except Exception as exc:
        SEEN.append(f"{type(exc).__name__}: {exc}")
        return Response("answered anyway")
    return Response("not refused")
"""
    back = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.cpu("30ms")
    return Response("back")
"""
    loaded = make_scenario(FAILING, {"front.py": front, "back.py": back})
    answers, _, _ = serve(loaded, [("front", Request("https://example.com/")), (1.0, "front", Request("https://example.com/seen"))],
                          cpu_limit=0.02)
    assert answers[0].status == 503  # the chain's budget is gone: answering anyway does not help
    assert answers[1].text() == "CpuLimitExceeded: exceeded CPU time limit: used 20.000ms of 20.000ms"


async def test_live_a_down_environment_refuses_calls_with_a_503(make_scenario):
    import trio.testing

    live = _live(make_scenario)
    back = actor(live.topology, "back")
    back.down = True
    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        await trio.testing.wait_all_tasks_blocked(0.01)
        direct = await live.fetch(Request("https://back.test/"))
        bound = await live.fetch(Request("https://front.test/"))
        nursery.cancel_scope.cancel()
    assert direct.status == 503 and bound.status == 503
    assert back.stats.shed == 0 and back.stats.counts("1")[4] == 2  # refused, not shed: two 5xx answers
