"""The mailbox every actor is built on: bounded at exactly its capacity, FIFO, the most recently
parked consumer woken first, consumers that are trio tasks or fibers alike, and ``ask``'s
round trip (an immediate answer without parking, a reply that wakes the caller, a cancelled
caller whose answer goes nowhere).

Driven by hand: fibers stepped from a deque (as the clock steps them), trio tasks in ``trio.run``.
"""

from __future__ import annotations

from collections import deque

import pytest
import trio
import trio.testing

from actors.mailbox import Call, Mailbox, RpcFailure, ask, discard_reply
from edge.platform import fibers
from consumers import recording


def _fiber(coro, ready: deque, ended: list) -> fibers.Fiber:
    fiber = fibers.Fiber(coro, ready, lambda f, error: ended.append(error))
    fibers.step(fiber, None)
    return fiber


def _drain(ready: deque) -> None:
    while ready:
        fibers.step(*ready.popleft())


def _parked_fibers(mailbox: Mailbox, count: int, got: list, ready: deque, ended: list) -> list[fibers.Fiber]:
    """``count`` fibers parked in ``mailbox.receive`` (0 parked first), each recording (index, message)
    and parking again, until it gets "retire"."""

    consumer = recording(mailbox, got)
    return [_fiber(consumer(index), ready, ended) for index in range(count)]


# --- capacity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 3])
def test_a_mailbox_holds_exactly_its_capacity_and_refuses_the_next(capacity):
    mailbox = Mailbox(capacity)
    assert [mailbox.post(i) for i in range(capacity)] == [True] * capacity  # up to capacity: queued
    assert len(mailbox) == capacity
    assert mailbox.post("one too many") is False  # just over: the sender sheds it
    assert len(mailbox) == capacity and "one too many" not in mailbox.waiting


def test_a_mailbox_one_under_capacity_still_takes_one():
    mailbox = Mailbox(2)
    assert mailbox.post("a") is True and len(mailbox) == 1
    assert mailbox.post("b") is True and len(mailbox) == 2


def test_taking_a_message_makes_room_for_exactly_one_more():
    mailbox = Mailbox(2)
    mailbox.post("a"), mailbox.post("b")
    assert mailbox.take() == "a"
    assert mailbox.post("c") is True
    assert mailbox.post("d") is False
    assert [mailbox.take(), mailbox.take()] == ["b", "c"]
    assert len(mailbox) == 0


def test_a_negative_capacity_is_refused_and_zero_is_allowed():
    with pytest.raises(ValueError, match="mailbox capacity must be >= 0, got -1"):
        Mailbox(-1)
    assert Mailbox(0).capacity == 0


def test_force_delivers_past_capacity_and_to_an_idle_consumer_first():
    mailbox = Mailbox(1)
    assert mailbox.post("queued")
    mailbox.force("owed reply")  # full, yet a reply the actor is owed is never lost
    assert list(mailbox.waiting) == ["queued", "owed reply"]

    ready, ended, got = deque(), [], []
    empty = Mailbox(0)
    _parked_fibers(empty, 1, got, ready, ended)
    empty.force("reply")
    _drain(ready)
    assert got == [(0, "reply")] and len(empty) == 0  # handed over, not queued as well


# --- consumers ----------------------------------------------------------------------------------


def test_messages_are_received_first_in_first_out_without_parking():
    mailbox = Mailbox(5)
    for message in "abc":
        mailbox.post(message)
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 1, got, ready, ended)
    # The consumer drained the whole backlog in its first step, then parked for the next message.
    assert got == [(0, "a"), (0, "b"), (0, "c")] and not ready
    assert len(mailbox) == 0 and mailbox.has_idle


def test_a_post_to_an_idle_consumer_hands_the_message_over_even_at_capacity_zero():
    mailbox = Mailbox(0)
    assert not mailbox.has_idle
    assert mailbox.post("nobody") is False  # no consumer and no room: refused
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 1, got, ready, ended)
    assert mailbox.has_idle
    assert mailbox.post("m") is True
    assert not mailbox.has_idle and len(mailbox) == 0  # handed over, never queued
    _drain(ready)
    assert got == [(0, "m")]


def test_the_consumer_parked_last_is_woken_first():
    mailbox = Mailbox(0)
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 3, got, ready, ended)
    for message in ("x", "y", "z"):
        assert mailbox.post(message)
    _drain(ready)
    assert got == [(2, "x"), (1, "y"), (0, "z")]
    assert mailbox.post("again")  # each parked again after its message: 0 was last
    _drain(ready)
    assert got[-1] == (0, "again")


