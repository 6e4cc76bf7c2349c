"""The two families ``edge fit`` needs beyond the others: Weibull and the empirical distribution
(quantile knots). Parsing, canonical forms, errors in the language's style, and samples that match
scipy's maths. Seeds are fixed; bounds are 4 standard errors, as in ``test_distributions``."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from edge.platform.distributions import Empirical, Rounded, Weibull, parse_distribution

N = 200_000


def draw(text: str, n: int = N, seed: int = 1, unit: str = "duration") -> np.ndarray:
    d = parse_distribution(text, unit=unit)
    rng = random.Random(seed)
    return np.array([d.sample(rng) for _ in range(n)])


@pytest.mark.parametrize(
    ("text", "shape", "scale"),
    [
        ("weibull(shape=1.5, scale=2ms)", 1.5, 0.002),
        ("weibull(scale=2ms, shape=0.7)", 0.7, 0.002),
        ("weibull(shape=1, scale=1s)", 1.0, 1.0),
    ],
)
def test_weibull_by_shape_and_scale(text: str, shape: float, scale: float) -> None:
    d = parse_distribution(text)
    assert isinstance(d, Weibull)
    assert (d.shape, d.scale) == (shape, scale)
    assert d.mean == pytest.approx(stats.weibull_min(shape, scale=scale).mean(), rel=1e-12)


@pytest.mark.parametrize("cv", [0.05, 0.3, 0.5, 1.0, 2.0, 10.0, 300.0])
def test_weibull_by_mean_and_cv_has_that_mean_and_cv(cv: float) -> None:
    d = parse_distribution(f"weibull(mean=2ms, cv={cv})")
    assert isinstance(d, Weibull)
    reference = stats.weibull_min(d.shape, scale=d.scale)
    assert reference.mean() == pytest.approx(0.002, rel=1e-9)
    assert reference.std() / reference.mean() == pytest.approx(cv, rel=1e-9)


def test_weibull_cv_1_is_the_exponential() -> None:
    d = parse_distribution("weibull(mean=3ms, cv=1)")
    assert d.shape == pytest.approx(1, rel=1e-12) and d.scale == pytest.approx(0.003, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("weibull(shape=1.50, scale=2000us)", "weibull(shape=1.5, scale=2ms)"),
        ("weibull(mean=2ms, cv=0.50)", "weibull(mean=2ms, cv=0.5)"),
        ("empirical(p0=0.4ms, p50=2ms, p90=6ms, p99=15ms, p100=40ms)", "empirical(p0=400µs, p50=2ms, p90=6ms, p99=15ms, p100=40ms)"),
        ("empirical( p0 = 1ms , p99.9=3ms, p100=3ms)", "empirical(p0=1ms, p99.9=3ms, p100=3ms)"),
        ("empirical(p0=1ms, p050=2ms, p100.0=5ms)", "empirical(p0=1ms, p50=2ms, p100=5ms)"),
        ("mix(0.5: weibull(shape=2, scale=1ms), 0.5: empirical(p0=1ms, p100=2ms))",
         "mix(0.5: weibull(shape=2, scale=1ms), 0.5: empirical(p0=1ms, p100=2ms))"),
    ],
)
def test_canonical_form_reads_back_to_the_same_distribution(text: str, canonical: str) -> None:
    d = parse_distribution(text)
    assert str(d) == canonical
    again = parse_distribution(canonical)
    assert str(again) == canonical
    assert parse_distribution(str(again)) == again  # what a fit writes (canonical text) round-trips exactly


@pytest.mark.parametrize(
    ("text", "unit", "canonical"),
    [
        ("empirical(p0=100, p50=1.5kB, p100=2KiB)", "size", "empirical(p0=100B, p50=1.5kB, p100=2KiB)"),
        ("weibull(mean=2KiB, cv=2)", "size", "weibull(mean=2KiB, cv=2)"),
        ("empirical(p0=0, p100=3)", "number", "empirical(p0=0, p100=3)"),
    ],
)
def test_other_units(text: str, unit: str, canonical: str) -> None:
    d = parse_distribution(text, unit=unit)
    assert str(d) == canonical
    if unit == "size":
        assert isinstance(d, Rounded)
        assert all(float(x).is_integer() for x in draw(text, 100, unit=unit))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weibull(2, 1ms)", 'expected weibull(shape=..., scale=...) or weibull(mean=..., cv=...), got "weibull(2, 1ms)"'),
        ("weibull(shape=2, cv=1)", 'expected weibull(shape=..., scale=...) or weibull(mean=..., cv=...), got "weibull(shape=2, cv=1)"'),
        ("weibull(shape=0.05, scale=1ms)", 'weibull shape: expected a shape between 0.1 and 100, got "0.05"'),
        ("weibull(shape=2, scale=0s)", 'weibull scale: expected a positive scale, got "0s"'),
        ("weibull(shape=2ms, scale=1ms)", 'weibull shape: expected a non-negative number, got "2ms"'),
        ("weibull(mean=1ms, cv=0.01)", 'weibull cv: expected a cv between 0.02 and 400, got "0.01"'),
        ("weibull(mean=0s, cv=1)", 'weibull mean: expected a positive mean, got "0s"'),
        ("empirical()", 'expected empirical(p0=..., p50=..., ..., p100=...): knots from p0 (the least value) to p100 (the greatest), '
                        'got "empirical()"'),
        ("empirical(p0=1ms, p50=2ms)", "expected empirical(p0=..., p50=..., ..., p100=...): knots from p0"),
        ("empirical(p10=1ms, p100=2ms)", "expected empirical(p0=..., p50=..., ..., p100=...): knots from p0"),
        ("empirical(1ms, 2ms)", 'empirical: expected knots like p50=2ms (a percent from 0 to 100 and a value), got "1ms"'),
        ("empirical(q50=1ms)", 'empirical: expected knots like p50=2ms (a percent from 0 to 100 and a value), got "q50"'),
        ("empirical(p0=1ms, p101=2ms)", 'empirical: expected knots like p50=2ms (a percent from 0 to 100 and a value), got "p101"'),
        ("empirical(p0=1ms, p90=3ms, p50=2ms, p100=4ms)", 'empirical p50: expected knots in increasing order, after p90, got "p50"'),
        ("empirical(p0=1ms, p50=1ms, p50=2ms, p100=4ms)", 'empirical p50: expected knots in increasing order, after p50, got "p50"'),
        ("empirical(p0=2ms, p50=1ms, p100=4ms)", 'empirical p50: expected p50 >= p0 (2ms), got "1ms"'),
        ("empirical(p0=1ms, p100=soon)", 'empirical p100: expected a duration like "250ms"'),
        ("empirical(p0=1ms, p100=-2ms)", 'empirical p100: expected a non-negative duration, got "-2ms"'),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_distribution(text)
    assert str(info.value).startswith(message)


def test_unknown_names_list_the_new_families() -> None:
    with pytest.raises(ValueError, match="expected one of const, exp, uniform, normal, lognormal, pareto, gamma, weibull, empirical, mix"):
        parse_distribution("weibul(shape=1, scale=1ms)")


WEIBULLS = ["weibull(shape=0.6, scale=2ms)", "weibull(shape=1.5, scale=2ms)", "weibull(mean=5ms, cv=0.2)"]
EMPIRICALS = ["empirical(p0=0.4ms, p50=2ms, p90=6ms, p99=15ms, p100=40ms)", "empirical(p0=1ms, p30=1ms, p60=2ms, p100=2ms)"]


@pytest.mark.parametrize("text", WEIBULLS + EMPIRICALS)
def test_sample_mean_matches_the_exact_mean(text: str) -> None:
    xs = draw(text)
    error = xs.std(ddof=1) / math.sqrt(len(xs))
    assert abs(xs.mean() - parse_distribution(text).mean) < 4 * error


@pytest.mark.parametrize("text", WEIBULLS)
def test_weibull_quantiles_and_survival_are_scipys(text: str) -> None:
    d = parse_distribution(text)
    assert isinstance(d, Weibull)
    reference = stats.weibull_min(d.shape, scale=d.scale)
    for q in (0.0, 0.01, 0.5, 0.9, 0.999):
        assert d.quantile(q) == pytest.approx(reference.ppf(q), rel=1e-12, abs=1e-300)
        assert d.survival(d.quantile(q)) == pytest.approx(1 - q, rel=1e-9, abs=1e-12)
    assert d.quantile(1) == math.inf
    assert d.mean == pytest.approx(reference.mean(), rel=1e-12)


@pytest.mark.parametrize("text", WEIBULLS + EMPIRICALS[:1])  # continuous ones: the atoms have a test of their own
def test_samples_follow_the_cdf(text: str) -> None:
    d = parse_distribution(text)
    xs = np.sort(draw(text))
    for q in (0.1, 0.5, 0.9, 0.99):
        below = np.searchsorted(xs, d.quantile(q), side="right") / len(xs)
        assert abs(below - q) < 4 * math.sqrt(q * (1 - q) / len(xs)), (q, below)


def test_weibull_samples_pass_kolmogorov_smirnov_against_scipy() -> None:
    d = parse_distribution("weibull(shape=1.5, scale=2ms)")
    assert isinstance(d, Weibull)
    assert stats.kstest(draw(str(d), 20_000), stats.weibull_min(1.5, scale=0.002).cdf).pvalue > 0.001


def test_empirical_hits_its_knots_and_interpolates_between() -> None:
    d = parse_distribution("empirical(p0=1ms, p50=2ms, p90=6ms, p100=10ms)")
    assert isinstance(d, Empirical)
    assert [d.quantile(q) for q in (0, 0.5, 0.9, 1)] == [0.001, 0.002, 0.006, 0.01]
    assert d.quantile(0.25) == pytest.approx(0.0015) and d.quantile(0.7) == pytest.approx(0.004)
    assert d.survival(0.0015) == pytest.approx(0.75) and d.survival(0.0009) == 1 and d.survival(0.01) == 0
    # the mean of a piecewise-uniform density: each segment's probability times its midpoint
    assert d.mean == pytest.approx(0.5 * 0.0015 + 0.4 * 0.004 + 0.1 * 0.008)
    xs = draw(str(d), 20_000)
    assert xs.min() >= 0.001 and xs.max() <= 0.01


def test_empirical_equal_knots_are_an_atom() -> None:
    d = parse_distribution("empirical(p0=1ms, p30=1ms, p60=2ms, p100=2ms)")
    xs = draw(str(d), 50_000)
    for value, share in ((0.001, 0.3), (0.002, 0.4)):
        seen = float((xs == value).mean())
        assert abs(seen - share) < 4 * math.sqrt(share * (1 - share) / len(xs)), (value, seen)
    assert d.survival(0.001) == pytest.approx(0.7) and d.survival(0.002) == 0


@pytest.mark.parametrize("text", WEIBULLS + EMPIRICALS)
def test_same_seed_same_samples(text: str) -> None:
    assert list(draw(text, 1000, seed=7)) == list(draw(text, 1000, seed=7))
    assert list(draw(text, 1000, seed=7)) != list(draw(text, 1000, seed=8))


@pytest.mark.parametrize("text", WEIBULLS + EMPIRICALS)
def test_one_random_number_a_draw(text: str) -> None:
    # as exp's: a stream shared with other draws moves by one number a sample
    d, rng, twin = parse_distribution(text), random.Random(3), random.Random(3)
    d.sample(rng)
    twin.random()
    assert rng.getstate() == twin.getstate()


@pytest.mark.parametrize("text", WEIBULLS + EMPIRICALS)
def test_numpy_draws_follow_the_same_distribution_as_samples(text: str) -> None:
    d = parse_distribution(text)
    drawn = d.draw(np.random.default_rng(7), 20_000)
    assert drawn.shape == (20_000,) and (drawn >= 0).all()
    assert stats.ks_2samp(draw(text, 20_000), drawn).pvalue > 0.001


@pytest.mark.parametrize("text", ["weibull(shape=1.5, scale=2ms)", "weibull(mean=2ms, cv=0.5)", *EMPIRICALS])
def test_scaled_is_the_same_family_times_the_factor(text: str) -> None:
    d = parse_distribution(text)
    tripled = d.scaled(3)
    assert type(tripled) is type(d)
    assert tripled.mean == pytest.approx(3 * d.mean, rel=1e-9)
    assert str(parse_distribution(str(tripled))) == str(tripled)
    first, second = random.Random(5), random.Random(5)
    assert [tripled.sample(first) for _ in range(50)] == pytest.approx([3 * d.sample(second) for _ in range(50)], rel=1e-9)


def test_a_scenario_model_takes_them() -> None:
    from edge.scenario import load

    text = """
