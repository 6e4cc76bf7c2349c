"""What an environment actor does when a worker step goes wrong beyond an ``Exception``: a
``BaseException`` the worker raises (a 1101 for its call), a step the watchdog interrupts for
holding the loop (a 1102: stalled on the wall limit, or over the CPU budget when CPU is measured),
a worker stopped after its second stall, a real Ctrl-C passing through the worker to the run, and a
platform fault escaping a slot (raised in the actor's task, which the supervisor restarts).

Driven in virtual time with ``test_environment_limits.serve`` (no simulation, no process, no
socket), the watchdog armed inside the run as ``simulate`` arms it. Its wall limit is 200 ms, as in
``test_faults.py``: a spinning step is stopped whatever the machine's load, only later.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, Iterator

import pytest

from actors.mailbox import Call
from edge.platform import watchdog
from edge.platform.cpu import CpuAccount
from edge.platform.fetch import Request
from scenario_builder import compose, service
from test_environment_limits import ENOUGH, LIVE_FRONT, actor, serve

STEP_LIMIT = 0.2  # seconds of wall time a virtual worker step may hold the loop


def _mutants_are_boundaries_too() -> None:
    """Under mutmut (docs/mutation.md) ``EnvironmentActor._serve`` is a trampoline calling one of
    its mutated copies, which the watchdog would take for platform code: declare those boundaries
    too, as ``actors.environment`` declares ``_serve``. Nothing to do outside a mutation run."""
    import actors.environment as module

    for method in ("_serve", "_rpc"):
        watchdog.boundary(*getattr(module, f"mutants_x\u01c1EnvironmentActor\u01c1{method}__mutmut", {}).values())


_mutants_are_boundaries_too()

WORKER = """
import signal, sys
from edge.platform.fetch import Response
from edge.platform.cpu import CpuLimitExceeded

class Custom(BaseException):
    pass

async def fetch(request, env, ctx):
    fault = request.path.strip("/")
    await ctx.cpu("1ms")
    if fault == "exit":
        sys.exit("bye")
    if fault == "keyboard":
        raise KeyboardInterrupt("typed by the worker")
    if fault == "generator-exit":
        raise GeneratorExit("thrown by the worker")
    if fault == "custom":
        raise Custom("its own")
    if fault == "group":
        raise BaseExceptionGroup("many", [ValueError("a"), Custom("b")])
    if fault == "spin":
        while True:
            pass
    if fault == "ctrl-c":
        signal.raise_signal(signal.SIGINT)
        while True:
            pass
    if fault == "over":
        await ctx.cpu("80ms")
    if fault == "swallow-limit":
        try:
            await ctx.cpu("80ms")
        except CpuLimitExceeded:
            return Response("answered anyway")
    if fault == "slow":
        await ctx.sleep("1s")
    return Response("fine")
