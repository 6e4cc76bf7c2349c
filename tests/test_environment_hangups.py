"""What an environment actor does when the call's client goes away or the actor itself is not
running: a live client hanging up on a call in a slot task, queued, or served inline in its
caller's task; a live actor stopped and started again while calls come; a fault escaping a slot
fiber while the actor's task is not running; a run ending with calls and ``ctx.wait_until`` work in
flight. And what the slot machinery must keep exact: pacing of live calls (when a call's model
time began, a binding's hop back), a worker using a ``ctx`` or ``env`` kept from an earlier call,
CPU budgets charged call by call in a reused slot, versions dated from the start.

Live tests run ``LiveRuntime`` in-process on trio's ``MockClock`` (``autojump_clock``): its
``RealClock`` reads trio's time, and without a timerfd (as off Linux) it waits on trio's deadlines,
so a live run is in virtual time too, every figure exact and nothing bound to the machine's speed.
Virtual-time tests use ``test_environment_limits.serve`` or drive an actor's ``run`` by hand.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import warnings
from typing import Any, AsyncIterator

import pytest
import trio

from actors.environment import EnvironmentActor
from actors.mailbox import Call
from edge.engine.topology import build
from edge.metrics.recorders import RunMetrics
from edge.platform import timerfd
from edge.platform.clock import VirtualClock
from edge.platform.cpu import CpuAccount
from edge.platform.fetch import Request
from scenario_builder import compose, service
from test_environment_limits import actor, serve


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def crashes(caplog) -> list[str]:
    return [m for m in warnings_logged(caplog) if "crashed" in m]


# --- live, in virtual time -------------------------------------------------------------------------

BACK = """
import trio
from edge.platform.fetch import Response

KEPT = []  # a ctx kept past its call (a worker must not, but may)

async def after(ctx):
    await ctx.sleep("100ms")
    raise ValueError("after the answer")

async def never(ctx):
    raise AssertionError("never runs")

async def jump(ctx):
    trio.lowlevel.current_clock().jump(0.5)  # the hop back to the caller takes 500 ms

async def fetch(request, env, ctx):
    path = request.path.strip("/")
    if path == "hold":
        KEPT.append(ctx)
        await ctx.sleep("10s")
    elif path == "catch":
        try:
            await ctx.sleep("10s")
        except trio.Cancelled:
            return Response("caught")
    elif path == "kept":
        await ctx.sleep("2s")
        await KEPT[-1].cpu("1ms")
    elif path == "later":
        ctx.wait_until(after(ctx))
    elif path == "stopped":
        ctx.wait_until(never(ctx))
        await ctx.sleep("1s")
    elif path == "hop":
        await ctx.sleep("200ms")
        ctx.wait_until(jump(ctx))
    elif path == "leaf":
        answer = await env.LEAF.fetch("https://leaf.test/")
        return Response(await answer.text())
    elif path.startswith("slow"):
        await ctx.sleep(path[4:] + "s")
    return Response(f"v={env.V}", headers={"x-task": str(id(trio.lowlevel.current_task()))})
"""

LEAF = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    return Response("leaf")
"""

FRONT = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    answer = await env.BACK.fetch("https://back.test/" + request.path.strip("/"))
    await ctx.sleep("1s")
    return Response(f"{answer.status}")
"""


def topology(concurrency: int, mailbox: int = 1) -> str:
    return compose(
        service("front", routes=["front.test/*"], worker="front.py", bindings={"BACK": "back"}),
        service("back", routes=["back.test/*"], worker="back.py", concurrency=concurrency, mailbox=mailbox, vars={"V": "a"},
                bindings={"LEAF": "leaf"}),
        service("leaf", routes=None, worker="leaf.py"),
    )


@pytest.fixture
def live_runtime(make_scenario, monkeypatch, autojump_clock):
    """A ``LiveRuntime`` of ``topology(concurrency)`` on trio's mock clock (no timerfd: the clock
    waits on trio's deadlines, which the mock clock jumps to)."""
    from edge.live.admin_client import new_token
    from edge.live.serve import LiveRuntime

    monkeypatch.setattr(timerfd, "open_timer", lambda: None)

    def make(concurrency: int, mailbox: int = 1):
        loaded = make_scenario(topology(concurrency, mailbox), {"front.py": FRONT, "back.py": BACK, "leaf.py": LEAF})
        return LiveRuntime(loaded, admin_token=new_token())

    return make


