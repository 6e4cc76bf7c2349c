"""Shared CPU on its own (``edge.platform.cpu``): a request's budget at its limit, the node's
cores handed over in line, and measured CPU charged once however calls nest."""

from __future__ import annotations

import math
import time
from collections import deque

import pytest
import trio
import trio.testing
from conftest import send, text

from edge.platform import fibers
from edge.platform.clock import VirtualClock
from edge.platform.cpu import CorePool, CpuAccount, CpuLimitExceeded, InvocationLimitExceeded, metered
from edge.platform.fetch import Request
from edge.report.build import build_report

LIMIT = 0.010


# -- a request's budget -------------------------------------------------------------------------------
@pytest.mark.parametrize("asked, exceeded", [(LIMIT, False), (math.nextafter(LIMIT, 0), False), (math.nextafter(LIMIT, 1), True)],
                         ids=["exactly the budget", "just under", "just over"])
def test_a_budget_spent_exactly_is_not_exceeded(asked, exceeded):
    account = CpuAccount(LIMIT, 32)
    granted = account.charge(asked, "app@production")
    assert account.exceeded is exceeded and account.exceeded_at == ("app@production" if exceeded else None)
    assert granted == min(asked, LIMIT) and account.used == granted  # never charged past the budget


def test_a_budget_spent_in_steps_is_exceeded_only_past_its_sum():
    account = CpuAccount(1.0, 32)  # binary fractions: the sums are exact
    assert account.charge(0.25, "a") == 0.25 and account.charge(0.75, "b") == 0.75
    assert not account.exceeded and account.used == 1.0
    assert account.charge(0.5, "c") == 0.0  # nothing left: granted nothing, and the step that asked is named
    assert (account.exceeded_at, account.used) == ("c", 1.0)


def test_a_spent_budget_raises_at_once_with_what_was_used():
    account = CpuAccount(LIMIT, 32)
    account.charge(0.004, "a")
    account.charge(0.007, "b")
    with pytest.raises(CpuLimitExceeded) as raised:
        account.charge(0.001, "c")
    assert (raised.value.used, raised.value.limit) == (LIMIT, LIMIT) and account.exceeded_at == "b"
    assert str(raised.value) == "exceeded CPU time limit: used 10.000ms of 10.000ms"


def test_the_limits_errors_say_what_was_crossed():
    error = CpuLimitExceeded(0.0125, 0.05)
    assert str(error) == "exceeded CPU time limit: used 12.500ms of 50.000ms" and (error.used, error.limit) == (0.0125, 0.05)
    error = InvocationLimitExceeded(32)
    assert str(error) == "too many service binding invocations in one request (limit 32): is a worker calling itself?"
    assert error.limit == 32


ONE = """
[scenario]
cpu_limit = "10ms"

[[services]]
name = "app"
routes = ["example.com/*"]
worker = "app.py"
"""
BURNER = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    await ctx.cpu(float(request.headers.get("x-cpu")))
    return Response("done")
"""


@pytest.mark.parametrize("asked, status", [(LIMIT, 200), (math.nextafter(LIMIT, 0), 200), (math.nextafter(LIMIT, 1), 503)],
                         ids=["exactly the budget", "just under", "just over"])
def test_a_worker_spending_exactly_its_cpu_budget_answers(make_scenario, asked, status):
    loaded = make_scenario(ONE, {"app.py": BURNER})
    [response], result = send(loaded, [Request("https://example.com/", headers={"x-cpu": repr(asked)})])
    assert response.status == status
    assert result.metrics.clients.cpu_limit_exceeded == (status == 503)
    if status == 503:
        assert text(response) == "error code: 1102"


# -- the node's cores ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cores", [0, 1])
def test_a_node_has_at_least_one_core(cores):
    if cores:
        assert CorePool(cores, VirtualClock()).cores == 1
    else:
        with pytest.raises(ValueError, match="^a node needs at least one core, got 0$"):
            CorePool(cores, VirtualClock())


def test_released_cores_go_back_to_the_pool_one_each():
    pool = CorePool(2, VirtualClock())
    assert pool.take() and pool.take() and not pool.take()
    pool.release(0.5)
    pool.release(0.25)
    assert [pool.take(), pool.take(), pool.take()] == [True, True, False]  # both back, and no more
    assert pool.busy_seconds == 0.75


def test_the_report_shows_the_nodes_cores(make_scenario):
    loaded = make_scenario(ONE.replace('cpu_limit = "10ms"', "cores = 3"), {"app.py": BURNER})
    _, result = send(loaded, [Request("https://example.com/", headers={"x-cpu": "0.001"})])
    assert build_report(result).node.cores == 3


async def test_a_task_waiting_for_a_core_is_handed_the_next_one_released():
    pool = CorePool(1, VirtualClock())
    assert pool.take()
    got = []

    async def waiter(name):
        await pool.queue()
        got.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "second")
        await trio.testing.wait_all_tasks_blocked()
        pool.release(0.1)  # handed over: the pool stays empty
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["first"] and not pool.take()
        pool.release(0.1)
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["first", "second"] and not pool.take()
    pool.release(0.1)
    assert pool.take()


async def test_a_task_cancelled_while_waiting_for_a_core_leaves_the_line():
    pool = CorePool(1, VirtualClock())
    assert pool.take()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.queue)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    pool.release(0.1)  # nobody in line: the core goes back to the pool
    assert pool.take() and not pool.take()


def test_a_fiber_closed_while_waiting_for_a_core_leaves_the_line():
    pool = CorePool(1, VirtualClock())
    assert pool.take()
    ended = []
    fiber = fibers.Fiber(pool.queue(), deque(), lambda f, error: ended.append(error))
    fibers.step(fiber, None)  # parked in line
    fiber.close()
    assert ended == []
    pool.release(0.1)
    assert pool.take() and not pool.take()


# -- measured CPU (live mode, measure_cpu) -----------------------------------------------------------
class Meter:
    def __init__(self) -> None:
        self.charged: list[float] = []

    def left(self) -> float:
        return 1.0

    def charge(self, seconds: float) -> None:
        self.charged.append(seconds)


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_of_a_call_run_inside_another_is_charged_once_to_the_inner_call():
    """A bound worker run inline is a step inside its caller's step: its CPU is its own, not the caller's too."""
    outer, inner = Meter(), Meter()

    async def callee():
        _burn(0.03)

    async def caller(inner_meter):
        _burn(0.03)
        await metered(callee(), inner_meter)
        _burn(0.03)

    async def main():
        await metered(caller(Meter()), Meter())  # something charged before in this run: totals carry over
        started = time.thread_time()
        await metered(caller(inner), outer)
        return time.thread_time() - started

    burnt = trio.run(main)
    assert sum(inner.charged) == pytest.approx(0.03, abs=0.01)
    assert sum(outer.charged) == pytest.approx(0.06, abs=0.01)
    assert sum(outer.charged) + sum(inner.charged) == pytest.approx(burnt, abs=0.005)  # every second counted once