"""


def app(**meta: Any) -> str:
    return compose(service("app", routes=["example.com/*"], worker="app.py", concurrency=1), **meta)


def req(path: str) -> Request:
    return Request(f"https://example.com/{path}")


@contextlib.contextmanager
def watched(step_limit: float = STEP_LIMIT, *, sigint: bool = False, then=None) -> Iterator[Any]:
    """A ``serve`` setup that arms the watchdog inside the run (as ``simulate`` does) and disarms it
    before the run ends; whatever happens, the watchdog and the SIGINT handler are left as found."""
    handler = signal.getsignal(signal.SIGINT)
    guard = watchdog.armed(step_limit, sigint)
    state = {"armed": False}

    def disarm() -> None:
        if state["armed"]:
            state["armed"] = False
            guard.__exit__(None, None, None)

    def setup(topology, clock) -> None:
        assert guard.__enter__(), "the watchdog must be armed"
        state["armed"] = True
        clock.call_later(ENOUGH - 1.0, disarm)
        if then is not None:
            then(topology, clock)

    try:
        yield setup
    finally:
        disarm()
        signal.signal(signal.SIGINT, handler)


def headers_error(answer) -> str | None:
    return answer.result.headers.get("x-edge-error")


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- a BaseException of the worker's own: its call's 1101 ---------------------------------------------

@pytest.mark.parametrize("fault, logged", [
    ("exit", "SystemExit: bye"),
    ("keyboard", "KeyboardInterrupt: typed by the worker"),  # raised by the worker, not by a signal
    ("generator-exit", "GeneratorExit: thrown by the worker"),  # the worker's frames under _serve: its own
    ("custom", "Custom: its own"),
    ("group", "BaseExceptionGroup: many (2 sub-exceptions)"),
])
def test_a_base_exception_a_worker_raises_is_a_1101_for_its_call_and_the_slot_serves_on(make_scenario, caplog, fault, logged):
    loaded = make_scenario(app(), {"app.py": WORKER})
    with watched() as setup:
        answers, topology, _ = serve(loaded, [("app", req(fault)), (0.5, "app", req(""))], setup=setup)
    assert [a.status for a in answers] == [500, 200]
    assert answers[0].text() == "error code: 1101" and headers_error(answers[0]) == "exception"
    stats = actor(topology, "app").stats
    assert (stats.exceptions, stats.stalls, stats.stopped_at, stats.unrun) == (1, 0, None, 0)
    key = actor(topology, "app").key
    assert warnings(caplog) == [f"{key} threw (answered 500, error 1101): {logged}"]


# --- the watchdog: a step that holds the loop ------------------------------------------------------

STALL_LOG = "was stopped (answered 503, error 1102): worker step interrupted: it held the event loop past its step wall-time limit (200ms)"


def test_one_stall_is_a_1102_for_its_call_and_the_worker_serves_on(make_scenario, caplog):
    loaded = make_scenario(app(), {"app.py": WORKER})
    with watched() as setup:
        answers, topology, accounts = serve(loaded, [("app", req("spin")), (1.0, "app", req("")), (2.0, "app", req(""))], setup=setup)
    assert [a.status for a in answers] == [503, 200, 200]
    assert answers[0].text() == "error code: 1102" and headers_error(answers[0]) == "stalled"
    assert [a.text() for a in answers[1:]] == ["fine", "fine"]
    stats = actor(topology, "app").stats
    assert (stats.stalls, stats.stopped_at, stats.unrun, stats.exceptions) == (1, None, 0, 0)
    assert not accounts[0].exceeded  # a stall is wall time, not the call's CPU
    assert warnings(caplog) == [f"{actor(topology, 'app').key} {STALL_LOG}"]


def test_a_second_stall_stops_the_worker_for_the_rest_of_the_run(make_scenario, caplog):
    from actors.environment import STOP_AFTER_STALLS

    assert STOP_AFTER_STALLS == 2
    loaded = make_scenario(app(), {"app.py": WORKER})
    calls = [("app", req("spin")), (1.0, "app", req("")), (2.0, "app", req("spin")), (3.0, "app", req("")), (4.0, "app", req(""))]
    with watched() as setup:
        answers, topology, _ = serve(loaded, calls, setup=setup)
    assert [a.status for a in answers] == [503, 200, 503, 503, 503]
    assert {headers_error(a) for a in answers if a.status == 503} == {"stalled"}
    assert all(a.text() == "error code: 1102" for a in answers if a.status == 503)
    stats = actor(topology, "app").stats
    assert stats.stalls == 2 and stats.stopped_at == pytest.approx(2.001)  # when the second stall came (after its 1 ms of CPU)
    assert stats.unrun == 2  # the later calls were answered without running the worker
    assert stats.exceptions == 0
    key = actor(topology, "app").key
    assert warnings(caplog) == [  # one line per distinct message, then the stop
        f"{key} {STALL_LOG}",
        f"{key}: its later calls are answered 503 (error 1102) without running its worker, for the rest of the run",
    ]


def test_a_step_over_the_cpu_budget_is_the_calls_cpu_limit_not_a_stall(make_scenario, caplog):
    # With CPU measured, the watchdog stops a spinning step once it burnt the call's budget (50 ms
    # of thread CPU), long before the wall limit (set far off here).
    loaded = make_scenario(app(measure_cpu=True), {"app.py": WORKER})
    with watched(step_limit=60.0) as setup:
        answers, topology, accounts = serve(loaded, [("app", req("spin")), (1.0, "app", req(""))], cpu_limit=0.05, setup=setup)
    assert [a.status for a in answers] == [503, 200]
    assert answers[0].text() == "error code: 1102" and headers_error(answers[0]) == "cpu-limit"
    assert accounts[0].exceeded and accounts[0].used == pytest.approx(0.05)
    assert accounts[0].exceeded_at == actor(topology, "app").key
    assert not accounts[1].exceeded
    stats = actor(topology, "app").stats
    assert (stats.stalls, stats.stopped_at, stats.exceptions) == (0, None, 0)
    assert warnings(caplog) == []


# --- what is not the worker's passes through it ----------------------------------------------------

def test_a_real_ctrl_c_while_a_worker_runs_ends_the_run_and_is_not_the_workers_fault(make_scenario, caplog):
    loaded = make_scenario(app(), {"app.py": WORKER})
    seen: dict[str, Any] = {}
    with watched(step_limit=60.0, sigint=True, then=lambda topology, clock: seen.update(topology=topology)) as setup:
        with pytest.raises(BaseException) as raised:
            serve(loaded, [("app", req("ctrl-c"))], setup=setup)
    error = raised.value
    while isinstance(error, BaseExceptionGroup):  # through the nurseries
        [error] = error.exceptions
    assert type(error) is KeyboardInterrupt and watchdog.from_signal(error)
    stats = actor(seen["topology"], "app").stats
    assert (stats.exceptions, stats.stalls) == (0, 0)  # neither a worker fault nor a stall
    assert not [m for m in warnings(caplog) if "threw" in m or "was stopped" in m]


# --- a platform fault escaping a slot --------------------------------------------------------------

class Boom(Exception):
    pass


def test_a_fault_escaping_a_slot_crashes_the_actor_which_restarts_and_serves_on_within_its_concurrency(make_scenario, caplog):
    # The reply of the first call fails (a platform bug, not the worker's): it escapes the slot's
    # fiber and is raised in the actor's task, where the supervisor restarts the actor. The slot
    # is gone, so the next calls get a new one: still one at a time (concurrency 1).
    loaded = make_scenario(app(), {"app.py": WORKER})
    replied: list[tuple[float, int]] = []

    def then(topology, clock) -> None:
        entry = topology.entries["app"]

        def broken(call: Call, result: Any) -> None:
            raise Boom("the reply failed")

        def post_broken() -> None:
            assert entry(Call(req(""), CpuAccount(0.05, 32), broken, clock.now())) is None

        def post_slow() -> None:
            def reply(call: Call, result: Any) -> None:
                replied.append((clock.now(), result.status))
            assert entry(Call(req("slow"), CpuAccount(0.05, 32), reply, clock.now())) is None

        clock.call_later(1.0, post_broken)
        clock.call_later(2.0, post_slow)
        clock.call_later(2.0, post_slow)

    with watched(then=then) as setup:
        answers, topology, _ = serve(loaded, [(3.5, "app", req(""))], setup=setup)
    assert [a.status for a in answers] == [200]
    assert [status for _, status in replied] == [200, 200]
    assert [at for at, _ in replied] == pytest.approx([3.001, 4.002])  # one slot: the second slow call waited for the first
    app_actor = actor(topology, "app")
    assert app_actor.stats.exceptions == 0
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 1 and "restart 1 of 3" in crashes[0].getMessage()
    assert isinstance(crashes[0].exc_info[1], Boom)


def test_a_fault_escaping_a_slot_before_the_actor_runs_is_raised_when_it_starts(make_scenario, caplog):
    loaded = make_scenario(app(), {"app.py": WORKER})

    def then(topology, clock) -> None:  # before the actors' tasks have run
        def broken(call: Call, result: Any) -> None:
            raise Boom("the reply failed")

        assert topology.entries["app"](Call(req(""), CpuAccount(0.05, 32), broken, clock.now())) is None

    with watched(then=then) as setup:
        answers, topology, _ = serve(loaded, [(1.0, "app", req("")), (1.0, "app", req(""))], setup=setup)
    assert [a.status for a in answers] == [200, 200]
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 1 and isinstance(crashes[0].exc_info[1], Boom)


def test_an_environment_where_nothing_goes_wrong_never_crashes(make_scenario, caplog):
    loaded = make_scenario(app(), {"app.py": WORKER})
    answers, topology, _ = serve(loaded, [("app", req("")), (1.0, "app", req("slow"))])
    assert [a.status for a in answers] == [200, 200]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- the CPU limit met by a worker's declared CPU ------------------------------------------------

@pytest.mark.parametrize("path", ["over", "swallow-limit"])
def test_declared_cpu_past_the_budget_is_the_calls_cpu_limit_even_if_the_worker_answers(make_scenario, path):
    loaded = make_scenario(app(), {"app.py": WORKER})
    answers, topology, accounts = serve(loaded, [("app", req(path)), (1.0, "app", req(""))], cpu_limit=0.05)
    assert [a.status for a in answers] == [503, 200]
    assert headers_error(answers[0]) == "cpu-limit" and answers[0].text() == "error code: 1102"
    assert accounts[0].exceeded and not accounts[1].exceeded
    assert actor(topology, "app").stats.exceptions == 0


# --- answers counted by the version that served them ---------------------------------------------

def test_a_call_in_flight_across_a_new_version_counts_under_the_version_that_served_it(make_scenario):
    loaded = make_scenario(app(), {"app.py": WORKER})

    def then(topology, clock) -> None:
        clock.call_later(0.5, lambda: actor(topology, "app").new_version("new vars", vars={"X": "1"}))

    answers, topology, _ = serve(loaded, [("app", req("slow")), (2.0, "app", req(""))], setup=then)
    assert [a.status for a in answers] == [200, 200]
    assert [a.call.version for a in answers] == ["1", "2"]
    stats = actor(topology, "app").stats
    assert list(stats.counts("1")) == [0, 1, 0, 0, 0] and list(stats.counts("2")) == [0, 1, 0, 0, 0]


def test_the_first_version_is_the_initial_one(make_scenario):
    loaded = make_scenario(app(), {"app.py": WORKER})
    _, topology, _ = serve(loaded, [("app", req(""))])
    a = actor(topology, "app")
    [first] = a.history.versions
    assert (first.number, first.message, first.at_s) == (1, "initial", 0.0)
    from edge.platform.versions import VersionError

    with pytest.raises(VersionError, match=f"^{a.key}: nothing to roll back to"):
        a.rollback()


# --- live: a bound call served inline, its ctx.wait_until work and new vars ---------------------

INLINE_BACK = """
import trio
from edge.platform.fetch import Response

