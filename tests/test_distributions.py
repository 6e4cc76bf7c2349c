"""Distributions from scenario text: parsing, canonical forms, errors, and samples that match the maths.

Statistical checks use a fixed seed, so they are deterministic; the bounds (4 standard errors) are
wide enough that a correct implementation passes for almost any seed, and narrow enough that a
wrong mean, a missing truncation or a misfitted sigma fails.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.platform.distributions import (
    Z_99,
    Const,
    Distribution,
    Exponential,
    Gamma,
    LogNormal,
    Mixture,
    Normal,
    Pareto,
    Rounded,
    Uniform,
    parse_distribution,
)
from edge.platform.units import shown

N = 200_000
FUZZ = settings(max_examples=300, database=None, deadline=None)
NAMES = "const, exp, uniform, normal, lognormal, pareto, gamma, weibull, empirical, mix"
LOGNORMAL_FORMS = "lognormal(p50=..., p99=...) or lognormal(mean=..., sd=...)"


def nested_mix(depth: int) -> str:
    text = "1ms"
    for _ in range(depth):
        text = f"mix(0.5: {text}, 0.5: 2ms)"
    return text


def draw(distribution: Distribution, n: int = N, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    sample = distribution.sample
    return [sample(rng) for _ in range(n)]


def mean_and_error(xs: list[float]) -> tuple[float, float]:
    mean = math.fsum(xs) / len(xs)
    variance = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(variance / len(xs))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2ms", Const(0.002)),
        ("const(2ms)", Const(0.002)),
        ("exp(0.5ms)", Exponential(0.0005)),
        ("exp(mean=500us)", Exponential(0.0005)),
        ("uniform(1ms, 5ms)", Uniform(0.001, 0.005)),
        ("uniform(high=5ms, low=1ms)", Uniform(0.001, 0.005)),
        ("uniform(1ms, high=5ms)", Uniform(0.001, 0.005)),
        ("normal(mean=5ms, sd=1ms)", Normal(0.005, 0.001)),
        ("normal(5ms, 1ms)", Normal(0.005, 0.001)),
        ("pareto(min=1ms, alpha=2.5)", Pareto(0.001, 2.5)),
        ("gamma(mean=2ms, cv=0.5)", Gamma(0.002, 0.5)),
        ("  exp ( 1 m 30 s )  ", Exponential(90.0)),
    ],
)
def test_parse(text: str, expected: Distribution) -> None:
    assert parse_distribution(text) == expected


def test_parse_lognormal_fits_mu_and_sigma() -> None:
    by_quantiles = parse_distribution("lognormal(p50=2ms, p99=15ms)")
    assert isinstance(by_quantiles, LogNormal)
    assert by_quantiles.mu == pytest.approx(math.log(0.002))
    assert by_quantiles.sigma == pytest.approx(math.log(7.5) / Z_99)
    by_moments = parse_distribution("lognormal(mean=3ms, sd=1ms)")
    assert by_moments.mean == pytest.approx(0.003, rel=1e-12)
    assert isinstance(by_moments, LogNormal)
    sd = by_moments.mean * math.sqrt(math.expm1(by_moments.sigma**2))
    assert sd == pytest.approx(0.001, rel=1e-12)


def test_bare_numbers_are_constants_in_the_unit() -> None:
    assert parse_distribution(3) == Const(3.0)
    assert parse_distribution(0.25) == Const(0.25)
    assert parse_distribution(2048, unit="size") == Const(2048, "size")
    assert parse_distribution("1.5", unit="number") == Const(1.5, "number")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2ms", "2ms"),
        ("const(2ms)", "2ms"),
        ("exp(0.5ms)", "exp(500µs)"),
        ("uniform(1ms, 5ms)", "uniform(1ms, 5ms)"),
        ("normal(5ms, 1ms)", "normal(mean=5ms, sd=1ms)"),
        ("lognormal(p50=2ms, p99=15ms)", "lognormal(p50=2ms, p99=15ms)"),
        ("lognormal(mean=3ms, sd=1ms)", "lognormal(mean=3ms, sd=1ms)"),
        ("pareto(min=1ms, alpha=2.50)", "pareto(min=1ms, alpha=2.5)"),
        ("gamma(mean=2ms, cv=0.5)", "gamma(mean=2ms, cv=0.5)"),
        ("mix(0.9: 1ms, 10%: exp(20ms))", "mix(0.9: 1ms, 0.1: exp(20ms))"),
        ("mix(0.5: mix(0.5: 1ms, 0.5: 2ms), 0.5: 90s)", "mix(0.5: mix(0.5: 1ms, 0.5: 2ms), 0.5: 1m30s)"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    distribution = parse_distribution(text)
    assert str(distribution) == canonical
    assert str(parse_distribution(canonical)) == canonical


@pytest.mark.parametrize(
    ("text", "unit", "canonical"),
    [
        ("exp(2KiB)", "size", "exp(2KiB)"),
        ("uniform(100, 1.5kB)", "size", "uniform(100B, 1.5kB)"),
        ("lognormal(p50=1kB, p99=10kB)", "size", "lognormal(p50=1kB, p99=10kB)"),
        ("exp(2.0)", "number", "exp(2)"),
        ("uniform(0.5, 3)", "number", "uniform(0.5, 3)"),
    ],
)
def test_canonical_form_in_other_units(text: str, unit: str, canonical: str) -> None:
    assert str(parse_distribution(text, unit=unit)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expo(1ms)", f'expected one of {NAMES}, got "expo"'),
        ("expo", f'expected a value or one of {NAMES} with arguments in (...), got "expo"'),
        ("5 parsecs", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "5 parsecs"'),
        ("", f'expected a value or a distribution ({NAMES}), got end of text in ""'),
        ("exp(1ms", 'expected "," or ")", got end of text in "exp(1ms"'),
        ("exp(1ms) x", 'expected end of text, got "x" in "exp(1ms) x"'),
        ("exp(exp(1ms))", 'expected "," or ")", got "(" in "exp(exp(1ms))"'),
        ("exp(1ms,)", 'expected an argument of exp(mean), got ")" in "exp(1ms,)"'),
        ("exp()", 'expected exp(mean), got "exp()"'),
        ("exp(1ms, 2ms)", 'expected exp(mean), got "exp(1ms, 2ms)"'),
        ("exp(0s)", 'exp mean: expected a positive mean, got "0s"'),
        ("exp(-1ms)", 'exp mean: expected a non-negative duration, got "-1ms"'),
        ("exp(fast)", 'exp mean: expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "fast"'),
        ("uniform(5ms, 1ms)", 'uniform high: expected high >= low (5ms), got "1ms"'),
        ("uniform(1ms, low=2ms)", 'expected uniform(low, high), got "uniform(1ms, low=2ms)"'),
        ("normal(mean=1ms)", 'expected normal(mean=..., sd=...), got "normal(mean=1ms)"'),
        ("normal(mean=1ms, sd=0ms)", 'normal sd: expected a positive sd (for no spread, use a constant), got "0ms"'),
        ("normal(sd=1ms, 2ms)", 'expected normal(mean=..., sd=...), got "normal(sd=1ms, 2ms)"'),
        ("normal(mean=1ms, mean=2ms)", 'expected normal(mean=..., sd=...), got "normal(mean=1ms, mean=2ms)"'),
        ("lognormal(2ms, 15ms)", f'expected {LOGNORMAL_FORMS}, got "lognormal(2ms, 15ms)"'),
        ("lognormal(p50=2ms, sd=1ms)", f'expected {LOGNORMAL_FORMS}, got "lognormal(p50=2ms, sd=1ms)"'),
        ("lognormal(p50=15ms, p99=2ms)", 'lognormal p99: expected p99 >= p50 (15ms), got "2ms"'),
        ("lognormal(p50=0ms, p99=2ms)", 'lognormal p50: expected a positive p50, got "0ms"'),
        ("pareto(min=1ms, alpha=1)", 'pareto alpha: expected alpha > 1 (so that the mean exists), got "1"'),
        ("pareto(min=1ms, alpha=2ms)", 'pareto alpha: expected a non-negative number, got "2ms"'),
        ("gamma(mean=1ms, cv=0)", 'gamma cv: expected a cv between 0.001 and 1000, got "0"'),
        ("mix(0.9: 1ms)", 'expected mix(WEIGHT: DISTRIBUTION, WEIGHT: DISTRIBUTION, ...) with at least two parts, got "mix(0.9: 1ms)"'),
        ("mix(0.9: 1ms, 0.2: 2ms)", "expected mix weights summing to 1, got 0.9 + 0.2 = 1.1"),
        ("mix(1ms, 2ms)", 'mix weight: expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got "1ms"'),
        ("mix(0.5 1ms, 0.5: 2ms)", 'mix weight: expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got "0.5 1ms"'),
        ("mix(0.5: exp(1ms) 0.5: 2ms)", 'expected ",", got "0.5" in "mix(0.5: exp(1ms) 0.5: 2ms)"'),
        ("mix(most: 1ms, 0.5: 2ms)", 'mix weight: expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got "most"'),
        (nested_mix(9), f"expected mix nested at most 8 deep, got {shown(nested_mix(9))}"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_distribution(text)
    assert str(info.value).startswith(message)


def test_nesting_up_to_the_limit() -> None:
    assert parse_distribution(nested_mix(8)).mean == pytest.approx(0.5**8 * 0.001 + (1 - 0.5**8) * 0.002)


def test_huge_integers_are_value_errors() -> None:
    for unit in ("duration", "size", "number"):
        with pytest.raises(ValueError, match="expected a non-negative"):
            parse_distribution(10**400, unit=unit)


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match='expected unit one of duration, size, number, got "seconds"'):
        parse_distribution("1s", unit="seconds")


def test_astronomical_parameters_are_rejected_at_parse_time() -> None:
    huge = "1" + "0" * 200 + "s"
    with pytest.raises(ValueError, match="expected parameters giving a finite mean"):
        parse_distribution(f"lognormal(p50=1ns, p99={huge})")


STATISTICAL = [
    "exp(0.5ms)",
    "uniform(1ms, 5ms)",
    "normal(mean=5ms, sd=1ms)",
    "normal(mean=1ms, sd=1ms)",  # truncation at 0 moves the mean from 1ms to 1.29ms
    "lognormal(p50=2ms, p99=15ms)",
    "lognormal(mean=3ms, sd=1ms)",
    "pareto(min=1ms, alpha=4.5)",  # alpha > 4 so that the sample variance is a fair error estimate
    "gamma(mean=2ms, cv=0.5)",
    "gamma(mean=2ms, cv=2)",
    "mix(0.9: 1ms, 0.1: exp(20ms))",
]


@pytest.mark.parametrize("text", STATISTICAL)
def test_sample_mean_matches_the_exact_mean(text: str) -> None:
    distribution = parse_distribution(text)
    mean, error = mean_and_error(draw(distribution))
    assert abs(mean - distribution.mean) < 4 * error, (mean, distribution.mean, error)


def test_truncated_normal_mean_is_the_truncated_one() -> None:
    # E[X | X >= 0] for N(1, 1) is 1 + φ(1)/Φ(1).
    phi, cdf = math.exp(-0.5) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert parse_distribution("normal(mean=1s, sd=1s)").mean == pytest.approx(1 + phi / cdf, rel=1e-12)
    assert min(draw(parse_distribution("normal(mean=1ms, sd=1ms)"), 20_000)) >= 0


@pytest.mark.parametrize(
    "text",
    ["2ms", "exp(0.5ms)", "uniform(1ms, 5ms)", "normal(mean=1ms, sd=1ms)", "lognormal(p50=2ms, p99=15ms)", "pareto(min=1ms, alpha=1.5)"],
)
def test_quantiles_match_the_empirical_cdf(text: str) -> None:
    distribution = parse_distribution(text)
    xs = sorted(draw(distribution))
    for q in (0.1, 0.5, 0.9, 0.99):
        below = bisect.bisect_right(xs, distribution.quantile(q)) / len(xs)
        if isinstance(distribution, Const):
            assert below == 1.0
        else:
            assert abs(below - q) < 4 * math.sqrt(q * (1 - q) / len(xs)), (q, below)


def test_lognormal_p50_and_p99_recovered_empirically() -> None:
    distribution = parse_distribution("lognormal(p50=2ms, p99=15ms)")
    assert distribution.quantile(0.5) == pytest.approx(0.002, rel=1e-12)
    assert distribution.quantile(0.99) == pytest.approx(0.015, rel=1e-12)
    xs = sorted(draw(distribution))
    assert xs[len(xs) // 2] == pytest.approx(0.002, rel=0.02)
    assert xs[int(len(xs) * 0.99)] == pytest.approx(0.015, rel=0.02)


@pytest.mark.parametrize(
    ("text", "q", "value"),
    [
        ("exp(1s)", 0.0, 0.0),
        ("exp(1s)", 1 - math.exp(-1), 1.0),
        ("exp(1s)", 1.0, math.inf),
        ("uniform(1s, 3s)", 0.25, 1.5),
        ("pareto(min=1s, alpha=2)", 0.75, 2.0),
        ("lognormal(p50=1s, p99=10s)", 0.0, 0.0),
        ("lognormal(p50=1s, p99=10s)", 1.0, math.inf),
        ("normal(mean=1s, sd=1s)", 0.0, 0.0),
        ("normal(mean=1s, sd=1s)", 1.0, math.inf),
    ],
)
def test_quantile_closed_forms(text: str, q: float, value: float) -> None:
    assert parse_distribution(text).quantile(q) == pytest.approx(value, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("text", ["gamma(mean=1ms, cv=0.5)", "mix(0.5: 1ms, 0.5: 2ms)"])
def test_quantile_without_closed_form(text: str) -> None:
    with pytest.raises(NotImplementedError):
        parse_distribution(text).quantile(0.5)


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_outside_unit_interval(q: float) -> None:
    with pytest.raises(ValueError, match="expected a quantile between 0 and 1"):
        parse_distribution("exp(1ms)").quantile(q)


@pytest.mark.parametrize("text", STATISTICAL)
def test_same_seed_same_samples(text: str) -> None:
    distribution = parse_distribution(text)
    assert draw(distribution, 1000, seed=7) == draw(parse_distribution(text), 1000, seed=7)
    assert draw(distribution, 1000, seed=7) != draw(distribution, 1000, seed=8)


def test_constant_consumes_no_random_numbers() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert parse_distribution("const(2ms)").sample(rng) == 0.002
    assert rng.getstate() == state


def test_mixture_picks_components_by_weight() -> None:
    xs = draw(parse_distribution("mix(0.2: 1ms, 0.3: 2ms, 0.5: 3ms)"), 100_000)
    for value, weight in ((0.001, 0.2), (0.002, 0.3), (0.003, 0.5)):
        share = xs.count(value) / len(xs)
        assert abs(share - weight) < 4 * math.sqrt(weight * (1 - weight) / len(xs)), (value, share)


def test_zero_weight_component_is_never_drawn() -> None:
    xs = draw(parse_distribution("mix(0.5: 1ms, 0: 2ms, 0.5: 3ms)"), 10_000)
    assert set(xs) == {0.001, 0.003}


def test_sizes_are_whole_bytes() -> None:
    distribution = parse_distribution("exp(2KiB)", unit="size")
    assert isinstance(distribution, Rounded)
    xs = draw(distribution)
    assert all(type(x) is int for x in xs[:1000])
    mean, error = mean_and_error(xs)
    assert abs(mean - 2048) < 4 * error + 0.5
    assert distribution.quantile(0.5) == round(2048 * math.log(2))
    assert distribution.quantile(1.0) == math.inf


@pytest.mark.parametrize("text", ["2ms", "exp(1ms)", "lognormal(p50=2ms, p99=15ms)", "mix(0.5: 1ms, 0.5: 2ms)"])
def test_immutable(text: str) -> None:
    distribution = parse_distribution(text)
    field = dataclasses.fields(distribution)[0].name  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        setattr(distribution, field, 1.0)
    assert not hasattr(distribution, "__dict__")
    assert hash(distribution) == hash(parse_distribution(text))


# Text built from the grammar's pieces, so fuzzing reaches the parser's inner paths.
pieces = st.sampled_from(
    ["exp", "mix", "const", "uniform", "normal", "lognormal", "pareto", "gamma", "(", ")", ",", ":", "=", " ", "1ms", "0", "0.5", "2",
     "50%", "p50", "p99", "mean", "sd", "min", "alpha", "cv", "-", "1" + "0" * 200 + "s", "nan", "inf", "KiB", "µs"]
)
grammar_text = st.lists(pieces, max_size=14).map("".join)


@FUZZ
@given(st.one_of(st.text(), grammar_text), st.sampled_from(["duration", "size", "number"]))
def test_parse_raises_only_value_error(text: str, unit: str) -> None:
    try:
        distribution = parse_distribution(text, unit=unit)
    except ValueError:
        return
    assert math.isfinite(distribution.mean) and distribution.mean >= 0
    assert distribution.sample(random.Random(1)) >= 0
    assert str(parse_distribution(str(distribution), unit=unit)) == str(distribution)


durations = st.sampled_from(["1ms", "2.5ms", "850µs", "1s", "90s"])
simple = st.one_of(
    durations,
    durations.map("exp({})".format),
    st.sampled_from(["uniform(1ms, 2.5ms)", "uniform(850µs, 1s)", "uniform(1s, 1s)"]),
    st.tuples(durations, st.sampled_from(["1.5", "2", "3.25"])).map(lambda t: f"pareto(min={t[0]}, alpha={t[1]})"),
    st.tuples(durations, st.sampled_from(["0.1", "1", "2"])).map(lambda t: f"gamma(mean={t[0]}, cv={t[1]})"),
    durations.map("lognormal(p50={0}, p99={0})".format),
)


@FUZZ
@given(st.lists(simple, min_size=2, max_size=4))
def test_mixture_of_generated_forms_round_trips(parts: list[str]) -> None:
    weight = f"{1 / len(parts)!r}"
    text = "mix(" + ", ".join(f"{weight}: {part}" for part in parts) + ")"
    distribution = parse_distribution(text)
    assert isinstance(distribution, Mixture)
    assert str(parse_distribution(str(distribution))) == str(distribution)
    assert distribution.mean == pytest.approx(math.fsum(parse_distribution(p).mean for p in parts) / len(parts))


@pytest.mark.parametrize("text", ["2ms", *STATISTICAL, "exp(2KiB)"])
def test_scaled_is_the_same_family_times_the_factor(text: str) -> None:
    unit = "size" if "KiB" in text else "duration"
    d = parse_distribution(text, unit=unit)
    tripled = d.scaled(3)
    assert type(tripled) is type(d)
    assert tripled.mean == pytest.approx(3 * d.mean, rel=1e-9)
    assert parse_distribution(str(tripled), unit=unit) == tripled  # a report's text reads back
    if unit == "duration":  # the same draws, each three times as long (sizes are rounded)
        first, second = random.Random(5), random.Random(5)
        assert [tripled.sample(first) for _ in range(50)] == pytest.approx([3 * d.sample(second) for _ in range(50)], rel=1e-9)
    assert d.scaled(1) == d


@pytest.mark.parametrize("text", [*STATISTICAL, "mix(0.3: exp(1ms), 0.7: lognormal(p50=2ms, p99=15ms))", "uniform(1ms, 3ms)"])
def test_numpy_draws_follow_the_same_distribution_as_samples(text: str) -> None:
    # What the batched engine draws (``draw``, numpy) against what the per-request engine draws
    # (``sample``, one at a time): a two-sample Kolmogorov-Smirnov test cannot tell them apart.
    import numpy as np
    from scipy.stats import ks_2samp

    d = parse_distribution(text)
    rng = random.Random(7)
    one_by_one = [d.sample(rng) for _ in range(20_000)]
    drawn = d.draw(np.random.default_rng(7), 20_000)
    assert drawn.shape == (20_000,) and (drawn >= 0).all()
    assert ks_2samp(one_by_one, drawn).pvalue > 0.001


@pytest.mark.parametrize("text", [*STATISTICAL, "mix(0.3: exp(1ms), 0.7: 5ms)", "uniform(1ms, 3ms)", "2ms"])
@pytest.mark.parametrize("q", [0.5, 0.99])
def test_survival_is_the_share_of_draws_above(text: str, q: float) -> None:
    import numpy as np

    d = parse_distribution(text)
    drawn = d.draw(np.random.default_rng(3), 200_000)
    x = float(np.quantile(drawn, q))
    seen = float((drawn > x).mean())
    assert abs(d.survival(x) - seen) <= 4 * math.sqrt(max(seen, 1e-5) / 200_000) + 1e-9, (d.survival(x), seen)


def test_survival_at_the_edges() -> None:
    assert parse_distribution("2ms").survival(0.002) == 0.0  # P(X > x): a constant at x is not above it
    assert parse_distribution("2ms").survival(math.nextafter(0.002, 0)) == 1.0
    assert parse_distribution("exp(1ms)").survival(0.0) == 1.0
    assert parse_distribution("pareto(min=1ms, alpha=2)").survival(0.002) == pytest.approx(0.25)
    assert parse_distribution("uniform(1ms, 3ms)").survival(0.003) == 0.0
