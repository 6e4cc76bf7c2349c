"""Live slot tasks come into being as calls need them and end when no call needed them for a while.

Why it matters: each parked task keeps what it allocated, and CPython's allocator keeps a memory
arena for as long as one object in it lives. Before, every environment started ``concurrency``
slot tasks (256 by default) and a burst's slots parked for good holding their last call: the
server's memory stayed at the burst's (docs/reliability.md).
"""

from __future__ import annotations

import trio
import trio.testing

import actors.environment as environment
from actors.mailbox import Mailbox
from edge.live.admin_client import new_token
from edge.live.serve import LiveRuntime, _count_tasks
from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey
from consumers import recording

SCENARIO = """
[scenario]
name = "slots"

[[services]]
name = "app"
routes = ["example.com/*"]
worker = "app.py"
concurrency = 8
mailbox = 4
"""

WORKER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.sleep("100ms")
    return Response("ok")
"""


async def _park(nursery: trio.Nursery, mailbox: Mailbox, count: int, got: list) -> None:
    """Park ``count`` trio tasks in ``mailbox.receive``, 0 first; each records (its index, message)
    and parks again, until it gets "retire"."""

    consumer = recording(mailbox, got)
    for index in range(count):
        nursery.start_soon(consumer, index)
        await trio.testing.wait_all_tasks_blocked()


async def test_retire_unused_wakes_the_consumers_no_message_reached_since_the_last_look_and_keeps_exactly_keep():
    mailbox, got = Mailbox(4), []
    async with trio.open_nursery() as nursery:
        await _park(nursery, mailbox, 5, got)
        assert mailbox.retire_unused("retire", keep=0) == 0  # the first look only sets the mark
        assert mailbox.post("m1")  # wakes the last parked (4), which parks again on top
        await trio.testing.wait_all_tasks_blocked()
        assert got == [(4, "m1")]
        # Consumers 0-3 stayed below every wake-up since the look: all four go, and keep=1 is met
        # by consumer 4 (one fewer kept, keep=0, would take it too: below).
        assert mailbox.retire_unused("retire", keep=1) == 4
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(got[1:]) == [(0, "retire"), (1, "retire"), (2, "retire"), (3, "retire")]
        assert mailbox.has_idle  # consumer 4
        assert mailbox.retire_unused("retire", keep=0) == 1  # nothing reached it since: it goes too
        await trio.testing.wait_all_tasks_blocked()
        assert got[-1] == (4, "retire") and not mailbox.has_idle


async def test_a_consumer_woken_since_the_last_look_is_not_retired_and_keep_is_a_floor():
    mailbox, got = Mailbox(4), []
    async with trio.open_nursery() as nursery:
        await _park(nursery, mailbox, 3, got)
        mailbox.retire_unused("retire", keep=0)
        for message in ("a", "b", "c"):  # three at once: every consumer is woken
            assert mailbox.post(message)
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.retire_unused("retire", keep=0) == 0
        # Nothing since: all three unused. keep=3 (exactly how many are idle) retires none, 2 one.
        assert mailbox.retire_unused("retire", keep=3) == 0
        assert mailbox.retire_unused("retire", keep=2) == 1
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.retire_unused("retire", keep=0) == 2
        nursery.cancel_scope.cancel()


async def test_live_slots_grow_with_the_calls_up_to_concurrency_and_go_back_after_the_burst(make_scenario, monkeypatch):
    monkeypatch.setattr(environment, "SLOT_RETIRE_AFTER", 0.3)
    runtime = LiveRuntime(make_scenario(SCENARIO, {"app.py": WORKER}), admin_token=new_token())
    actor = runtime.topology.environments[EnvironmentKey("app", "production")]
    statuses: list[int] = []

    async def one() -> None:  # posted to the actor, as through a router (the ingress may serve it inline)
        answered = trio.Event()

        def done(response) -> None:
            statuses.append(response._status)
            answered.set()

        runtime.front.submit(Request("https://example.com/"), runtime.clock.now(), done)
        await answered.wait()

    async with trio.open_nursery() as nursery:
        await runtime.run_actors(nursery)
        await trio.sleep(0.05)
        assert actor._slots == 1  # one slot at the start, not concurrency's 8
        idle_tasks = _count_tasks(trio.lowlevel.current_root_task())
        for calls, slots, queued in ((8, 8, 0), (9, 8, 1), (13, 8, 5)):  # exactly concurrency, one over, mailbox+1 over
            statuses.clear()
            async with trio.open_nursery() as burst:
                for _ in range(calls):
                    burst.start_soon(one)
                await trio.sleep(0.05)
                assert (actor._slots, len(actor.mailbox)) == (slots, min(queued, 4))
            assert statuses.count(200) == min(calls, 12) and statuses.count(503) == calls - min(calls, 12)
        await trio.sleep(0.7)  # two looks: first the mark, then the retirement
        assert actor._slots == environment.IDLE_SLOTS_KEPT
        assert _count_tasks(trio.lowlevel.current_root_task()) <= idle_tasks - 1 + environment.IDLE_SLOTS_KEPT
        statuses.clear()
        await one()  # a kept slot serves the next call at once
        assert statuses == [200] and actor._slots == environment.IDLE_SLOTS_KEPT
        nursery.cancel_scope.cancel()
