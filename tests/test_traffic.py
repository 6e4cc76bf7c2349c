"""Traffic models: open arrival profiles (rate, stages, diurnal, bursts), closed users, client
timeouts and dropped arrivals, checked against the counts they must produce."""

from __future__ import annotations

import math

import pytest

from edge.scenario.errors import ConfigError
from edge.scenario.arrivals import Arrivals, Burst, Diurnal, RateProfile
from edge.platform.clock import random_stream
from edge.engine.simulate import simulate
from scenario_builder import compose, service, traffic, write


def scenario(latency: str = "1ms", arrivals: str | None = None, **group: object) -> str:
    """api answering after ``latency``, with room for any load, and one traffic group to it of ``group``'s fields."""
    api = service("api", model={"latency": latency}, concurrency=100000, mailbox=100000)
    return compose(api, traffic=[traffic(arrivals, "https://api.test/", **group)], name="traffic", cores=64)


def run(make_scenario, duration: float, latency: str = "1ms", seed: int = 1, **group: object):
    loaded = make_scenario(scenario(latency, **group))
    return simulate(loaded, seed=seed, duration=duration).metrics


def within_poisson(count: int, expected: float, sds: float = 4.0) -> bool:
    return abs(count - expected) <= sds * math.sqrt(expected)


def test_poisson_rate(make_scenario):
    metrics = run(make_scenario, 60, arrivals="poisson(200/s)")
    assert within_poisson(metrics.clients.requests, 12_000)


def test_constant_rate_is_exact(make_scenario):
    metrics = run(make_scenario, 10, arrivals="constant(50/s)")
    assert metrics.clients.requests in (499, 500)


@pytest.mark.parametrize("kind", ["poisson", "constant"])
def test_stages_ramp_linearly(make_scenario, kind):
    stages = {"arrivals": f"{kind}(0/s)", "stages": [{"duration": "30s", "rate": "400/s"}, {"duration": "30s", "rate": "400/s"}]}
    ramp_only = run(make_scenario, 30, **stages).clients.requests
    whole = run(make_scenario, 60, **stages).clients.requests
    if kind == "poisson":
        assert within_poisson(ramp_only, 6_000)  # half of 400/s over the 30 s ramp
        assert within_poisson(whole, 18_000)
    else:
        assert abs(ramp_only - 6_000) <= 2 and abs(whole - 18_000) <= 2


def test_diurnal_curve_averages_between_trough_and_peak(make_scenario):
    metrics = run(make_scenario, 60, arrivals="poisson(100/s)", diurnal={"period": "60s", "trough": 0.2, "peak": "30s"})
    assert within_poisson(metrics.clients.requests, 100 * 60 * 0.6)  # mean of the curve: (1 + 0.2) / 2


def test_diurnal_profile_peaks_and_troughs_where_asked():
    profile = RateProfile(100, diurnal=Diurnal(period=60, trough=0.2, peak=30))
    assert profile.rate(30) == pytest.approx(100)
    assert profile.rate(0) == pytest.approx(20)
    assert profile.rate(15) == pytest.approx(60)


def test_bursts_multiply_the_rate_while_they_last(make_scenario):
    metrics = run(make_scenario, 60, arrivals="poisson(100/s)", bursts=[{"at": "10s", "duration": "10s", "factor": 5}])
    assert within_poisson(metrics.clients.requests, 100 * 50 + 500 * 10)


def test_thinned_poisson_follows_the_profile_in_each_window():
    profile = RateProfile(0, stages=[(10, 1000)], bursts=[Burst(12, 2, 3.0)])
    arrivals = Arrivals(profile, "poisson", random_stream(5, "test"))
    times, t = [], 0.0
    while (t := arrivals.after(t, 16)) != math.inf:
        times.append(t)
    assert within_poisson(sum(1 for x in times if x < 10), 5_000)
    assert within_poisson(sum(1 for x in times if 10 <= x < 12), 2_000)
    assert within_poisson(sum(1 for x in times if 12 <= x < 14), 6_000)
    assert within_poisson(sum(1 for x in times if 14 <= x < 16), 2_000)


def test_closed_users_follow_littles_law(make_scenario):
    metrics = run(make_scenario, 60, latency="50ms", users=10, think="exp(100ms)")
    expected = 10 / (0.050 + 0.100) * 60  # users / (response + think) per second
    assert abs(metrics.clients.requests - expected) / expected < 0.05
    assert metrics.clients.latency.quantile(0.5) == pytest.approx(0.050, rel=0.02)


def test_closed_users_slow_down_with_the_system(make_scenario):
    fast = run(make_scenario, 30, latency="10ms", users=5, think="100ms").clients.requests
    slow = run(make_scenario, 30, latency="400ms", users=5, think="100ms").clients.requests
    assert fast == pytest.approx(5 / 0.110 * 30, rel=0.02)
    assert slow == pytest.approx(5 / 0.500 * 30, rel=0.03)


def test_client_timeouts_count_as_errors_at_the_timeout(make_scenario):
    metrics = run(make_scenario, 10, latency="2s", arrivals="constant(10/s)", timeout="500ms")
    clients = metrics.clients
    assert clients.timeouts == clients.requests == clients.errors >= 95
    assert clients.latency.max == pytest.approx(0.5)
    assert sum(metrics.timeouts.values()) == clients.timeouts
    assert sum(sum(c) for c in metrics.answers.values()) == 0  # the late answers are not the client's


def test_closed_users_move_on_after_a_timeout(make_scenario):
    metrics = run(make_scenario, 10, latency="1s", users=2, think="0s", timeout="100ms")
    assert metrics.clients.timeouts == metrics.clients.requests == pytest.approx(2 * 10 / 0.1, abs=2)


