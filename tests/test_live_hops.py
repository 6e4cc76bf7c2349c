"""Live, a binding call to a code worker runs in its caller's task (``EnvironmentActor.serve_inline``).

Why: a hand-over to a slot task and the answer's way back are two trio task switches, which the
model does not have; run inline, a hop is a function call, as in virtual time. What must not
change: a callee at its concurrency queues the call for a slot task, and slot tasks and inline
calls together never exceed it; each worker is charged only
its own CPU; a bound worker that spins is stopped at the chain's budget, for its call only; a
client's hang-up still cancels the whole chain (``tests/test_live.py::test_a_client_that_hangs_up_frees_the_slots_of_its_whole_chain``).
"""

from __future__ import annotations

import http.client
import time

import trio

from edge.live.admin_client import new_token
from edge.live.serve import LiveRuntime
from edge.platform.fetch import Request
import delays
from live import serve
from scenario_builder import compose, service
from edge.scenario.values import EnvironmentKey

def hops(back_concurrency: int) -> str:
    """front, public, calls back through its binding BACK."""
    return compose(service("front", worker="front.py", bindings={"BACK": "back"}),
                   service("back", routes=None, worker="back.py", concurrency=back_concurrency), name="hops", cpu_limit="50ms")

PRELUDE = """
import time
import trio
from edge.platform.fetch import Response

def burn(seconds):
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass
"""

FRONT = PRELUDE + """
async def fetch(request, env, ctx):
    burn(float(request.headers.get("x-front-burn") or 0))
    mine = id(trio.lowlevel.current_task())
    answer = await env.BACK.fetch(request)
    theirs = int(answer.headers.get("x-task") or 0)
    return Response(await answer.text(), status=answer.status, headers={"x-same-task": str(mine == theirs)})
"""

BACK = PRELUDE + """
async def fetch(request, env, ctx):
    if request.path == "/spin":
        while True:
            pass
    burn(float(request.headers.get("x-back-burn") or 0))
    await ctx.sleep(request.headers.get("x-back-sleep") or "0ms")
    return Response("back", headers={"x-task": str(id(trio.lowlevel.current_task()))})
"""


def runtime(make_scenario, back_concurrency: int) -> LiveRuntime:
    loaded = make_scenario(hops(back_concurrency), {"front.py": FRONT, "back.py": BACK})
    return LiveRuntime(loaded, admin_token=new_token())


async def test_a_bound_call_runs_in_its_callers_task_while_the_callee_has_room_for_another_slot(make_scenario):
    live = runtime(make_scenario, back_concurrency=3)
    back = live.topology.environments[EnvironmentKey("back", "production")]
    answers: list = []

    async def one() -> None:
        answer = await live.fetch(Request("https://front.test/", headers={"x-back-sleep": "100ms"}))
        answers.append((answer.status, answer.headers.get("x-same-task")))

    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        await one()
        assert answers == [(200, "True")]  # alone: served inline
        answers.clear()
        async with trio.open_nursery() as calls:
            # back has one slot task (idle) from its start: two calls fit inline beside it, the
            # third goes to the task, the fourth waits in the mailbox: never more than 3 at once.
            for _ in range(4):
                calls.start_soon(one)
            await trio.sleep(0.05)
            assert (back.stats.inflight, len(back.mailbox), back._inline_busy) == (3, 1, 2)
        assert sorted(answers) == [(200, "False"), (200, "False"), (200, "True"), (200, "True")]
        assert back.stats.inflight == 0 and back._inline_busy == 0
        nursery.cancel_scope.cancel()


async def test_each_worker_of_an_inline_chain_is_charged_its_own_cpu_only(make_scenario):
    live = runtime(make_scenario, back_concurrency=4)
    async with trio.open_nursery() as nursery:
        await live.run_actors(nursery)
        answer = await live.fetch(Request("https://front.test/", headers={"x-front-burn": "0.004", "x-back-burn": "0.020"}))
        assert (answer.status, answer.headers.get("x-same-task")) == (200, "True")
        front, back = (live.topology.environments[EnvironmentKey(name, "production")].stats.cpu_seconds for name in ("front", "back"))
        nursery.cancel_scope.cancel()
    assert 0.020 <= back < 0.026
    assert 0.004 <= front < 0.008  # before: the caller's step also held the callee's 20 ms


def test_a_bound_worker_that_spins_inline_is_stopped_at_the_chains_budget_for_its_call_only(make_scenario, tmp_path):
    make_scenario(hops(4), {"front.py": FRONT, "back.py": BACK})
    with serve(str(tmp_path / "scenario.toml")) as served:
        def get(path: str) -> tuple[int, bytes, float]:
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=15)
            started = time.monotonic()
            conn.request("GET", path, headers={"Host": "front.test"})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body, time.monotonic() - started

        with delays.measured(served.process) as waited:
            status, body, elapsed = get("/spin")
        assert (status, body) == (503, b"error code: 1102")  # the front passes on back's answer
        assert elapsed < 1.0 + waited.seconds  # 50 ms of CPU, not a spin for ever
        assert get("/")[:2] == (200, b"back")
