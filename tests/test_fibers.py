"""Fibers: virtual-time worker coroutines resumed by the clock, slots made on demand, closed at the end."""

from __future__ import annotations

from collections import deque

import pytest
import trio
from conftest import send, text

from edge.platform import fibers, runs
from edge.platform.clock import VirtualClock
from edge.engine.simulate import simulate
from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey
from scenario_builder import compose, service

def one(make_scenario, worker: str, drain: str | None = None, **limits: object):
    """app, running ``worker``, with ``limits`` (concurrency, mailbox), on 64 cores."""
    return make_scenario(compose(service("app", routes=["example.com/*"], worker="app.py", **limits), cores=64, drain=drain), {"app.py": worker})


def test_step_runs_a_fiber_until_it_suspends_and_reports_its_end():
    ready: deque = deque()
    ended = []

    async def body():
        first = await fibers.suspend()
        second = await fibers.suspend()
        return first + second

    fiber = fibers.Fiber(body(), ready, lambda f, error: ended.append((f, error)))
    fibers.step(fiber, None)
    assert not ended and runs.current().fiber is None
    fiber.wake(2)
    fiber.wake(3)  # queued in order: each wake-up is one resume
    assert list(ready) == [(fiber, 2), (fiber, 3)]
    fibers.step(*ready.popleft())
    assert not ended
    fibers.step(*ready.popleft())
    assert ended == [(fiber, None)]


def test_a_fiber_that_raises_hands_the_error_to_its_owner():
    ended = []

    async def body():
        raise SystemExit(3)

    fiber = fibers.Fiber(body(), deque(), lambda f, error: ended.append(error))
    fibers.step(fiber, None)
    assert isinstance(ended[0], SystemExit)


def test_a_closed_fiber_runs_its_finally_and_ignores_later_wake_ups():
    cleaned = []

    async def body():
        try:
            await fibers.suspend()
        finally:
            cleaned.append(runs.current().fiber is not None)  # closing runs as the fiber

    ready: deque = deque()
    fiber = fibers.Fiber(body(), ready, lambda f, error: pytest.fail("a closed fiber does not end"))
    fibers.step(fiber, None)
    fiber.close()
    assert cleaned == [True]
    fiber.wake("late")
    fibers.step(*ready.popleft())  # nothing to resume: no error
    fiber.close()  # twice is harmless


def test_the_clock_resumes_fiber_sleeps_in_time_order_without_trio_tasks():
    clock = VirtualClock()
    woke = []

    async def sleeper(name: str, seconds: float):
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async def main():
        for name, seconds in (("b", 0.002), ("a", 0.001), ("c", 0.002)):
            clock.start_fiber(sleeper(name, seconds), lambda f, error: None)
        await clock.sleep(1.0)

    trio.run(main, clock=clock)
    assert woke == [("a", 0.001), ("b", 0.002), ("c", 0.002)]  # equal times: FIFO


def test_a_worker_awaiting_trio_in_virtual_time_gets_a_500_and_the_slot_goes_on(make_scenario):
    worker = """
    import trio
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        if request.path == "/trio":
            await trio.sleep(1)
        await ctx.sleep("1ms")
        return Response("fine")
    """
    loaded = one(make_scenario, worker, concurrency=1)
    responses, result = send(loaded, [Request("https://example.com/trio"), Request("https://example.com/ok")])
    assert [r.status for r in responses] == [500, 200]
    assert text(responses[1]) == "fine"
    assert result.metrics.environments[EnvironmentKey("app", "production")].exceptions == 1


def slots_after(make_scenario, calls: int, concurrency: int, mailbox: int):
    worker = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        await ctx.sleep("10ms")
        return Response("ok")
    """
    loaded = one(make_scenario, worker, concurrency=concurrency, mailbox=mailbox)
    seen = {}

    def setup(topology, front, clock):
        actor = topology.environments[EnvironmentKey("app", "production")]
        clock.call_later(0.005, lambda: seen.update(slots=actor._slots, queued=len(actor.mailbox)))

    responses, result = send(loaded, [Request("https://example.com/") for _ in range(calls)], setup=setup)
    return seen, [r.status for r in responses]


@pytest.mark.parametrize("calls", [1, 7, 8])
def test_slots_come_into_being_as_calls_need_them(make_scenario, calls):
    seen, statuses = slots_after(make_scenario, calls, concurrency=8, mailbox=2)
    assert seen == {"slots": calls, "queued": 0}
    assert statuses == [200] * calls


def test_past_concurrency_calls_queue_then_shed(make_scenario):
    seen, statuses = slots_after(make_scenario, 10, concurrency=8, mailbox=2)  # exactly fills the mailbox
    assert seen == {"slots": 8, "queued": 2}
    assert statuses == [200] * 10
    seen, statuses = slots_after(make_scenario, 11, concurrency=8, mailbox=2)  # one over
    assert seen == {"slots": 8, "queued": 2}
    assert statuses.count(503) == 1 and statuses[-1] == 503


def test_sequential_calls_reuse_one_slot(make_scenario):
    worker = """
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        await ctx.cpu("1ms")
        return Response("ok")
    """
    loaded = one(make_scenario, worker)  # default concurrency: 256
    actors, slots = {}, []

    def setup(topology, front, clock):
        actors.update(topology.environments)
        for i in range(50):  # halfway through each call
            clock.call_later(i * 0.01 + 0.0005, lambda: slots.append(actors[EnvironmentKey("app", "production")]._slots))

    _, result = send(loaded, [(i * 0.01, Request("https://example.com/")) for i in range(50)], setup=setup)
    assert result.metrics.environments[EnvironmentKey("app", "production")].answered == 50
    assert slots == [1] * 50
    assert actors[EnvironmentKey("app", "production")]._slots == 0  # closed at the end of the run
    assert result.metrics.environments[EnvironmentKey("app", "production")].latency.max == pytest.approx(0.001)


def test_worker_finally_runs_when_the_run_ends_mid_call(make_scenario, tmp_path):
    marker = tmp_path / "closed"
    worker = f"""
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        try:
            await ctx.sleep("1h")
        finally:
            open({str(marker)!r}, "w").close()
        return Response("never")
    """
    loaded = one(make_scenario, worker, drain="1s")

    def setup(topology, front, clock):
        clock.call_later(0.0, front.submit, Request("https://example.com/"), 0.0)

    result = simulate(loaded, seed=1, duration=1.0, setup=setup)
    assert result.unanswered == 1
    assert marker.exists()