@contextlib.asynccontextmanager
async def running(live: Any, after: float) -> AsyncIterator[trio.Nursery]:
    """The live runtime's actors running in a nursery, ``after`` seconds in (the clock autojumps);
    they are stopped when the block ends."""
    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        await trio.sleep(after)
        yield nursery
        nursery.cancel_scope.cancel()


class Replies:
    """Calls posted straight to an actor, as the front door posts them, and their answers with the
    (virtual) time each came."""

    def __init__(self) -> None:
        self.got: dict[str, tuple[float, int, Any]] = {}

    def post(self, to: EnvironmentActor, name: str, path: str) -> Call:
        def reply(call: Call, result: Any) -> None:
            self.got[name] = (trio.current_time(), result.status, result)

        call = Call(Request(f"https://back.test/{path}"), CpuAccount(0.05, 32), reply, trio.current_time())
        assert to.post(call) is None
        return call

    async def text(self, name: str) -> str:
        return await self.got[name][2].clone().text()


async def test_live_a_client_hanging_up_on_a_call_in_a_slot_task_gets_it_answered_499_and_the_slot_serves_on(live_runtime, autojump_clock, caplog):
    live = live_runtime(2)
    back = actor(live.topology, "back")
    replies = Replies()
    async with running(live, 1.0):
        held = replies.post(back, "held", "hold")  # to the idle slot task
        replies.post(back, "kept", "kept")  # a second slot task: it uses the held call's ctx at 3 s
        await trio.sleep(1.0)
        held.cancel()  # the client hangs up at 2 s
        await trio.sleep(0.5)
        assert replies.got["held"][:2] == (2.0, 499)
        assert back.stats.inflight == 1  # only the kept one
        await trio.sleep(1.0)
        assert replies.got["kept"][:2] == (3.0, 500)  # that ctx's call was over: "outside a call"
        replies.post(back, "next", "")
        caught = replies.post(back, "caught", "catch")  # a worker that catches the cancellation and answers
        await trio.sleep(1.0)
        caught.cancel()
        await trio.sleep(1.0)
        replies.post(back, "after", "")  # the slot that served it serves on
        await trio.sleep(1.0)
        assert [replies.got[n][:2] for n in ("next", "caught", "after")] == [(3.5, 200), (4.5, 200), (5.5, 200)]
        assert await replies.text("caught") == "caught"
        assert back.stats.inflight == 0
    assert list(back.stats.counts("1")) == [0, 3, 0, 1, 1]  # 200 x3, the 499, the 500
    assert back.stats.exceptions == 1
    assert warnings_logged(caplog) == [f"{back.key} threw (answered 500, error 1101): AssertionError: ctx.cpu() outside a call"]


async def test_live_a_queued_call_whose_client_hung_up_is_answered_499_without_running(live_runtime, autojump_clock, caplog):
    live = live_runtime(1)
    back = actor(live.topology, "back")
    replies = Replies()
    async with running(live, 1.0):
        held = replies.post(back, "held", "hold")
        queued = replies.post(back, "queued", "")
        assert len(back.mailbox) == 1
        await trio.sleep(1.0)
        queued.cancel()  # hangs up while it waits: nothing to stop yet
        await trio.sleep(1.0)
        held.cancel()  # the slot is free at 3 s: it takes the queued call, and does not run it
        await trio.sleep(1.0)
        assert replies.got["held"][:2] == (3.0, 499) and replies.got["queued"][:2] == (3.0, 499)
        assert len(back.mailbox) == 0 and back.stats.inflight == 0
    assert list(back.stats.counts("1")) == [0, 0, 0, 2, 0]
    assert crashes(caplog) == []


