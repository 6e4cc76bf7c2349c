"""The benchmark model in plain SimPy: the speed bar for our engine, measured in the same run.

The model ("seed chain"): an open Poisson stream (``rate`` per second) of top-level requests into
``gateway``. Each service (gateway, auth, app) has ``servers`` concurrency slots with a FIFO queue.
A request holds a gateway slot for its whole life: it works exp(``hop_mean``) in the gateway, then
calls auth (take an auth slot, work exp(``hop_mean``), release), then app (likewise), and only then
releases the gateway slot. A call to a bound service waits inside the caller, keeping the caller's
slot, as Workers service bindings do. Each top-level request's end-to-end latency is recorded.

It is written the idiomatic SimPy way (a process per request, a ``simpy.Resource`` per service,
``env.timeout`` per hop) so that it measures what a modeller gets from SimPy without tuning.
``benchmarks/virtual_throughput.py`` runs it alongside our engine on ``benchmarks/chain.toml``
(the same model) and compares simulated top-level requests per wall-clock second; the mean
latencies must agree, or the two are not running the same model.

    python benchmarks/simpy_chain.py [--rate 2000] [--seconds 10] [--servers 8] [--hop-mean 0.001]
"""

from __future__ import annotations

import argparse
import random
import time

import simpy


def run_simpy_chain(
    *,
    rate: float = 2000.0,
    sim_seconds: float = 10.0,
    servers: int = 8,
    hop_mean: float = 0.001,
    seed: int = 1,
) -> dict:
    """Run the chain for ``sim_seconds`` of simulated time; counts requests finished by then."""
    rng = random.Random(seed)
    env = simpy.Environment()
    gateway, auth, app = (simpy.Resource(env, capacity=servers) for _ in range(3))
    hop_rate = 1.0 / hop_mean
    latencies: list[float] = []

    def call(resource: simpy.Resource):
        with resource.request() as slot:
            yield slot
            yield env.timeout(rng.expovariate(hop_rate))

    def request():
        start = env.now
        with gateway.request() as slot:
            yield slot
            yield env.timeout(rng.expovariate(hop_rate))
            yield from call(auth)
            yield from call(app)
        latencies.append(env.now - start)

    def arrivals():
        while True:
            yield env.timeout(rng.expovariate(rate))
            env.process(request())

    env.process(arrivals())
    started = time.perf_counter()
    env.run(until=sim_seconds)
    wall = time.perf_counter() - started
    return summarise(latencies, wall)


def summarise(latencies: list[float], wall: float) -> dict:
    """The figures every chain baseline returns, so the benchmark compares like with like."""
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "completed": n,
        "mean_latency_s": sum(ordered) / n if n else float("nan"),
        "p99_latency_s": ordered[min(n - 1, int(0.99 * n))] if n else float("nan"),
        "wall_s": wall,
        "sim_req_per_wall_s": n / wall,
    }


def cli(run, description: str) -> None:
    """Run one chain baseline from the command line with the shared knobs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=2000.0, help="top-level arrivals per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds")
    parser.add_argument("--servers", type=int, default=8, help="slots per service")
    parser.add_argument("--hop-mean", type=float, default=0.001, help="mean service time per hop (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(run(rate=args.rate, sim_seconds=args.seconds, servers=args.servers, hop_mean=args.hop_mean, seed=args.seed))


if __name__ == "__main__":
    cli(run_simpy_chain, __doc__.splitlines()[0])