def test_open_group_drops_arrivals_beyond_max_inflight(make_scenario):
    metrics = run(make_scenario, 20, latency="1s", name="web", arrivals="constant(100/s)", max_inflight=10)
    sent = metrics.clients.requests
    dropped = metrics.groups["web"].dropped
    assert sent + dropped in (1999, 2000)
    assert sent == pytest.approx(10 * 20, abs=12)  # ten outstanding, each for one second


@pytest.mark.parametrize(
    "group, path, expected",
    [
        ({"users": 5, "arrivals": "poisson(1/s)"}, "traffic[0].arrivals", "closed group"),
        ({"users": 0}, "traffic[0].users", "at least one user"),
        ({"users": 3, "think": "exp(1 parsec)"}, "traffic[0].think", "expected"),
        ({"stages": [{"duration": "1m", "rate": "-5/s"}]}, "traffic[0].stages[0].rate", "non-negative rate"),
        ({"stages": [{"duration": "soon", "rate": "5/s"}]}, "traffic[0].stages[0].duration", "duration"),
        ({"diurnal": {"trough": 0}}, "traffic[0].diurnal.trough", "fraction"),
        ({"bursts": [{"at": "1m", "duration": "10s", "factor": -2}]}, "traffic[0].bursts[0].factor", "non-negative"),
        ({"timeout": "0s"}, "traffic[0].timeout", "positive duration"),
        ({"max_inflight": 0}, "traffic[0].max_inflight", "at least 1"),
    ],
)
def test_traffic_errors_name_the_path(make_scenario, group, path, expected):
    with pytest.raises(ConfigError) as error:
        make_scenario(scenario(**group))
    message = str(error.value)
    assert f": {path}: " in message and expected in message, message


def sized(size: str) -> str:
    """POSTs with a body of ``size`` and GETs, half each, to a worker that notes each body's length."""
    requests = [{"method": "POST", "url": "https://api.test/", "body_size": size}, {"method": "GET", "url": "https://api.test/", "weight": 1}]
    return compose(service("api", worker="sizes.py"), traffic=[traffic("constant(100/s)", requests=requests)], name="sized")


SIZES_WORKER = '''
from edge.platform.fetch import Response

SEEN = []

async def fetch(request, env, ctx):
    SEEN.append((request.method, len(await request.bytes())))
    return Response("ok")
'''


@pytest.mark.parametrize("size, mean", [("2KiB", 2048), ("exp(4KiB)", 4096)])
def test_body_size_draws_a_body_per_request(make_scenario, size, mean):
    import sys

    loaded = make_scenario(sized(size), {"sizes.py": SIZES_WORKER})
    modules = []

    def setup(topology, front, clock):  # the run's copy of the worker module, while it is loaded
        modules.extend(module for name, module in sys.modules.items() if name.startswith("edge_worker_sizes_"))

    simulate(loaded, seed=1, duration=20, setup=setup)
    [module] = modules
    seen = module.SEEN
    posted = [n for method, n in seen if method == "POST"]
    assert all(n == 0 for method, n in seen if method == "GET")
    assert len(posted) == pytest.approx(1000, abs=150)
    assert sum(posted) / len(posted) == pytest.approx(mean, rel=0.1)
    assert (len(set(posted)) == 1) == (size == "2KiB")  # a constant size, or one drawn per request


@pytest.mark.parametrize(
    "template, path, expected",
    [
        ({"method": "GET", "url": "https://api.test/", "body_size": "1KiB"}, "body_size", "cannot have a body"),
        ({"method": "POST", "url": "https://api.test/", "body_size": "1 parsec"}, "body_size", "expected"),
        ({"method": "POST", "url": "https://api.test/", "body": "x", "body_size": "1KiB"}, "body_size", "not both"),
    ],
)
def test_bad_body_sizes_name_the_path(make_scenario, template, path, expected):
    with pytest.raises(ConfigError) as raised:
        make_scenario(scenario(requests=[template]))
    assert f"traffic[0].requests[0].{path}" in str(raised.value) and expected in str(raised.value)


def test_one_plan_serves_both_drivers(tmp_path):
    """``plan_traffic`` is what the simulation and ``edge serve --traffic`` both send: each group's
    kind, window and request stream come from it alone."""
    from edge.engine.traffic import plan_traffic
    from edge.scenario.load import load

    app = service("app", routes=["example.com/*"], model={"latency": "1ms"})
    groups = [traffic("poisson(5/s)", "https://example.com/", name="open"),
              traffic(None, "https://example.com/a", name="closed", start="2s", duration="3s", users=4, think="100ms")]
    path = write(tmp_path, compose(app, traffic=groups, name="plans", duration="10s"), file="s.toml")
    spec = load(path)
    open_group, closed = plan_traffic(spec, seed=7)
    assert (open_group.name, open_group.start, open_group.length, open_group.users) == ("open", 0.0, math.inf, None)
    assert open_group.arrivals is not None and open_group.think is None
    assert (closed.name, closed.start, closed.length, closed.users) == ("closed", 2.0, 3.0, 4)
    assert closed.arrivals is None and closed.think is not None
    again = plan_traffic(spec, seed=7)[0]
    assert [open_group.mix.draw(open_group.rng).url for _ in range(3)] == [again.mix.draw(again.rng).url for _ in range(3)]
    assert open_group.arrivals.after(0.0, 10.0) != plan_traffic(spec, seed=8)[0].arrivals.after(0.0, 10.0)
