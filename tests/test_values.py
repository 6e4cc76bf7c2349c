"""Decoding a scenario yields typed values, and a bad one fails with the path of its field."""

from __future__ import annotations

import msgspec
import pytest

from edge.platform.distributions import Const, Exponential
from edge.platform.routes import RoutePattern, RouteTable
from edge.scenario.schema import threshold_rules
from edge.scenario.values import ArrivalProcess, Duration, Gate, Ratio, ScaledDistribution, dec_hook, enc_hook
from test_config import GOOD, error, load

ROLLOUT = """
[services.rollout]
steps = [1, 50]
interval = "2m"
gates = ["error ratio < 1%", "p99 latency < 50ms"]
"""


def test_values_are_typed_and_keep_what_the_file_said(tmp_path):
    toml = GOOD.replace('model = { cpu = "1ms" }', 'model = { cpu = "exp(1ms)", errors = "5%", size = "2KiB" }', 1)
    toml = toml.replace('"poisson(10/s)"', '"constant(10/s)"\nstages = [{ duration = "1m30s", rate = "2.5k/s" }]')
    toml += '\n[scenario]\nduration = "250ms"\n'
    spec = load(tmp_path, toml).spec
    model = spec.services[1].environments["production"].model
    assert model is not None
    assert isinstance(model.cpu.distribution, Exponential) and model.cpu.distribution.mean == pytest.approx(0.001)
    assert model.errors.fraction == pytest.approx(0.05) and str(model.errors) == "5%"
    assert model.size.distribution == Const(2048, "size")
    assert spec.scenario.duration.seconds == 0.25 and str(spec.scenario.duration) == "250ms"
    traffic = spec.traffic[0]
    assert (traffic.arrivals.kind, traffic.arrivals.rate) == ("constant", 10.0)
    assert traffic.stages[0].duration.seconds == 90 and traffic.stages[0].rate.per_second == 2500
    assert spec.services[0].routes == [RoutePattern.parse("example.com/*")]
    binding = spec.services[0].bindings["APP"]
    assert (binding.service, binding.environment) == ("app", None)


def test_a_bare_number_stays_a_number_when_echoed(tmp_path):
    spec = load(tmp_path, GOOD.replace('model = { cpu = "1ms" }', "model = { cpu = 0.002, errors = 0 }", 1)).spec
    model = spec.services[1].environments["production"].model
    assert str(model.cpu) == "0.002" and model.cpu.distribution == Const(0.002)
    assert str(model.errors) == "0" and model.errors.fraction == 0


@pytest.mark.parametrize("errors, fraction", [("0", 0.0), (0, 0.0), (1, 1.0), ("100%", 1.0), ("0%", 0.0), (0.999999, 0.999999)])
def test_ratio_accepts_0_to_1_inclusive(tmp_path, errors, fraction):
    value = f'"{errors}"' if isinstance(errors, str) else errors
    spec = load(tmp_path, GOOD.replace('model = { cpu = "1ms" }', f"model = {{ errors = {value} }}", 1)).spec
    assert spec.services[1].environments["production"].model.errors.fraction == fraction


@pytest.mark.parametrize("errors, expected", [(1.000001, "more than 100%"), ('"100.1%"', "more than 100%"), ('"-1%"', "non-negative"), ("true", "ratio")])
def test_ratio_just_over_1_or_negative_names_its_path(tmp_path, errors, expected):
    exc = error(tmp_path, GOOD.replace('model = { cpu = "1ms" }', f"model = {{ errors = {errors} }}", 1))
    assert exc.path == "services[1].environments.production.model.errors"
    assert expected in exc.expected


@pytest.mark.parametrize(
    "toml, path, expected",
    [
        ('\n[scenario]\nduration = "-1s"\n', "scenario.duration", "non-negative duration"),
        ('\n[scenario]\ncpu_limit = -0.001\n', "scenario.cpu_limit", "non-negative duration"),
        ('\n[scenario]\ndrain = "30"\n', "scenario.drain", "a duration like"),
        ('\n[[timeline]]\nat = "-5ms"\naction = "cold"\ntarget = "app@canary"\n', "timeline[0].at", "non-negative duration"),
    ],
)
def test_negative_or_unitless_durations_name_their_path(tmp_path, toml, path, expected):
    exc = error(tmp_path, GOOD + toml)
    assert exc.path == path and expected in exc.expected, str(exc)