async def test_live_a_call_begins_on_its_model_timeline_when_posted_to_an_idle_slot_and_when_taken_from_the_queue(live_runtime, autojump_clock):
    live = live_runtime(1)
    back = actor(live.topology, "back")
    replies = Replies()
    async with running(live, 10.0):
        replies.post(back, "handed", "slow1")  # to the idle slot task, which runs 250 ms later
        autojump_clock.jump(0.25)  # the hand-over is the platform's overhead: the call began when posted
        await trio.sleep(5.0)
        replies.post(back, "first", "slow1")
        replies.post(back, "second", "slow1")  # queued: the second's model time begins when a slot takes it
        await trio.sleep(5.0)
    assert replies.got["handed"][0] == pytest.approx(11.0)
    assert (replies.got["first"][0], replies.got["second"][0]) == pytest.approx((16.25, 17.25))


async def test_live_wait_until_work_of_a_call_in_a_slot_task_runs_after_the_answer(live_runtime, autojump_clock, caplog):
    live = live_runtime(1)
    back = actor(live.topology, "back")
    replies = Replies()
    async with running(live, 1.0):
        replies.post(back, "later", "later")
        replies.post(back, "next", "")  # waits for the slot, busy with the work
        await trio.sleep(1.0)
        assert (replies.got["later"][:2], replies.got["next"][:2]) == ((1.0, 200), (1.1, 200))
        assert back.later_running == 0
    assert back.stats.exceptions == 1
    assert warnings_logged(caplog) == [f"{back.key} raised in ctx.wait_until work, after its answer: ValueError: after the answer"]


async def test_live_new_vars_reach_a_slot_task_and_its_bindings_still_work(live_runtime, autojump_clock, caplog):
    live = live_runtime(1)
    back = actor(live.topology, "back")
    replies = Replies()
    async with running(live, 1.0):
        replies.post(back, "before", "")
        await trio.sleep(1.0)
        back.new_version("new vars", vars={"V": "b"})
        replies.post(back, "after", "")
        await trio.sleep(1.0)
        replies.post(back, "leaf", "leaf")
        await trio.sleep(1.0)
        texts = [await replies.text(n) for n in ("before", "after", "leaf")]
    assert texts == ["v=a", "v=b", "leaf"]
    assert crashes(caplog) == []


async def test_live_a_client_hanging_up_on_a_call_served_inline_gets_it_answered_499_and_frees_its_slot(live_runtime, autojump_clock, caplog):
    live = live_runtime(2)
    back = actor(live.topology, "back")
    replies = Replies()
    mine = str(id(trio.lowlevel.current_task()))
    async with running(live, 1.0):
        with trio.move_on_after(1.0) as hung:  # the client hangs up after 1 s
            await live.fetch(Request("https://back.test/hold"))  # served in this task
        assert hung.cancelled_caught
        assert (back.stats.inflight, back._inline_busy) == (0, 0)
        replies.post(back, "kept", "kept")  # in the slot task: uses the inline call's ctx at 4 s
        await trio.sleep(2.5)
        assert replies.got["kept"][:2] == (4.0, 500)
        inline = await live.fetch(Request("https://back.test/"))
        assert inline.status == 200 and inline.headers.get("x-task") == mine  # its slot is free: inline again
        back.new_version("new vars", vars={"V": "b"})
        bound = await live.fetch(Request("https://back.test/leaf"))  # the kept inline slot's new env has working bindings
        assert (bound.status, await bound.text()) == (200, "leaf")
    assert list(back.stats.counts("1")) == [0, 1, 0, 1, 1] and list(back.stats.counts("2")) == [0, 1, 0, 0, 0]
    assert warnings_logged(caplog) == [f"{back.key} threw (answered 500, error 1101): AssertionError: ctx.cpu() outside a call"]


