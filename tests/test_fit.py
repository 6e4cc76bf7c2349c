"""``edge fit``: maximum-likelihood fits recover known parameters, the chooser picks the true family,
binned data is fitted as interval-censored, a sample from no family gets the empirical fit with a
warning, the written text reads back, a log's status, bytes and times are read by replay's readers,
and the scenario written loads. Every sample is drawn from a seeded numpy Generator."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pytest

from edge.fit.families import Bins, FitError, bins_from_buckets, empirical_quantised, fit_binned, fit_raw, quantised
from edge.fit.logs import LogError, parse_rule, read_log, split
from edge.fit.model import error_ratio, fit_arrivals, poisson_rate
from edge.platform.distributions import Empirical, parse_distribution

NGINX = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $request_time'
APACHE = '%h %l %u %t "%r" %>s %b %D'
TRUE = {
    "lognormal": ({"mu": math.log(0.004), "sigma": 0.6}, lambda g, n: np.exp(g.normal(math.log(0.004), 0.6, n))),
    "gamma": ({"shape": 2.5, "scale": 0.001}, lambda g, n: g.gamma(2.5, 0.001, n)),
    "weibull": ({"shape": 1.6, "scale": 0.003}, lambda g, n: 0.003 * g.weibull(1.6, n)),
    "exponential": ({"mean": 0.002}, lambda g, n: g.exponential(0.002, n)),
}


def sample(family: str, n: int, seed: int) -> np.ndarray:
    return TRUE[family][1](np.random.default_rng(seed), n)


@pytest.mark.parametrize("family", TRUE)
def test_each_family_recovers_its_parameters_within_3_standard_errors(family: str) -> None:
    choice = fit_raw(sample(family, 3000, seed=11))
    fit = next(f for f in choice.fits if f.family == family)
    for name, true in TRUE[family][0].items():
        p = fit.parameter(name)
        assert p.se > 0 and abs(p.value - true) < 3 * p.se, (name, p, true)


def test_standard_errors_are_the_closed_form_sandwich_ones_for_the_lognormal() -> None:
    # In (mu, s = log sigma), with l = log x: the information is diagonal, n / sigma^2 and 2n; the
    # scores are (l - mu) / sigma^2 and (l - mu)^2 / sigma^2 - 1. So se(mu) = sigma / sqrt(n) exactly,
    # as the observed information has it, and se(sigma) = sigma * sqrt(sum(score_s^2)) / 2n, which
    # only the information's figure, sigma / sqrt(2n), when the sample's log has a normal's kurtosis.
    xs = sample("lognormal", 5000, seed=3)
    fit = next(f for f in fit_raw(xs).fits if f.family == "lognormal")
    logs = np.log(xs)
    mu, sigma = logs.mean(), logs.std()
    assert (fit.parameter("mu").value, fit.parameter("sigma").value) == (pytest.approx(mu, rel=1e-9), pytest.approx(sigma, rel=1e-9))
    assert fit.parameter("mu").se == pytest.approx(sigma / math.sqrt(5000), rel=1e-5)
    score = (logs - mu) ** 2 / sigma**2 - 1
    assert fit.parameter("sigma").se == pytest.approx(sigma * math.sqrt(np.sum(score**2)) / (2 * 5000), rel=1e-5)
    assert fit.parameter("sigma").se == pytest.approx(sigma / math.sqrt(2 * 5000), rel=0.05)  # the family is right


def test_a_wrong_familys_standard_error_is_the_spread_of_the_data_not_of_the_family() -> None:
    # An exponential fitted to gamma(4) values: its mean is the sample's mean, whose standard error
    # is sd / sqrt(n) (the sandwich's exactly: sqrt(sum((x - m)^2)) / n), half of what the
    # exponential's own information says (m / sqrt(n): an exponential's sd is its mean).
    xs = np.random.default_rng(8).gamma(4.0, 0.25, 4000)
    fit = next(f for f in fit_raw(xs).fits if f.family == "exponential")
    m = xs.mean()
    assert fit.parameter("mean").value == pytest.approx(m, rel=1e-12)
    assert fit.parameter("mean").se == pytest.approx(math.sqrt(np.sum((xs - m) ** 2)) / len(xs), rel=1e-5)
    assert fit.parameter("mean").se < 0.55 * m / math.sqrt(len(xs))


@pytest.mark.parametrize("family", ["lognormal", "gamma", "weibull"])
def test_the_chooser_picks_the_true_family_for_n_large(family: str) -> None:
    choice = fit_raw(sample(family, 20_000, seed=5))
    assert choice.chosen.family == family and choice.warning is None
    assert choice.chosen.test == "KS" and choice.chosen.passes and not choice.binned
    assert [f.aic for f in choice.fits[:-1]] == sorted(f.aic for f in choice.fits[:-1])


def test_exponential_data_is_fitted_by_a_family_that_contains_it() -> None:
    # exponential is gamma's and Weibull's shape 1: AIC may prefer either by a hair; each says shape ~ 1
    choice = fit_raw(sample("exponential", 20_000, seed=5))
    assert choice.chosen.family in ("exponential", "gamma", "weibull") and choice.warning is None
    assert choice.chosen.distribution.mean == pytest.approx(0.002, rel=0.03)


def test_a_sample_from_no_family_gets_the_warning_and_the_empirical_fit() -> None:
    g = np.random.default_rng(2)
    xs = np.concatenate([g.normal(0.001, 0.0001, 3000), g.normal(0.010, 0.0005, 3000)])  # fast hits, slow misses
    choice = fit_raw(xs)
    assert choice.warning is not None and "no family fits" in choice.warning
    assert choice.chosen.family == "empirical"
    assert isinstance(choice.chosen.distribution, Empirical)
    assert choice.chosen.passes  # the knots follow the data: it passes its own KS test
    assert choice.chosen.distribution.quantile(0.25) == pytest.approx(np.quantile(xs, 0.25), rel=0.05)
    assert choice.chosen.distribution.quantile(0.75) == pytest.approx(np.quantile(xs, 0.75), rel=0.05)


@pytest.mark.parametrize("family", TRUE)
def test_the_written_text_reads_back_to_the_distribution_written(family: str) -> None:
    for fit in fit_raw(sample(family, 2000, seed=1)).fits:
        assert str(fit.distribution) == fit.text
        assert parse_distribution(fit.text) == fit.distribution
        assert parse_distribution(str(fit.distribution)) == fit.distribution


def prometheus_buckets(xs: np.ndarray, edges: list[float]) -> Bins:
    return bins_from_buckets(edges, [float((xs <= e).sum()) for e in edges])


EDGES = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf]


@pytest.mark.parametrize("family", ["lognormal", "gamma", "weibull"])
def test_buckets_are_fitted_as_interval_censored(family: str) -> None:
    bins = prometheus_buckets(sample(family, 20_000, seed=8), EDGES)
    choice = fit_binned(bins)
    assert choice.binned and choice.chosen.family == family and choice.chosen.test == "chi-square"
    fit = choice.chosen
    for name, true in TRUE[family][0].items():
        p = fit.parameter(name)
        assert abs(p.value - true) < 3 * p.se, (name, p, true)
    assert fit.df is not None and fit.df > 0 and fit.passes


def test_buckets_from_no_family_give_the_empirical_fit_at_the_edges() -> None:
    g = np.random.default_rng(4)
    xs = np.concatenate([g.normal(0.0007, 0.00005, 5000), g.normal(0.04, 0.002, 5000)])
    choice = fit_binned(prometheus_buckets(xs, EDGES))
    assert choice.warning is not None and choice.chosen.family == "empirical"
    d = choice.chosen.distribution
    assert d.quantile(0.5) == pytest.approx(0.001, rel=0.01)  # half the requests under the 1 ms bucket


def test_buckets_decreasing_after_a_counter_reset_are_not_negative() -> None:
    bins = bins_from_buckets([0.1, 0.2, math.inf], [10, 8, 12])
    assert list(bins.counts) == [10, 0, 2]


def test_a_log_quantised_to_milliseconds_with_zeros_is_binned() -> None:
    xs = np.round(np.exp(np.random.default_rng(6).normal(math.log(0.002), 1.0, 5000)), 3)  # nginx's $request_time: ms, some 0.000
    assert (xs == 0).any()
    bins = quantised(xs)
    assert bins is not None and bins.resolution == pytest.approx(0.001)
    assert bins.lower[0] == 0 and bins.upper[0] == pytest.approx(0.0005)
    assert np.allclose(bins.lower[1:], bins.upper[:-1])  # the bins tile the range
    choice = fit_raw(xs)
    assert choice.binned and choice.chosen.family == "lognormal" and choice.chosen.passes
    mu = choice.chosen.parameter("mu")
    assert abs(mu.value - math.log(0.002)) < 3 * mu.se


@pytest.mark.parametrize(("values", "message"), [([1.0] * 5, "expected at least 10 values"), ([0.5] * 20, "a constant")])
def test_what_cannot_be_fitted(values: list[float], message: str) -> None:
    with pytest.raises(FitError, match=message):
        fit_raw(values)


def test_error_ratio_is_clopper_pearson() -> None:
    none = error_ratio(0, 100)
    assert none.value == 0 and none.low == 0 and none.high == pytest.approx(1 - 0.025 ** (1 / 100), rel=1e-9)
    some = error_ratio(5, 1000)
    assert some.low < 0.005 < some.high


def test_poisson_rate_interval() -> None:
    rate = poisson_rate(100, 10.0)
    assert rate.value == 10 and rate.low == pytest.approx(8.1363, rel=1e-3) and rate.high == pytest.approx(12.1627, rel=1e-3)


def test_arrivals_of_less_than_a_day_have_no_daily_profile() -> None:
    at = np.cumsum(np.random.default_rng(1).exponential(0.2, 5000))
    arrivals = fit_arrivals(at)
    assert arrivals.daily is None and "less than a day" in (arrivals.note or "")
    assert arrivals.rate.low < 5 < arrivals.rate.high
    assert arrivals.dispersion == pytest.approx(1, abs=0.1)


def test_a_daily_profile_is_recovered_from_three_days() -> None:
    # a Poisson process thinned to edge's daily curve: peak 2/s at 14 h, trough 0.3
    g = np.random.default_rng(9)
    candidates = np.cumsum(g.exponential(0.5, int(3 * 86400 * 2.2)))
    candidates = candidates[candidates < 3 * 86400]
    curve = 0.3 + 0.7 * (1 + np.cos(2 * np.pi * (candidates - 14 * 3600) / 86400)) / 2
    at = candidates[g.random(len(candidates)) < curve]
    daily = fit_arrivals(at).daily
    assert daily is not None
    assert daily.trough == pytest.approx(0.3, abs=0.03)
    assert daily.peak == pytest.approx(14 * 3600, abs=1800)
    assert daily.peak_rate == pytest.approx(2.0, rel=0.05)


# --- logs -------------------------------------------------------------------------------------

def write_nginx_log(path: Path, n: int = 3000, seed: int = 1, errors: float = 0.02) -> Path:
    g = np.random.default_rng(seed)
    at = np.cumsum(g.exponential(0.2, n))
    times = np.exp(g.normal(math.log(0.02), 0.7, n))
    sizes = g.exponential(2048, n).round().astype(int)
    status = np.where(g.random(n) < errors, 503, 200)
    paths = np.where(g.random(n) < 0.3, "/api/items?id=3", "/")
    start = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc).timestamp()
    lines = []
    for a, t, s, st, p in zip(at, times, sizes, status, paths):
        stamp = datetime.datetime.fromtimestamp(start + a + t, datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(f'10.0.0.1 - - [{stamp}] "GET {p} HTTP/1.1" {st} {s} {t:.3f}\n')
    path.write_text("".join(lines))
    return path


def test_a_log_is_read_with_its_status_bytes_and_times(tmp_path: Path) -> None:
    log = read_log(str(write_nginx_log(tmp_path / "access.log")), NGINX)
    assert len(log.records) == 3000 and log.format == "nginx log_format"
    assert all(r.time is not None and r.status in (200, 503) and r.bytes is not None for r in log.records)
    assert sum(r.status == 503 for r in log.records) == pytest.approx(60, abs=25)


def test_an_apache_log_with_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "access_log"
    path.write_text('1.2.3.4 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 512 1234\n'
                    '1.2.3.4 - - [01/May/2024:12:00:01 +0000] "GET /a HTTP/1.1" 500 - 2500\n')
    records = read_log(str(path), APACHE).records
    assert [(r.time, r.status, r.bytes) for r in records] == [(0.001234, 200, 512), (0.0025, 500, None)]


def test_services_split_by_rules_the_most_specific_winning(tmp_path: Path) -> None:
    log = read_log(str(write_nginx_log(tmp_path / "access.log")), NGINX)
    groups = split(log.records, [parse_rule("web=*/*"), parse_rule("api=*/api/*")])
    assert len(groups["api"]) + len(groups["web"]) == 3000
    assert all(r.path.startswith("/api/") for r in groups["api"]) and len(groups["api"]) == pytest.approx(900, abs=90)


def test_json_lines_with_a_duration_are_read_with_status_bytes_and_host(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    path.write_text('{"time": 10, "path": "/a?x=1", "duration": 0.012, "status": 200, "bytes": 512, "host": "API.example.com"}\n'
                    '{"time": 11, "path": "/b", "duration": "0.5", "status": "503"}\n'
                    '{"time": 12, "path": "/c", "duration": "fast", "status": "-", "bytes": -1}\n')
    log = read_log(str(path), None)
    assert log.format == "jsonl"
    assert [(r.at, r.host, r.path, r.time, r.status, r.bytes) for r in log.records] == [
        (0.0, "api.example.com", "/a", 0.012, 200, 512), (1.0, None, "/b", 0.5, 503, None), (2.0, None, "/c", None, None, None)]


def test_a_har_is_read_with_entry_times_or_the_sum_of_timings(tmp_path: Path) -> None:
    import json

    def entry(second: int, url: str, **fields: object) -> dict[str, object]:
        return {"startedDateTime": f"2024-05-01T12:00:0{second}Z", "request": {"method": "GET", "url": url, "headers": []}, **fields}

    path = tmp_path / "site.har"
    path.write_text(json.dumps({"log": {"entries": [
        entry(0, "https://www.site.test:8443/a?q", time=120.5, response={"status": 200, "bodySize": 2048}),
        entry(1, "https://cdn.site.test/b", timings={"blocked": -1, "dns": 2, "connect": 10, "ssl": 6, "send": 1, "wait": 30, "receive": 7},
              response={"status": 502, "bodySize": -1}),
        entry(2, "https://cdn.site.test/c"),
    ]}}))
    records = read_log(str(path), None).records
    assert [(r.host, r.path, r.time, r.status, r.bytes) for r in records] == [
        ("www.site.test", "/a", 0.1205, 200, 2048), ("cdn.site.test", "/b", 0.05, 502, None), ("cdn.site.test", "/c", None, None, None)]


def test_hosts_are_read_from_host_or_a_host_header(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('1.2.3.4 [01/May/2024:12:00:00 +0000] "GET /a HTTP/1.1" 200 0.010 Example.COM\n')
    (record,) = read_log(str(path), '$remote_addr [$time_local] "$request" $status $request_time $host').records
    assert record.host == "example.com"
    (record,) = read_log(str(path), '$remote_addr [$time_local] "$request" $status $request_time $http_host').records
    assert record.host == "example.com"
    path.write_text('1.2.3.4 - - [01/May/2024:12:00:00 +0000] "GET /a HTTP/1.1" 200 10 1500 api.test\n')
    (record,) = read_log(str(path), APACHE + " %v").records
    assert (record.host, record.time, record.status, record.bytes) == ("api.test", 0.0015, 200, 10)


@pytest.mark.parametrize("text", ["api", "api=", "=example.com/*", "api=example.com", "api=ex*ample.com/*"])
def test_bad_rules(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_rule(text)


def test_a_log_without_timed_lines_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 10 -\n' * 3)
    with pytest.raises(LogError, match=r"access.log: expected request times .* got none: no line has one"):
        read_log(str(path), NGINX)


@pytest.mark.parametrize(("name", "format", "message"), [
    ("access.log", None, "a Common/Combined Log Format line logs no request time; give the log's own format"),
    ("access.jsonl", None, 'got none: no line has a "duration" (the request time in seconds, as Caddy logs it)'),
    ("access.har", None, "got none: no entry has a time or timings"),
    ("access.log", '$remote_addr [$time_local] "$request" $status', "got none: its format logs no request time"),
    ("missing.log", NGINX, "missing.log: cannot read file: No such file or directory"),
    ("/dev/zero", NGINX, "/dev/zero: expected a regular file, got a character device"),  # never ends: refused before reading
])
def test_logs_that_cannot_be_fitted(tmp_path: Path, name: str, format: str | None, message: str) -> None:
    text = {"access.jsonl": '{"time": 1, "path": "/", "status": 200}\n',
            "access.har": '{"log": {"entries": [{"startedDateTime": "2024-05-01T12:00:00Z", "request": {"method": "GET", '
                          '"url": "https://h.test/", "headers": []}, "time": -1}]}}'}
    if name not in ("missing.log", "/dev/zero"):
        (tmp_path / name).write_text(text.get(name, '10.0.0.1 [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200\n'))
    with pytest.raises(LogError) as info:
        read_log(str(tmp_path / name), format)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_scenario_written_loads_with_its_fitted_model(tmp_path: Path) -> None:
    from edge.fit.command import fit_log, output
    from edge.scenario import load

    path = write_nginx_log(tmp_path / "access.log")
    _, header, fits = fit_log(str(path), NGINX, [parse_rule("api=*/api/*"), parse_rule("web=*/*")])
    for scenario in (True, False):
        text = output(header, fits, scenario=scenario)
        if not scenario:
            text = '[scenario]\nname = "pasted"\n' + text
        loaded = load.loads(text, file="fitted.toml", base_dir=str(tmp_path))
        services = {s.name: s for s in loaded.spec.services}
        assert set(services) == {"api", "web"}
        model = services["api"].model
        assert model is not None and model.error_status == 503
        assert str(model.latency.distribution) == fits[0].latency.chosen.text  # type: ignore[union-attr]
        assert model.latency.distribution.mean == pytest.approx(0.02 * math.exp(0.7**2 / 2), rel=0.1)
        assert [t.arrivals.rate for t in loaded.spec.traffic if t.arrivals is not None]


def test_binned_counts_get_the_sandwich_too() -> None:
    # The same gamma(4) values in fine buckets, as a Prometheus histogram would hold them: each
    # bucket's score counted as many times as it has values. The exponential's mean is about the
    # values' mean, and its standard error about sd / sqrt(n), not the family's m / sqrt(n).
    xs = np.random.default_rng(8).gamma(4.0, 0.25, 4000)
    edges = np.linspace(0.02, 4.0, 200)
    cumulative = [float(np.sum(xs <= edge)) for edge in edges] + [float(len(xs))]
    fit = next(f for f in fit_binned(bins_from_buckets([*edges, math.inf], cumulative)).fits if f.family == "exponential")
    assert fit.parameter("mean").value == pytest.approx(xs.mean(), rel=0.01)
    assert fit.parameter("mean").se == pytest.approx(xs.std() / math.sqrt(len(xs)), rel=0.05)


def test_a_quantised_logs_empirical_distribution_is_where_its_requests_fell() -> None:
    # Request times of a 2 ms service logged to the millisecond (nginx's $request_time): each logged
    # value stands for the millisecond around it. Knots on the values as logged gave 8 knots, 0s up
    # to p5.4 and a mean 16% high; spread over their intervals, the quantiles and the mean are the
    # true ones, and the test is the chi-square of the families on such a log, not a KS that ties
    # make meaningless.
    true = np.random.default_rng(1).lognormal(math.log(0.002), 0.866, 150_000)
    logged = np.round(true, 3)
    bins = quantised(logged)
    assert bins is not None and bins.resolution == pytest.approx(0.001)
    fit = empirical_quantised(bins, logged, "duration")
    assert fit.distribution.mean == pytest.approx(true.mean(), rel=0.03)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        assert fit.distribution._at(q) == pytest.approx(np.quantile(true, q), rel=0.05), q
    assert fit.test == "chi-square" and fit.df is not None and fit.df >= 5
    assert fit.distribution._at(0.0) >= 0.0
    # what fit_raw writes when no family fits such a log: two modes, a millisecond apart from none
    modes = np.concatenate([np.random.default_rng(2).lognormal(math.log(0.002), 0.3, 20_000),
                            np.random.default_rng(3).lognormal(math.log(0.03), 0.3, 20_000)])
    choice = fit_raw(np.round(modes, 3))
    assert choice.chosen.family == "empirical" and choice.warning is not None and choice.binned
    assert choice.chosen.test == "chi-square"
    assert choice.chosen.distribution.mean == pytest.approx(modes.mean(), rel=0.03)


@pytest.mark.slow
def test_a_misspecified_fits_standard_error_is_the_spread_of_its_estimate_over_samples() -> None:
    # A Weibull fitted to lognormal times (sigma 0.866, as the worked example's), 300 samples of
    # 1,000: the standard deviation of the shape and scale estimates over the samples is what a
    # standard error claims to be. The sandwich's mean is within 12% of it (measured: 0.94 of it for
    # the shape, 1.04 for the scale); the inverse information alone was 0.70 for the shape.
    estimates: dict[str, list[float]] = {"shape": [], "scale": []}
    errors: dict[str, list[float]] = {"shape": [], "scale": []}
    for seed in range(300):
        xs = np.random.default_rng(5000 + seed).lognormal(-6.215, 0.866, 1000)
        fit = next(f for f in fit_raw(xs).fits if f.family == "weibull")
        for name in estimates:
            estimates[name].append(fit.parameter(name).value)
            errors[name].append(fit.parameter(name).se)
    for name in estimates:
        spread = float(np.std(estimates[name], ddof=1))
        assert float(np.mean(errors[name])) == pytest.approx(spread, rel=0.12), name


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lognormal", "gamma", "weibull"])
def test_standard_errors_cover_the_truth_as_often_as_they_say(family: str) -> None:
    # over 200 seeded samples, the true parameter lies within 1.96 standard errors about 95% of the time
    inside = total = 0
    for seed in range(200):
        fit = next(f for f in fit_raw(sample(family, 500, seed=1000 + seed)).fits if f.family == family)
        for name, true in TRUE[family][0].items():
            p = fit.parameter(name)
            inside += abs(p.value - true) < 1.96 * p.se
            total += 1
    assert 0.91 < inside / total < 0.99, inside / total