def test_zero_durations_are_accepted_where_allowed_and_not_where_positive_is_needed(tmp_path):
    assert load(tmp_path, GOOD + '\n[scenario]\ndrain = "0"\n').spec.scenario.drain.seconds == 0
    exc = error(tmp_path, GOOD.replace('arrivals = "poisson(10/s)"', 'arrivals = "poisson(10/s)"\ntimeout = "0s"'))
    assert exc.path == "traffic[0].timeout" and "positive duration, got '0s'" in exc.expected
    assert load(tmp_path, GOOD.replace('arrivals = "poisson(10/s)"', 'arrivals = "poisson(10/s)"\ntimeout = "1ns"')).spec.traffic[0].timeout.seconds == 1e-9


@pytest.mark.parametrize(
    "old, new, path, expected",
    [
        ('"poisson(10/s)"', '"poisson(10/s)"\nstages = [{ duration = "1m", rate = "-5/s" }]', "traffic[0].stages[0].rate", "non-negative rate"),
        ('"poisson(10/s)"', '"poisson(10/s)"\nstages = [{ duration = "1m", rate = "5/d" }]', "traffic[0].stages[0].rate", "a rate like"),
        ('model = { cpu = "1ms" }', 'model = { size = "2 parsecs" }', "services[1].environments.production.model.size", "a size like"),
        ('model = { cpu = "1ms" }', 'model = { latency = "exp(-1ms)" }', "services[1].environments.production.model.latency", "non-negative"),
        ('url = "https://example.com/"', 'url = "https://example.com/", method = "POST", body_size = "exp(2 KB)"', "traffic[0].requests[0].body_size", "size"),
        ('"poisson(10/s)"', '"poisson(10/s)"\nthink = "exq(1s)"', "traffic[0].think", "expected"),
        ('name = "app"', 'name = "app"\ncold_start = "lognormal(p50=2ms)"', "services[1].cold_start", "lognormal"),
    ],
)
def test_rates_sizes_and_distributions_name_their_path(tmp_path, old, new, path, expected):
    exc = error(tmp_path, GOOD.replace(old, new, 1))
    assert exc.path == path and expected in exc.expected, str(exc)


@pytest.mark.parametrize(
    "route, expected",
    [
        ("example.com/*/x*", "'*' only at the end of the path"),
        ("exa*mple.com/*", "only as a leading '*.'"),
        ("example.com", 'a route like "example.com/*"'),
        ("/*", 'a route like "example.com/*"'),
    ],
)
def test_a_bad_route_pattern_fails_at_load_with_its_path(tmp_path, route, expected):
    exc = error(tmp_path, GOOD.replace('routes = ["example.com/*"]', f'routes = ["example.com/*", "{route}"]'))
    assert exc.path == "services[0].routes[1]" and expected in exc.expected, str(exc)


def test_route_patterns_match_most_specific_first():
    table: RouteTable[str] = RouteTable()
    for pattern, target in (("*.example.com/*", "wild"), ("api.example.com/v1/*", "v1"), ("https://api.example.com/*", "api")):
        table.add(RoutePattern.parse(pattern), target)
    assert table.match("API.example.com", "/v1/x") == "v1"
    assert table.match("api.example.com", "/v2") == "api"
    assert table.match("example.com", "/") == "wild"  # "*." covers the bare domain too
    assert table.match("example.org", "/") is None


def test_thresholds_are_parsed_at_load_with_their_path(tmp_path):
    spec = load(tmp_path, 'thresholds = ["p99 latency < 200ms", { threshold = "errors == 0", delay = "5s" }]\n' + GOOD).spec
    rules = threshold_rules(spec)
    assert [(r.threshold.metric, r.threshold.value, r.delay.seconds) for r in rules] == [("latency", 0.2, 0.0), ("errors", 0.0, 5.0)]
    exc = error(tmp_path, 'thresholds = ["latency < 200ms"]\n' + GOOD)
    assert exc.path == "thresholds[0]" and "needs a statistic" in exc.expected
    exc = error(tmp_path, 'thresholds = [{ threshold = "p99 latency < 2fortnights" }]\n' + GOOD)
    assert exc.path == "thresholds[0].threshold" and "duration" in exc.expected