async def test_live_an_actor_stopped_and_started_again(live_runtime, autojump_clock, caplog):
    # An inline call outlives its actor's run: its wait_until work is closed unstarted, its slot
    # kept. A call made while the actor is stopped waits for it to start again. Then the actor
    # serves within its concurrency as before: one call inline, one in its slot task.
    live = live_runtime(2)
    back = actor(live.topology, "back")
    mine = str(id(trio.lowlevel.current_task()))
    answers: dict[str, tuple[float, int, str | None]] = {}

    async def fetch(name: str, path: str) -> None:
        response = await live.fetch(Request(f"https://back.test/{path}"))
        answers[name] = (trio.current_time(), response.status, response.headers.get("x-task"))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live.clock.run)
            async with trio.open_nursery() as actors:
                actors.start_soon(back.run)
                await trio.sleep(1.0)
                nursery.start_soon(fetch, "outlived", "stopped")  # inline, 1 s
                await trio.sleep(0.5)
                actors.cancel_scope.cancel()  # the actor's run ends at 1.5 s
            await trio.sleep(1.0)
            assert answers["outlived"][:2] == (2.0, 200)
            nursery.start_soon(fetch, "waited", "")  # at 2.5 s, while the actor is stopped
            await trio.sleep(1.0)
            assert "waited" not in answers
            async with trio.open_nursery() as actors:
                actors.start_soon(back.run)  # started again at 3.5 s
                await trio.sleep(1.0)
                assert answers["waited"][:2] == (3.5, 200)
                nursery.start_soon(fetch, "one", "slow1")
                nursery.start_soon(fetch, "two", "slow1")
                await fetch("three", "")  # in this task, inline
                await trio.sleep(2.0)
                actors.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
        gc.collect()
    assert [answers[n][:2] for n in ("one", "two")] == [(5.5, 200), (5.5, 200)]  # two at once: its concurrency
    assert answers["three"][2] == mine  # its inline slot, kept while it was stopped, serves again
    assert back.stats.exceptions == 0 and crashes(caplog) == []
    assert not [w for w in caught if "never awaited" in str(w.message)]  # the work was closed, not dropped


async def test_live_a_slot_task_is_started_for_a_queued_call_when_an_inline_call_ends(live_runtime, autojump_clock):
    live = live_runtime(2)
    back = actor(live.topology, "back")
    replies = Replies()
    mine = str(id(trio.lowlevel.current_task()))
    async with running(live, 1.0) as nursery:
        replies.post(back, "long", "slow3")  # the slot task, until 4 s
        inline = await live.fetch(Request("https://back.test/slow1"))  # inline beside it, until 2 s
        assert inline.headers.get("x-task") == mine
        nothing_waits = await live.fetch(Request("https://back.test/"))  # no slot task was started meanwhile
        assert nothing_waits.headers.get("x-task") == mine
        nursery.start_soon(live.fetch, Request("https://back.test/slow1"))  # inline again, until 3 s
        await trio.sleep(0.5)
        replies.post(back, "queued", "slow1")  # no room: queued, until the inline call ends at 3 s
        await trio.sleep(3.0)
    assert replies.got["queued"][0] == pytest.approx(4.0)  # a new slot task took it at 3 s
    assert replies.got["long"][0] == pytest.approx(4.0)


async def test_live_a_callers_pacing_counts_a_binding_call_until_it_was_answered(live_runtime, autojump_clock):
    # front calls back, then sleeps 1 s. The binding call counts as the model's time until back
    # answered; the hop back (500 ms here) is overhead the caller's next wait takes back. A call
    # answered by the platform at once (back down) took no model time.
    live = live_runtime(1)
    back = actor(live.topology, "back")
    took: list[tuple[str, float]] = []

    async def fetch(path: str) -> None:
        began = trio.current_time()
        response = await live.fetch(Request(f"https://front.test/{path}"))
        took.append((await response.text(), trio.current_time() - began))

    async with running(live, 5.0):
        await fetch("hop")
        back.down = True
        await fetch("")
    assert took == [("200", pytest.approx(1.2)), ("503", pytest.approx(1.0))]


