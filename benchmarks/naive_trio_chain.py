"""The benchmark model written naively in trio: a second reference point, measured in the same run.

Same model as ``benchmarks/simpy_chain.py``: open Poisson arrivals (``rate`` per second) into
``gateway``; each service (gateway, auth, app) has ``servers`` FIFO slots; a request holds its
gateway slot throughout, works exp(``hop_mean``) there, then calls auth and then app (take a slot,
work exp(``hop_mean``), release), and only then releases the gateway slot. End-to-end latency of
each top-level request is recorded.

"Naive" means the obvious trio program on a virtual clock: ``MockClock(autojump_threshold=0)``,
one task per request spawned into a nursery by the arrival loop, a ``trio.Semaphore`` per service
and ``await trio.sleep(...)`` per hop. It shows what plain trio costs per simulated request, as a
floor for our engine (also trio-based) next to SimPy's bar. ``trio.Semaphore`` is FIFO-fair: a
release hands the unit straight to the longest waiter in its ParkingLot (the value stays 0 while
anyone waits, so newcomers cannot barge), like ``simpy.Resource``.

Determinism: the arrival and service draws come from ``random.Random(seed)``; the random order of
trio's scheduler passes (each reverses its batch or not) is seeded too, through edge's fence on
trio's internals (``edge.platform.trio_internals.seed_scheduler``).

    python benchmarks/naive_trio_chain.py [--rate 2000] [--seconds 10] [--servers 8] [--hop-mean 0.001]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout as well
from simpy_chain import cli, summarise  # noqa: E402

from edge.platform.trio_internals import seed_scheduler  # noqa: E402


def run_naive_trio_chain(
    *,
    rate: float = 2000.0,
    sim_seconds: float = 10.0,
    servers: int = 8,
    hop_mean: float = 0.001,
    seed: int = 1,
) -> dict:
    """Run the chain for ``sim_seconds`` of virtual time; counts requests finished by then."""
    rng = random.Random(seed)
    hop_rate = 1.0 / hop_mean
    latencies: list[float] = []

    async def call(service: trio.Semaphore) -> None:
        async with service:
            await trio.sleep(rng.expovariate(hop_rate))

    async def request(gateway, auth, app) -> None:
        start = trio.current_time()
        async with gateway:
            await trio.sleep(rng.expovariate(hop_rate))
            await call(auth)
            await call(app)
        latencies.append(trio.current_time() - start)

    async def main() -> None:
        gateway, auth, app = (trio.Semaphore(servers) for _ in range(3))
        with trio.move_on_at(trio.current_time() + sim_seconds):
            async with trio.open_nursery() as nursery:
                while True:
                    await trio.sleep(rng.expovariate(rate))
                    nursery.start_soon(request, gateway, auth, app)

    seed_scheduler(seed)
    started = time.perf_counter()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    wall = time.perf_counter() - started
    return summarise(latencies, wall)


if __name__ == "__main__":
    cli(run_naive_trio_chain, __doc__.splitlines()[0])
