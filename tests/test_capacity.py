"""Finite cores, cold starts, and the supervisor keeping actors alive."""

from __future__ import annotations

import pytest
import trio
from conftest import send
from scenario_builder import compose, service

from actors.supervisor import Supervisor
from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey


APP = """
from edge.platform.fetch import Response
async def fetch(request, env, ctx):
    await ctx.cpu("10ms")
    return Response("ok")
"""


@pytest.mark.parametrize("cores, expected", [(1, [0.010, 0.020, 0.030]), (2, [0.010, 0.010, 0.020]), (3, [0.010] * 3)])
def test_cpu_work_queues_for_the_nodes_cores(make_scenario, cores, expected):
    loaded = make_scenario(compose(service(routes=["example.com/*"], worker="app.py"), cores=cores), {"app.py": APP})
    latencies: list[float] = []

    def record(topology, front, clock):
        for _ in range(3):
            front.submit(Request("https://example.com/"), 0.0, lambda r: latencies.append(clock.now()))

    _, result = send(loaded, [], setup=record)
    assert sorted(latencies) == pytest.approx(expected)
    assert result.topology.cores.busy_seconds == pytest.approx(0.030)


def test_cold_start_paid_after_keep_warm_and_counted(make_scenario):
    loaded = make_scenario(compose(service(routes=["example.com/*"], model={"latency": "1ms"}, cold_start="50ms", keep_warm="1s", version=7)))
    done: list[float] = []

    def record(topology, front, clock):
        for at in (0.0, 0.5, 3.0):
            clock.call_later(at, lambda at=at: front.submit(Request("https://example.com/"), at, lambda r, at=at: done.append(clock.now() - at)))

    _, result = send(loaded, [], duration=3.0, setup=record)
    assert done == pytest.approx([0.051, 0.001, 0.051])
    assert result.metrics.environments[EnvironmentKey("app", "production")].cold_starts == {"7": 2}


def test_supervisor_restarts_a_crashed_actor_then_gives_up():
    class Flaky:
        runs = 0

        async def run(self):
            self.runs += 1
            raise RuntimeError("actor loop bug")

    flaky = Flaky()

    async def main():
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, max_restarts=2)
            supervisor.start("flaky", flaky)

    with pytest.raises(BaseExceptionGroup) as info:
        trio.run(main)
    assert info.group_contains(RuntimeError, match="actor loop bug")
    assert flaky.runs == 3  # the first run and two restarts