async def after(ctx):
    await ctx.sleep("50ms")
    raise ValueError("after the answer")

async def fetch(request, env, ctx):
    if request.path == "/later":
        ctx.wait_until(after(ctx))
    return Response(f"v={env.V}", headers={"x-task": str(id(trio.lowlevel.current_task()))})
"""


async def test_live_a_call_served_inline_runs_its_wait_until_work_after_the_answer_then_sees_new_vars(make_scenario, caplog):
    import trio

    from edge.live.admin_client import new_token
    from edge.live.serve import LiveRuntime

    loaded = make_scenario(compose(
        service("front", routes=["front.test/*"], worker="front.py", bindings={"BACK": "back"}),
        service("back", routes=["back.test/*"], worker="back.py", concurrency=2, mailbox=1, vars={"V": "a"}),
    ), {"front.py": LIVE_FRONT, "back.py": INLINE_BACK})
    live = LiveRuntime(loaded, admin_token=new_token())
    back = actor(live.topology, "back")

    async def answer(path: str) -> tuple[int, str, str | None]:
        response = await live.fetch(Request(f"https://front.test/{path}"))
        return response.status, await response.text(), response.headers.get("x-inline")

    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        assert await answer("later") == (200, "v=a", "True")  # answered in the caller's task
        assert back._inline_busy == 1  # its slot stays busy while the work runs
        for _ in range(500):
            if not back._inline_busy:  # the work has ended: its slot is free again
                break
            await trio.sleep(0.01)
        assert (back.later_running, back._inline_busy) == (0, 0)
        assert back.stats.exceptions == 1  # the work ran, after the answer, and its failure was counted
        back.new_version("new vars", vars={"V": "b"})
        assert await answer("") == (200, "v=b", "True")  # the slot kept for inline calls sees them
        assert await answer("") == (200, "v=b", "True")
        assert back._inline_busy == 0 and len(back._inline_slots) == 1  # one slot, reused
        nursery.cancel_scope.cancel()
    assert [m for m in warnings(caplog) if "after the answer" in m] == [
        f"{back.key} raised in ctx.wait_until work, after its answer: ValueError: after the answer"]


# --- an RPC method's deliberate failure is counted by its status ---------------------------------

RPC_FRONT = """
from edge.platform.fetch import Response
from actors.environment import RpcError