def test_gates_are_parsed_at_load(tmp_path):
    rollout = load(tmp_path, GOOD + ROLLOUT).spec.services[1].rollout
    assert [(g.metric, g.stat, g.value) for g in rollout.gates] == [("error ratio", None, 0.01), ("latency", "p99", 0.05)]
    exc = error(tmp_path, GOOD + ROLLOUT.replace('"p99 latency < 50ms"', '"mean latency < 50ms"'))
    assert exc.path == "services[1].rollout.gates[1]" and "expected a gate on" in exc.expected


@pytest.mark.parametrize("status, ok", [(199, False), (200, True), (599, True), (600, False)])
def test_model_error_status_is_one_a_response_can_have(tmp_path, status, ok):
    toml = GOOD.replace('model = { cpu = "1ms" }', f'model = {{ cpu = "1ms", error_status = {status} }}', 1)
    if ok:
        load(tmp_path, toml)
    else:
        exc = error(tmp_path, toml)
        assert exc.path == "services[1].environments.production.model.error_status" and "200..599" in exc.expected


@pytest.mark.parametrize(
    "request_, path, expected",
    [
        ('method = "GE T"', "traffic[0].requests[0].method", "invalid method"),
        ('headers = { "x y" = "1" }', "traffic[0].requests[0].headers.x y", "invalid header name"),
        ('headers = { x = "a\\nb" }', "traffic[0].requests[0].headers.x", "CR, LF"),
    ],
)
def test_what_a_request_refuses_fails_at_load(tmp_path, request_, path, expected):
    exc = error(tmp_path, GOOD.replace('url = "https://example.com/"', f'url = "https://example.com/", {request_}'))
    assert exc.path == path and expected in exc.expected, str(exc)


def test_header_secret_references_are_typed(tmp_path):
    toml = GOOD.replace('name = "app"', 'name = "app"\nsecrets = { TOKEN = "s3cret" }')
    toml = toml.replace('url = "https://example.com/"', 'url = "https://example.com/", headers = { t = "secret:app.TOKEN", u = "plain" }')
    loaded = load(tmp_path, toml)
    headers = loaded.spec.traffic[0].requests[0].headers
    assert headers["t"].secret == ("app", "TOKEN") and headers["u"].secret is None
    assert loaded.resolved.secret(headers["t"].secret) == "s3cret"


def test_decode_hook_rejects_what_it_does_not_know_and_encoding_gives_the_text_back():
    with pytest.raises(NotImplementedError):
        dec_hook(complex, "1j")
    values = [Duration("1m30s"), Ratio(0.5), ArrivalProcess("poisson(5/s)"), Gate.parse(" p99 latency < 1ms ")]
    assert msgspec.to_builtins(values, enc_hook=enc_hook) == ["1m30s", 0.5, "poisson(5/s)", "p99 latency < 1ms"]
    assert [dec_hook(type(v), enc_hook(v)) for v in values] == values


@pytest.mark.parametrize(
    "raw, factor",
    [("x1", 1.0), ("x1.5", 1.5), ("x 3", 3.0), ("x0.001", 0.001), ("x1000", 1000.0), ("x1e3", 1000.0)],
)
def test_a_factor_is_a_positive_number_up_to_the_limit(raw, factor):
    value = ScaledDistribution(raw)
    assert (value.factor, value.distribution) == (factor, None)
    assert value.applied_to(Exponential(0.002)) == Exponential(0.002 * factor)


@pytest.mark.parametrize("raw", ["x0", "x-1", "x1000.001", "x1e309", "xinf", "xnan", "x", "xfast", "x-0"])
def test_a_factor_outside_the_limits_is_refused(raw):
    with pytest.raises(ValueError, match=r'"xN" with 0 < N <= 1000'):
        ScaledDistribution(raw)


def test_a_scaled_distribution_may_be_written_out():
    value = ScaledDistribution("lognormal(p50=2ms, p99=15ms)")
    assert value.factor is None and value.applied_to(Exponential(1.0)) == value.distribution
    assert str(value.distribution) == "lognormal(p50=2ms, p99=15ms)"
