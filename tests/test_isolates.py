"""Warm isolates: keep_warm is the TTL of a bounded cache (max_isolates), evictions counted by reason."""

from __future__ import annotations

import pytest
from conftest import send
from prometheus_client import generate_latest

from actors.isolates import WarmIsolates
from edge import cli
from edge.metrics.exposition import registry_for
from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey
from scenario_builder import compose, service, traffic, write


def api(timeline: list[dict] | tuple[()] = (), groups: list[dict] | tuple[()] = (), **fields: object) -> str:
    """api: cold starts of 50 ms, isolates warm for 1 s after their last call, ``fields`` besides."""
    table = service("api", routes=["api.example.com/*"], model={"latency": "0s"}, cold_start="50ms", keep_warm="1s", concurrency=16, **fields)
    return compose(table, traffic=groups, timeline=timeline)


# No model latency: a cold call ends at exactly 0.05 s, so its isolate is warm until exactly 1.05 s.
IDLE_FROM = 0.05
KEEP_WARM = 1.0


def run(make_scenario, arrivals: list[float], **fields: object):
    loaded = make_scenario(api(**fields))
    latencies: dict[float, list[float]] = {}

    def submit(topology, front, clock):
        for at in arrivals:
            clock.call_later(at, lambda at=at: front.submit(
                Request("https://api.example.com/"), at, lambda r, at=at: latencies.setdefault(at, []).append(clock.now() - at)))

    _, result = send(loaded, [], duration=max(arrivals), setup=submit)
    stats = result.metrics.environments[EnvironmentKey("api", "production")]
    return latencies, sum(stats.cold_starts.values()), stats.isolate_evictions()


@pytest.mark.parametrize(
    "gap, cold, expired",
    [(-1e-9, False, 0), (0.0, True, 1), (1e-9, True, 1)],
    ids=["just-under-keep-warm", "exactly-keep-warm", "just-over-keep-warm"],
)
def test_an_isolate_idle_for_keep_warm_is_gone_and_counted_as_expired(make_scenario, gap, cold, expired):
    second = IDLE_FROM + KEEP_WARM + gap
    latencies, cold_starts, evicted = run(make_scenario, [0.0, second])
    assert latencies[second] == pytest.approx([0.05 if cold else 0.0])
    assert cold_starts == 1 + cold
    assert evicted == {"capacity": 0, "expired": expired}


@pytest.mark.parametrize("calls, evicted", [(2, 0), (3, 1)], ids=["N-isolates", "N+1-isolates"])
def test_one_idle_isolate_more_than_max_isolates_evicts_one_and_costs_a_cold_start(make_scenario, calls, evicted):
    # Two bursts of concurrent calls, 0.5 s apart (well within keep_warm): only the isolates the
    # cache kept serve the second burst warm.
    latencies, cold_starts, evictions = run(make_scenario, [0.0] * calls + [0.5] * calls, max_isolates=2)
    assert evictions == {"capacity": 2 * evicted, "expired": 0}  # one as each burst ends
    assert cold_starts == calls + evicted
    assert sorted(latencies[0.5]) == pytest.approx([0.0] * (calls - evicted) + [0.05] * evicted)


def test_without_max_isolates_every_slot_keeps_its_isolate(make_scenario):
    _, cold_starts, evictions = run(make_scenario, [0.0] * 16 + [0.5] * 16)
    assert (cold_starts, evictions) == (16, {"capacity": 0, "expired": 0})


def test_evictions_are_exported_by_reason(make_scenario):
    loaded = make_scenario(api(max_isolates=1))

    def submit(topology, front, clock):
        for at in (0.0, 0.0, 3.0):
            clock.call_later(at, lambda: front.submit(Request("https://api.example.com/"), clock.now(), lambda r: None))

    _, result = send(loaded, [], duration=3.0, setup=submit)
    text = generate_latest(registry_for(result.metrics)).decode()
    assert 'edge_isolate_evictions_total{environment="production",reason="capacity",service="api"} 1.0' in text
    assert 'edge_isolate_evictions_total{environment="production",reason="expired",service="api"} 1.0' in text


def test_a_call_takes_the_most_recently_used_isolate_and_the_least_recently_used_is_evicted():
    now = [0.0]
    isolates = WarmIsolates(2, 10.0, lambda: now[0])
    for now[0] in (0.0, 1.0, 2.0):
        isolates.put_back()
    assert isolates.evicted == {"capacity": 1, "expired": 0} and len(isolates) == 2
    now[0] = 11.5  # the one idle since 1.0 has expired; the one since 2.0 (kept over the one since 0.0) has not
    assert isolates.take()
    assert isolates.evictions() == {"capacity": 1, "expired": 1}

    fresh = WarmIsolates(4, 10.0, lambda: now[0])
    for now[0] in (0.0, 5.0):
        fresh.put_back()
    now[0] = 6.0
    assert fresh.take()  # the one idle since 5.0: the one since 0.0 is left to go cold
    now[0] = 10.5
    assert not fresh.take()
    assert fresh.evictions() == {"capacity": 0, "expired": 1}


def test_a_cold_timeline_event_drops_every_isolate_without_counting_an_eviction(make_scenario):
    loaded = make_scenario(api(timeline=[{"at": "1s", "action": "cold", "target": "api@production"}]))
    latencies: list[float] = []

    def submit(topology, front, clock):
        for at in (0.0, 1.5):
            clock.call_later(at, lambda at=at: front.submit(Request("https://api.example.com/"), at, lambda r, at=at: latencies.append(clock.now() - at)))

    _, result = send(loaded, [], duration=1.5, setup=submit)
    stats = result.metrics.environments[EnvironmentKey("api", "production")]
    assert latencies == pytest.approx([0.05, 0.05])
    assert stats.isolate_evictions() == {"capacity": 0, "expired": 0}


@pytest.mark.parametrize(
    "fields, path, expected",
    [
        ({"max_isolates": 0}, "services[0].max_isolates", "expected at least 1 isolate, got 0"),
        ({"environments": {"production": {"max_isolates": -1}}}, "services[0].environments.production.max_isolates", "at least 1"),
    ],
)
def test_max_isolates_below_one_is_refused_with_its_path(tmp_path, capsys, fields, path, expected):
    scenario = write(tmp_path, api(groups=[traffic(None, "https://api.example.com/")], **fields), file="s.toml")
    assert cli.main(["check", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert f"{scenario}: {path}" in err and expected in err, err


def test_keys_of_evicted_isolates_do_not_pile_up():
    """Each eviction leaves a key on the stack of idle keys, under the live ones; they are pruned,
    so a long live run's memory does not grow with its evictions."""
    isolates = WarmIsolates(2, 300.0, lambda: 0.0)
    for _ in range(10_000):
        isolates.put_back()  # two calls end, one starts: one isolate more than the capacity each time
        isolates.put_back()
        isolates.take()
    assert isolates.evictions()["capacity"] == 9_999
    assert len(isolates._idle) <= 2 * 2 + 16 + 1