def test_a_closed_fiber_leaves_the_idle_consumers():
    mailbox = Mailbox(0)
    ready, ended, got = deque(), [], []
    first, second = _parked_fibers(mailbox, 2, got, ready, ended)
    second.close()  # the run ended while it waited: it consumes nothing more
    assert mailbox.post("m") is True
    _drain(ready)
    assert got == [(0, "m")]
    first.close()
    assert not mailbox.has_idle and mailbox.post("n") is False


def test_a_fiber_closed_after_a_post_woke_it_but_before_it_resumed_closes_cleanly():
    """The end of a run closes every slot fiber, some of which a post may have handed a message at
    the last instant (woken, not yet resumed). Closing one must end it like any other: it used to
    raise ValueError (its wake-up was no longer idle to remove), out of ``Fiber.close`` and so out
    of the actor's loop that closes the rest, whose ``finally`` blocks then never ran."""
    mailbox = Mailbox(0)
    ready, ended, got = deque(), [], []
    woken, idle = _parked_fibers(mailbox, 2, got, ready, ended)[::-1]
    assert mailbox.post("last instant")  # the fiber parked last takes it
    woken.close()
    idle.close()
    assert got == [] and not mailbox.has_idle  # neither consumes anything more
    _drain(ready)  # the wake-up finds nothing to resume
    assert got == [] and ended == []


def test_a_trio_task_receives_a_posted_message_and_a_cancelled_one_leaves_the_idle_consumers():
    got = []

    async def main():
        mailbox = Mailbox(0)
        async with trio.open_nursery() as nursery:
            async def consumer(name: str) -> None:
                got.append((name, await mailbox.receive()))

            nursery.start_soon(consumer, "a")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(consumer, "b")  # parked after a: woken first
            await trio.testing.wait_all_tasks_blocked()
            assert mailbox.post("m1")
            await trio.testing.wait_all_tasks_blocked()
            assert got == [("b", "m1")]

            cancelled = trio.CancelScope()

            async def leaving() -> None:
                with cancelled:
                    await mailbox.receive()
                got.append(("c", "left"))

            nursery.start_soon(leaving)
            await trio.testing.wait_all_tasks_blocked()
            cancelled.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert got[-1] == ("c", "left")
            assert mailbox.post("m2")  # goes to a, not to the task that left
            await trio.testing.wait_all_tasks_blocked()
            assert got[-1] == ("a", "m2")
            assert not mailbox.has_idle and mailbox.post("m3") is False

    trio.run(main)


# --- retire_unused: the low-water mark of the idle stack ----------------------------------------


def test_retire_unused_wakes_the_bottom_of_the_idle_stack_that_no_post_reached():
    mailbox = Mailbox(4)
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 5, got, ready, ended)
    assert mailbox.retire_unused("retire", keep=2) == 0  # nothing looked yet: none known unused
    assert mailbox.post("a") and mailbox.post("b")  # 4 and 3 taken: 3 stayed idle throughout
    _drain(ready)  # they park again: 5 idle, 0..2 never reached
    assert mailbox.retire_unused("retire", keep=1) == 3
    _drain(ready)
    assert sorted(index for index, message in got if message == "retire") == [0, 1, 2]
    assert ended == [None, None, None]
    # The mark restarts at what is idle now: nothing posted since, so both are unused, keep 1.
    assert mailbox.retire_unused("retire", keep=1) == 1
    _drain(ready)
    assert mailbox.retire_unused("retire", keep=1) == 0  # exactly keep left


def test_retire_unused_keeps_exactly_keep_and_more_when_fewer_were_unused():
    mailbox = Mailbox(4)
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 4, got, ready, ended)
    assert mailbox.retire_unused("retire", keep=0) == 0  # the first look: nothing known unused yet; the mark is now 4
    assert mailbox.post("a")  # one taken: 3 stayed idle
    assert mailbox.retire_unused("retire", keep=3) == 0  # 3 unused, but keep 3 of the 3 idle
    _drain(ready)
    assert mailbox.post("b")
    _drain(ready)
    assert mailbox.retire_unused("retire", keep=2) == 2  # 3 unused, 4 idle: keep exactly 2
    _drain(ready)
    assert mailbox.retire_unused("retire", keep=0) == 2  # nothing posted since: every idle one


def test_a_post_that_finds_no_idle_consumer_means_every_consumer_was_needed():
    mailbox = Mailbox(4)
    ready, ended, got = deque(), [], []
    leaving = _parked_fibers(mailbox, 2, got, ready, ended)
    assert mailbox.retire_unused("retire", keep=0) == 0  # the mark: 2 idle
    for fiber in leaving:
        fiber.close()  # both leave (the run ends for them) without a post reaching them
    assert mailbox.post("queued")  # no consumer idle: this message waits, so every one was needed
    _parked_fibers(mailbox, 2, got, ready, ended)  # new consumers: the first takes the queued message
    _drain(ready)
    assert got == [(0, "queued")] and mailbox.has_idle
    assert mailbox.retire_unused("retire", keep=0) == 0  # the mark went to 0 when none was idle