async def test_live_versions_are_dated_from_the_servers_start(live_runtime, autojump_clock):
    autojump_clock.jump(100.0)
    live = live_runtime(1)
    back = actor(live.topology, "back")
    await trio.sleep(1.5)
    version = back.new_version("new vars", vars={"V": "b"})
    assert version.at_s == 1.5


# --- virtual time ----------------------------------------------------------------------------------

WORKER = """
from edge.platform.fetch import Response

KEPT = []

class Plain:
    # an awaitable that is not a coroutine: nothing to close
    def __await__(self):
        return iter(())

async def burn(ctx):
    await ctx.cpu("100ms")

async def after(ctx):
    await ctx.sleep("1000s")

async def fetch(request, env, ctx):
    path = request.path.strip("/")
    if path == "keep":
        KEPT.append((ctx, env))
    elif path == "cpu":
        await ctx.sleep("10ms")
        await KEPT[0][0].cpu("1ms")
    elif path == "bind":
        await ctx.sleep("10ms")
        await KEPT[0][1].SELF.fetch("https://example.com/")
    elif path == "budget":
        for _ in range(10):
            await ctx.cpu("5ms")
    elif path == "plain":
        ctx.wait_until(burn(ctx))
        ctx.wait_until(Plain())
    elif path == "forever":
        await ctx.sleep("1000s")
    elif path == "later":
        ctx.wait_until(after(ctx))
    return Response("fine")
"""


def app(**fields: Any) -> str:
    return compose(service("app", routes=["example.com/*"], worker="app.py", bindings={"SELF": "app"}, **fields))


def req(path: str) -> Request:
    return Request(f"https://example.com/{path}")


def test_a_ctx_or_env_kept_past_its_call_raises_that_it_is_used_outside_a_call(make_scenario, caplog):
    loaded = make_scenario(app(concurrency=3), {"app.py": WORKER})
    # the first two wait 10 ms in slots 1 and 2; meanwhile the third, in slot 3, keeps its ctx and env
    answers, topology, _ = serve(loaded, [("app", req("cpu")), ("app", req("bind")), (0.001, "app", req("keep"))])
    assert [a.status for a in answers] == [500, 500, 200]
    key = actor(topology, "app").key
    assert warnings_logged(caplog) == [
        f"{key} threw (answered 500, error 1101): AssertionError: ctx.cpu() outside a call",
        f"{key} threw (answered 500, error 1101): AssertionError: a binding called outside a call",
    ]


def test_every_call_in_a_reused_slot_may_spend_exactly_its_cpu_budget(make_scenario):
    loaded = make_scenario(app(), {"app.py": WORKER})
    answers, _, accounts = serve(loaded, [(at, "app", req("budget")) for at in (0.0, 1.0, 2.0)], cpu_limit=0.05)
    assert [a.status for a in answers] == [200, 200, 200]  # one slot: each call charged what it declared, from 0
    assert [a.exceeded for a in accounts] == [False, False, False]


def test_wait_until_work_left_unstarted_need_not_be_a_coroutine(make_scenario, caplog):
    loaded = make_scenario(app(), {"app.py": WORKER})
    answers, topology, _ = serve(loaded, [("app", req("plain")), (1.0, "app", req(""))])
    assert [a.status for a in answers] == [200, 200]
    assert actor(topology, "app").stats.cpu_limit_exceeded == 1
    assert crashes(caplog) == []


def test_a_run_ending_with_a_call_and_wait_until_work_in_flight_answers_and_counts_nothing(make_scenario, caplog):
    loaded = make_scenario(app(concurrency=3), {"app.py": WORKER})
    replies: list[int] = []

    def setup(topology, clock) -> None:
        def post(path: str) -> None:
            call = Call(req(path), CpuAccount(0.05, 32), lambda c, r: replies.append(r.status), clock.now())
            assert topology.entries["app"](call) is None

        clock.call_later(1.0, post, "forever")  # still asleep when the run ends
        clock.call_later(1.0, post, "later")  # answered; its work still asleep when the run ends

    answers, topology, _ = serve(loaded, [(2.0, "app", req(""))], setup=setup)
    assert [a.status for a in answers] == [200]
    assert replies == [200]  # the later one's; the other was never answered
    app_actor = actor(topology, "app")
    assert app_actor.stats.exceptions == 0 and app_actor.later_running == 0
    assert warnings_logged(caplog) == []


