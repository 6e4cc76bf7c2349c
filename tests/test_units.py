"""Readable quantities: what each parser accepts, what it rejects and says, and formatting back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.platform.units import format_duration, format_size, parse_duration, parse_rate, parse_ratio, parse_size

FUZZ = settings(max_examples=300, database=None, deadline=None)

# Text made of the pieces the parsers look for, so fuzzing reaches past the first character.
near_valid = st.lists(
    st.sampled_from(
        ["0", "1", "2.5", ".5", "9" * 400, "-", " ", "/", "%", "k", "s", "m", "h", "ms", "µs", "us", "ns", "B", "KiB", "MB", "e3", "nan", "inf", "."]
    ),
    max_size=8,
).map("".join)
any_text = st.one_of(st.text(), near_valid)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("10ns", 10e-9),
        ("500us", 500e-6),
        ("500µs", 500e-6),  # U+00B5 micro sign
        ("500μs", 500e-6),  # U+03BC Greek mu
        (".5s", 0.5),
        ("3 ms", 0.003),
        ("  3ms  ", 0.003),
        ("1m30s", 90.0),
        ("1h5m", 3900.0),
        ("1h 5m 30s", 3930.0),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), (3, 3.0), (0.25, 0.25)])
def test_bare_numbers_are_seconds(value: float, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds and type(result) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 parsecs", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "5 parsecs"'),
        ("30", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "30"'),
        ("", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got ""'),
        ("1m30", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "1m30"'),
        ("5 min", 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got "5 min"'),
        ("-5ms", 'expected a non-negative duration, got "-5ms"'),
        (-1, "expected a non-negative duration, got -1"),
        (math.nan, "expected a non-negative duration, got nan"),
        (math.inf, "expected a non-negative duration, got inf"),
        (10**400, "expected a non-negative duration, got 1000"),
        ("9" * 400 + "h", "expected a finite duration, got"),
        (True, 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got True'),
        (None, 'expected a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h), got None'),
    ],
)
def test_parse_duration_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "per_second"),
    [
        ("500/s", 500.0), ("30/m", 0.5), ("3600/h", 1.0), ("2.5k/s", 2500.0), ("2.5k", 2500.0),
        (" 12 / s ", 12.0), ("500", 500.0), (500, 500.0), (0.5, 0.5), ("0/s", 0.0),
    ],
)
def test_parse_rate(value: str | float, per_second: float) -> None:
    assert parse_rate(value) == pytest.approx(per_second, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("500/ms", 'expected a rate like "500/s", "30/m", "3600/h" or "2.5k/s", got "500/ms"'),
        ("fast", 'expected a rate like "500/s", "30/m", "3600/h" or "2.5k/s", got "fast"'),
        ("-5/s", 'expected a non-negative rate, got "-5/s"'),
        (-5, "expected a non-negative rate, got -5"),
        (math.inf, "expected a non-negative rate, got inf"),
        (math.nan, "expected a non-negative rate, got nan"),
    ],
)
def test_parse_rate_errors(value: str | float, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "fraction"),
    [("0.1%", 0.001), ("5%", 0.05), ("100%", 1.0), ("0%", 0.0), (" 5 % ", 0.05), (0.02, 0.02), (0, 0.0), (1, 1.0), ("0.02", 0.02)],
)
def test_parse_ratio(value: str | float, fraction: float) -> None:
    assert parse_ratio(value) == pytest.approx(fraction, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("150%", 'expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got "150%" (more than 100%)'),
        (5, 'expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got 5 (more than 100%)'),
        ("-1%", 'expected a non-negative ratio, got "-1%"'),
        (-0.1, "expected a non-negative ratio, got -0.1"),
        ("half", 'expected a ratio like "5%", "0.1%" or a fraction between 0 and 1, got "half"'),
        (math.nan, "expected a non-negative ratio, got nan"),
    ],
)
def test_parse_ratio_errors(value: str | float, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_ratio(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512", 512), ("512B", 512), ("2KiB", 2048), ("1.5kB", 1500), ("3MB", 3_000_000),
        ("1MiB", 1 << 20), ("1GiB", 1 << 30), ("2 GB", 2 * 10**9), (4096, 4096), ("0", 0),
    ],
)
def test_parse_size(value: str | int, size: int) -> None:
    result = parse_size(value)
    assert result == size and type(result) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2kb", 'expected a size like "512", "512B", "1.5kB", "2KiB", "3MB" or "1MiB", got "2kb"'),
        ("-1KiB", 'expected a non-negative size, got "-1KiB"'),
        (-1, "expected a non-negative size, got -1"),
        ("9" * 400 + "GiB", "expected a finite size, got"),
    ],
)
def test_parse_size_errors(value: str | int, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(value)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (850e-9, "850ns"),
        (850e-6, "850µs"),
        (12.34e-6, "12.3µs"),
        (0.0123456, "12.3ms"),
        (0.25, "250ms"),
        (0.99996, "1s"),  # rounds up across the unit boundary: not "1e+03ms"
        (999.6e-6, "1ms"),
        (1.25, "1.25s"),
        (59.9, "59.9s"),
        (59.97, "1m0s"),
        (90.4, "1m30s"),
        (300, "5m0s"),
        (3599.6, "1h0m"),
        (3900, "1h5m"),
        (99 * 3600 + 59 * 60 + 40, "100h"),
        (123.4 * 3600, "123h"),
        (1.5e6 * 3600, "1500000h"),
        (-0.25, "-250ms"),
        (math.inf, "inf"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@FUZZ
@given(st.floats(min_value=1e-12, max_value=1e12))
def test_format_duration_parses_back_within_one_percent(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=0.01)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"), (700, "700B"), (1000, "1kB"), (1025, "1.025kB"), (1500, "1.5kB"),
        (1536, "1.5KiB"), (2048, "2KiB"), (10**6, "1MB"), (1 << 20, "1MiB"), (3 << 30, "3GiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@FUZZ
@given(st.integers(min_value=0, max_value=1 << 40))
def test_format_size_parses_back_exactly(size: int) -> None:
    assert parse_size(format_size(size)) == size


@FUZZ
@given(any_text)
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (parse_duration, parse_rate, parse_ratio, parse_size):
        try:
            result = parse(text)
        except ValueError:
            continue
        assert math.isfinite(result) and result >= 0
