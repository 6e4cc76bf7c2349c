"""Queueing theory as the oracle: one environment with c slots is an M/M/c queue (Erlang C)."""

from __future__ import annotations

import math

from edge.engine.simulate import simulate
from edge.scenario.values import EnvironmentKey
from scenario_builder import compose, service, traffic


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue of M/M/c: C(c, a) / (c*mu - lambda), with a = lambda / mu."""
    a = arrival_rate / service_rate
    rho = a / servers
    assert rho < 1
    head = sum(a**k / math.factorial(k) for k in range(servers))
    tail = a**servers / math.factorial(servers) / (1 - rho)
    probability_of_waiting = tail / (head + tail)
    return probability_of_waiting / (servers * service_rate - arrival_rate)


def mmc(duration: int, rate: float, mean_ms: float, servers: int) -> str:
    """An M/M/c queue: Poisson arrivals at ``rate``, exponential service of ``mean_ms``, ``servers`` slots, no refusals."""
    queue = service("queue", routes=["example.com/*"], model={"latency": f"exp({mean_ms}ms)"}, concurrency=servers, mailbox=1000000)
    return compose(queue, traffic=[traffic(f"poisson({rate}/s)", "https://example.com/")], duration=f"{duration}s")


def test_mmc_mean_wait_matches_erlang_c(make_scenario):
    servers, rate, mean_ms = 4, 300.0, 10.0  # utilisation 0.75
    duration = 1500
    loaded = make_scenario(mmc(duration, rate, mean_ms, servers))
    result = simulate(loaded, seed=11)
    stats = result.metrics.environments[EnvironmentKey("queue", "production")]
    expected_wait = erlang_c_wait(rate, 1000 / mean_ms, servers)
    assert stats.queue_wait.count > 0.97 * rate * duration
    assert abs(stats.queue_wait.mean - expected_wait) / expected_wait < 0.04, (stats.queue_wait.mean, expected_wait)
    expected_response = expected_wait + mean_ms / 1000
    assert abs(stats.latency.mean - expected_response) / expected_response < 0.02