def test_the_low_water_mark_follows_the_fewest_idle_not_the_last():
    mailbox = Mailbox(4)
    ready, ended, got = deque(), [], []
    _parked_fibers(mailbox, 4, got, ready, ended)
    mailbox.retire_unused("retire", keep=0)  # mark: 4
    mailbox.post("a"), mailbox.post("b")  # 2 idle at the lowest
    _drain(ready)  # 4 idle again
    mailbox.post("c")  # 3 idle: not below the mark of 2
    _drain(ready)
    assert mailbox.retire_unused("retire", keep=0) == 2
    _drain(ready)


# --- Call, RpcFailure, ask ----------------------------------------------------------------------


def test_a_new_call_carries_only_what_it_was_given():
    def reply(call, result):
        pass

    call = Call("request", "account", reply, 1.5)
    assert (call.request, call.account, call.on_reply, call.posted_at) == ("request", "account", reply, 1.5)
    assert call.method is None and call.args == () and call.kwargs is None  # a fetch
    assert call.answered_at == 0.0 and call.served_by is None and call.version == ""
    assert call.routed_to is None and call.context is None and call.waiter is None
    assert call.cancelled is False and call.scope is None and call.thrown is None
    rpc = Call(None, "account", reply, 2.0, "hello", (1,), {"x": 2})
    assert (rpc.method, rpc.args, rpc.kwargs) == ("hello", (1,), {"x": 2})


def test_an_rpc_failure_is_a_500_with_the_message_as_detail_unless_told_otherwise():
    failure = RpcFailure("boom")
    assert (failure.message, failure.status, failure.code, failure.detail, failure.missing) == ("boom", 500, None, "boom", False)
    deliberate = RpcFailure("no", 404, "not-found", "no such user")
    assert (deliberate.status, deliberate.code, deliberate.detail, deliberate.missing) == (404, "not-found", "no such user", False)
    assert RpcFailure("gone", missing=True).missing is True
    assert RpcFailure("x", detail="").detail == ""  # an empty detail is a detail


def test_cancelling_a_call_cancels_the_slot_running_it():
    call = Call(None, None, discard_reply, 0.0)
    call.cancel()  # queued, no slot yet: the flag is all there is
    assert call.cancelled is True

    async def main():
        running = Call(None, None, discard_reply, 0.0)
        with trio.CancelScope() as scope:
            running.scope = scope
            running.cancel()
            await trio.sleep(0)
            pytest.fail("the slot's scope was not cancelled")
        assert scope.cancelled_caught and running.cancelled

    trio.run(main)


def test_ask_in_a_fiber_parks_until_the_reply_and_returns_an_immediate_answer_without_parking():
    ready, ended, results = deque(), [], []
    posted = []

    async def caller():
        results.append(await ask(lambda call: posted.append(call), Call(None, None, None, 0.0)))  # type: ignore[arg-type]
        results.append(await ask(lambda call: "shed", Call(None, None, None, 0.0)))  # type: ignore[arg-type]

    fiber = _fiber(caller(), ready, ended)
    [call] = posted
    assert results == [] and call.waiter is fiber  # parked for the reply
    call.on_reply(call, "answer")
    _drain(ready)
    assert results == ["answer", "shed"] and ended == [None]  # the second never parked


def test_ask_in_a_trio_task_parks_until_the_reply_and_returns_an_immediate_answer_without_parking():
    results, posted = [], []

    async def main():
        async with trio.open_nursery() as nursery:
            async def caller():
                results.append(await ask(posted.append, Call(None, None, None, 0.0)))  # type: ignore[arg-type]
                results.append(await ask(lambda call: "shed", Call(None, None, None, 0.0)))  # type: ignore[arg-type]

            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            [call] = posted
            assert results == []
            call.on_reply(call, "answer")

    trio.run(main)
    assert results == ["answer", "shed"]


def test_a_cancelled_caller_abandons_its_call_and_a_late_reply_goes_nowhere():
    posted, after = [], []

    async def main():
        async with trio.open_nursery() as nursery:
            cancel = trio.CancelScope()

            async def caller():
                with cancel:
                    await ask(posted.append, Call(None, None, None, 0.0))  # type: ignore[arg-type]
                after.append("caller went on")
                await trio.sleep_forever()  # a late reply must not reschedule it from here

            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            [call] = posted
            cancel.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert after == ["caller went on"]
            assert call.cancelled and call.on_reply is discard_reply  # the work done for it stops
            call.on_reply(call, "late answer")  # nobody to wake: no error
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    trio.run(main)