def test_a_synthetic_environment_that_is_down_refuses_calls_with_a_503(make_scenario):
    loaded = make_scenario(compose(service("api", routes=["example.com/*"], model={"latency": "2ms"})))
    clock = VirtualClock()
    topology_ = build(loaded, seed=1, clock=clock, metrics=RunMetrics())
    api = actor(topology_, "api")
    api.down = True
    call = Call(req(""), CpuAccount(0.05, 32), lambda c, r: None, 0.0)
    answer = topology_.entries["api"](call)
    assert answer is not None and answer.status == 503 and answer.headers.get("x-edge-error") == "unavailable"
    assert call.served_by is api and call.version == "1"
    assert list(api.stats.counts("1")) == [0, 0, 0, 0, 1] and api.stats.shed == 0


def test_a_cold_start_is_drawn_from_its_distribution(make_scenario):
    loaded = make_scenario(compose(service("app", routes=["example.com/*"], worker="app.py", cold_start="uniform(40ms, 60ms)")),
                           {"app.py": WORKER})
    answers, topology, _ = serve(loaded, [("app", req(""))])
    app_actor = actor(topology, "app")
    assert answers[0].status == 200 and app_actor.stats.cold_starts == {"1": 1}
    assert 0.04 <= answers[0].call.answered_at <= 0.06


def test_a_version_is_dated_to_the_nanosecond(make_scenario):
    loaded = make_scenario(app(), {"app.py": WORKER})
    made = []

    def setup(topology, clock) -> None:
        clock.call_later(1 / 3, lambda: made.append(actor(topology, "app").new_version("new vars", vars={"X": "1"})))

    serve(loaded, [("app", req(""))], setup=setup)
    assert made[0].at_s == 0.333333333


class Boom(Exception):
    pass


def test_a_fault_escaping_a_slot_while_the_actor_is_not_running_is_raised_when_it_next_runs(make_scenario):
    # Before the actor's task first ran, and after a run ended: the fault is kept, and raised by
    # the next run (where the supervisor would see it and restart the actor).
    loaded = make_scenario(app(), {"app.py": WORKER})
    clock = VirtualClock()
    app_actor = actor(build(loaded, seed=1, clock=clock, metrics=RunMetrics()), "app")
    raised: list[tuple[float, str]] = []

    def broken(call: Call, result: Any) -> None:
        raise Boom(f"the reply at {clock.now()} failed")

    async def run_for(seconds: float) -> None:
        async def run() -> None:
            try:
                await app_actor.run()
            except Boom as exc:
                raised.append((clock.now(), str(exc)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await clock.sleep(seconds)
            nursery.cancel_scope.cancel()

    async def main() -> None:
        assert app_actor.post(Call(req(""), CpuAccount(0.05, 32), broken, clock.now())) is None
        await clock.sleep(1.0)  # its fiber ran, and its reply failed, before any run
        await run_for(1.0)
        await run_for(1.0)  # nothing more to raise: this run ends when cancelled
        assert app_actor.post(Call(req(""), CpuAccount(0.05, 32), broken, clock.now())) is None
        await clock.sleep(1.0)
        await run_for(1.0)
        clock.close()

    trio.run(main, clock=clock)
    assert raised == [(1.0, "the reply at 0.0 failed"), (4.0, "the reply at 3.0 failed")]


def test_an_environments_tags_are_its_first_versions_and_kept_by_the_next(make_scenario):
    loaded = make_scenario(compose(service("app", routes=["example.com/*"], worker="app.py", tags={"team": "edge"})), {"app.py": WORKER})
    production = actor(build(loaded, seed=1, clock=VirtualClock(), metrics=RunMetrics()), "app")
    [first] = production.history.versions
    assert first.tags == {"team": "edge"} and production.tags == {"team": "edge"}
    assert production.new_version("next").tags == {"team": "edge"}