async def fetch(request, env, ctx):
    try:
        await env.BACK.refuse(int(request.path.strip("/")))
    except RpcError as exc:
        return Response(f"refused {exc.status}")
    return Response("not refused")
"""

RPC_BACK = """
from edge.platform.fetch import Response

class Refused(Exception):
    def __init__(self, status):
        super().__init__(f"refused with {status}")
        self.status = status

async def refuse(env, ctx, status):
    raise Refused(status)

async def fetch(request, env, ctx):
    return Response("fine")
"""


@pytest.mark.parametrize("status, counts", [(404, [0, 0, 0, 1, 0]), (503, [0, 0, 0, 0, 1])])
def test_an_rpc_methods_deliberate_failure_counts_under_its_status_class(make_scenario, status, counts):
    loaded = make_scenario(compose(
        service("front", routes=["example.com/*"], worker="front.py", bindings={"BACK": "back"}),
        service("back", routes=None, worker="back.py"),
    ), {"front.py": RPC_FRONT, "back.py": RPC_BACK})
    [answer], topology, _ = serve(loaded, [("front", req(str(status)))])
    assert answer.status == 200 and answer.text() == f"refused {status}"
    back = actor(topology, "back")
    assert list(back.stats.counts(back.version)) == counts


def test_the_queue_wait_is_the_time_a_call_spent_in_the_mailbox_not_when_it_arrived(make_scenario):
    loaded = make_scenario(app(), {"app.py": WORKER})
    answers, topology, _ = serve(loaded, [(2.0, "app", req("slow")), (2.0, "app", req("fine"))])
    assert [a.status for a in answers] == [200, 200]
    waits = actor(topology, "app").stats.queue_wait
    waits.settle()
    assert waits.count == 2
    assert waits.min == 0.0  # the first found its slot idle at once, posted at 2 s
    assert waits.max == pytest.approx(1.001)  # the second waited out the first's 1 ms of CPU and 1 s asleep
