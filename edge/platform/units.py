"""Readable quantities in scenario files: durations, rates, ratios and sizes, parsed and formatted.

Scenario authors write "250ms", "500/s", "0.1%" and "2KiB" rather than bare floats whose unit a
reader has to guess. Each parser takes the string (or, where unambiguous, a bare TOML number) and
returns plain SI values: seconds, events per second, a fraction, bytes. A failure is a ValueError
saying what was expected and what was given; the config loader adds the file and the path, so the
messages here never do.

Durations and sizes are formatted back (for reports and for distributions' canonical forms) in a
shape the parsers accept, so a value printed in a report can be pasted into a scenario.
"""

from __future__ import annotations

import json
import math
import re

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN, what keyboards and format_duration produce
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU, what some editors substitute
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# One term of a possibly compound duration ("1h", "5m", "30s"); longer units first so "ms" is not "m".
_DURATION_TERM = re.compile(rf"\s*({_NUMBER})\s*(ns|us|µs|μs|ms|s|m|h)\s*")
_DURATION_EXPECTED = 'a duration like "250ms", "1.5s", "5m" (units: ns, us, µs, ms, s, m, h)'

_RATE = re.compile(rf"\s*({_NUMBER})\s*(k?)\s*(?:/\s*(s|m|h))?\s*")
_RATE_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_EXPECTED = 'a rate like "500/s", "30/m", "3600/h" or "2.5k/s"'

_RATIO = re.compile(rf"\s*({_NUMBER})\s*(%?)\s*")
_RATIO_EXPECTED = 'a ratio like "5%", "0.1%" or a fraction between 0 and 1'

_SIZE_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_SIZE = re.compile(rf"\s*({_NUMBER})\s*(B|kB|MB|GB|KiB|MiB|GiB)?\s*")
_SIZE_EXPECTED = 'a size like "512", "512B", "1.5kB", "2KiB", "3MB" or "1MiB"'
# Largest first, binary before decimal, so 2048 is "2KiB" rather than "2.048kB".
_SIZE_FORMATS = ((1024**3, "GiB"), (1000**3, "GB"), (1024**2, "MiB"), (1000**2, "MB"), (1024, "KiB"), (1000, "kB"))


def shown(value: object) -> str:
    """``value`` as an error message quotes it: strings in double quotes (as written in TOML)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _bare_number(value: object, noun: str, expected: str) -> float | str:
    """A TOML int or float as a finite non-negative float; a string as it is, for its parser.

    bool is rejected although it is an int: ``duration = true`` is a mistake, not one second.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected {expected}, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a non-negative {noun}, got {shown(value)}")
    return number


def _negative(text: str, noun: str) -> None:
    """A clearer message for "-5ms" than "not a duration": the sign is the only thing wrong."""
    if text.lstrip().startswith("-"):
        raise ValueError(f"expected a non-negative {noun}, got {shown(text)}")


def _finite(result: float, noun: str, text: str) -> float:
    """Reject values too large for a float ("9999…9h" overflows to inf)."""
    if not math.isfinite(result):
        raise ValueError(f"expected a finite {noun}, got {shown(text)}")
    return result


def parse_duration(value: str | int | float) -> float:
    """Seconds from "250ms", "1.5s", "1m30s", "1h 5m" or a bare number of seconds.

    A string needs a unit, except "0": "30" could mean seconds or milliseconds, and guessing wrong
    silently changes a run by a factor of a thousand.
    """
    text = _bare_number(value, "duration", _DURATION_EXPECTED)
    if not isinstance(text, str):
        return text
    _negative(text, "duration")
    if text.strip() == "0":
        return 0.0
    total, pos = 0.0, 0
    while True:
        match = _DURATION_TERM.match(text, pos)
        if match is None:
            raise ValueError(f"expected {_DURATION_EXPECTED}, got {shown(text)}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
        if pos == len(text):
            return _finite(total, "duration", text)


def parse_rate(value: str | int | float) -> float:
    """Events per second from "500/s", "30/m", "3600/h", "2.5k/s" or a bare number (per second)."""
    text = _bare_number(value, "rate", _RATE_EXPECTED)
    if not isinstance(text, str):
        return text
    _negative(text, "rate")
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"expected {_RATE_EXPECTED}, got {shown(text)}")
    count = float(match.group(1)) * (1000.0 if match.group(2) else 1.0)
    return _finite(count / _RATE_PER[match.group(3) or "s"], "rate", text)


def parse_ratio(value: str | int | float) -> float:
    """A fraction in [0, 1] from "5%", "0.1%" or a bare fraction (0.02, "0.02").

    A bare number is a fraction, never a percentage: 5 is an error rather than 500%.
    """
    number = _bare_number(value, "ratio", _RATIO_EXPECTED)
    if isinstance(number, str):
        _negative(number, "ratio")
        match = _RATIO.fullmatch(number)
        if match is None:
            raise ValueError(f"expected {_RATIO_EXPECTED}, got {shown(number)}")
        number = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if number > 1:
        raise ValueError(f"expected {_RATIO_EXPECTED}, got {shown(value)} (more than 100%)")
    return number


def parse_size(value: str | int | float) -> int:
    """Bytes from "512", "1.5kB", "2KiB", "3MB", "1MiB" or a bare number, rounded to a whole byte.

    kB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of 1024, as on the labels they come from.
    """
    number = _bare_number(value, "size", _SIZE_EXPECTED)
    if isinstance(number, str):
        _negative(number, "size")
        match = _SIZE.fullmatch(number)
        if match is None:
            raise ValueError(f"expected {_SIZE_EXPECTED}, got {shown(number)}")
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]
    return round(_finite(number, "size", str(value)))


def format_duration(seconds: float) -> str:
    """Three significant digits in the largest unit that keeps the number below its next unit.

    "850ns", "12.3µs", "250ms", "1.25s", "59.9s"; from a minute on, whole seconds ("1m30s",
    "5m0s"), from an hour on, whole minutes ("2h5m"), and from 100 hours on, hours to three
    significant digits again ("150h", "12300h"). Rounding happens before the unit is
    chosen, so 0.99996s is "1s" rather than "1e+03ms". The result parses back with
    ``parse_duration`` to within 1% (from a picosecond up; anything shorter is noise in a model
    and prints in exponent form).
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    for scale, unit, limit in ((1e-9, "ns", 1000), (1e-6, "µs", 1000), (1e-3, "ms", 1000), (1.0, "s", 60)):
        rounded = float(f"{seconds / scale:.3g}")
        if rounded < limit:
            return f"{rounded:g}{unit}"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s"
    minutes = round(seconds / 60)
    if minutes < 100 * 60:
        return f"{minutes // 60}h{minutes % 60}m"
    return f"{int(float(f'{seconds / 3600:.3g}'))}h"


def format_size(size: int) -> str:
    """Exact, in the largest unit that needs at most three decimals: "2KiB", "1.5kB", "1MB", "700B"."""
    for multiple, unit in _SIZE_FORMATS:
        if size >= multiple and size * 1000 % multiple == 0:
            return f"{size / multiple:.3f}".rstrip("0").rstrip(".") + unit
    return f"{size}B"