[scenario]
name = "fit"
duration = "10s"
[[services]]
name = "app"
routes = ["example.com/*"]
model = { latency = "weibull(mean=2ms, cv=0.5)", cpu = "empirical(p0=100us, p50=300us, p100=2ms)", size = "empirical(p0=200, p100=2KiB)" }
[[traffic]]
arrivals = "poisson(10/s)"
requests = [{ url = "https://example.com/" }]
"""
    loaded = load.loads(text, file="fit.toml", base_dir=".")
    model = loaded.spec.services[0].model
    assert model is not None
    assert isinstance(model.latency.distribution, Weibull)
    assert str(model.cpu.distribution) == "empirical(p0=100µs, p50=300µs, p100=2ms)"
    assert isinstance(model.size.distribution, Rounded) and isinstance(model.size.distribution.inner, Empirical)


def test_a_scenario_names_the_field_of_a_bad_one() -> None:
    from edge.scenario import load
    from edge.scenario.errors import ConfigError

    text = """
[[services]]
name = "app"
routes = ["example.com/*"]
model = { latency = "empirical(p0=2ms, p50=1ms, p100=3ms)" }
"""
    with pytest.raises(ConfigError, match=r"services\[0\]\.model\.latency: .*empirical p50: expected p50 >= p0 \(2ms\)"):
        load.loads(text, file="fit.toml", base_dir=".")
