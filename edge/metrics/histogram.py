"""Decimal log-linear histograms: what actors record latencies and CPU times into.

Why not prometheus-client's ``Histogram`` on the hot path: each observation takes a lock and walks
the bucket list, several microseconds that a simulation pays per hop. A ``LogHistogram`` keeps
every value to within 1%, so any bucket bounds of the form d.dd x 10^e (the exposition's), any
quantile (reports, rollout analyses) and any difference of two moments (series over a run) can be
read from it later.
"""

from __future__ import annotations

import array
import functools
import math
from typing import Callable

import numpy as np

_E_MIN = -7  # smallest decade kept apart: 100 ns
_E_MAX = 5  # values from 10^5 s up share the last bin
_PER_DECADE = 900  # mantissa steps of 0.01 from 1.00 to 9.99: at most 1% relative bin width
_BINS = (_E_MAX - _E_MIN) * _PER_DECADE + 1
_SMALLEST = 1e-7  # below this (zeros included) values share bin 0
_LARGEST = 10.0**_E_MAX
_NEG_POW10 = np.array([10.0**-e for e in range(_E_MIN, _E_MAX + 1)])
_POW10 = np.array([10.0**e for e in range(_E_MIN, _E_MAX + 1)])
_EPSILON = 1e-9  # puts exact edges such as 2.5 (stored as 2.4999...) in their own bin


class LogHistogram:
    """Counts of non-negative values in decimal log-linear bins (HDR-style, <= 1% relative error).

    Bins are [m, m + 0.01) x 10^e for m in 1.00..9.99: every Prometheus bound of the form d.dd x
    10^e is a bin edge, so exported ``le`` buckets are exact, and a quantile read from a bin is
    within 1% of the true value (bin midpoint, clamped to the observed min/max).

    Why ``observe`` is a bound ``append``: a simulated request makes about ten observations,
    and binning each in Python cost a tenth of the whole run. Values wait unbinned and are binned
    with numpy when anything reads the histogram, or when the owner calls ``settle()`` to bound
    them (``RunMetrics.settle`` does it for every histogram of a run).

    Why they wait in an ``array('d')`` and not a list: a list keeps a float object per value,
    four times the memory, and those objects pin CPython's small-object arenas. A live burst
    left tens of thousands of them waiting in histograms nobody read while the server was idle,
    spread over the arenas the burst had grown, which could then never be given back. An array
    keeps plain doubles in one buffer (about 10 ns more per value, and numpy takes it as it is).

    Why the counts cover only the decades seen: all twelve decades take 86 KB, and a topology of
    1,000 services keeps thousands of histograms whose values span two or three decades each.
    """

    __slots__ = ("observe", "_pending", "_counts", "_count", "_total", "_min", "_max")

    def __init__(self) -> None:
        self._pending = array.array("d")
        self.observe: Callable[[float], None] = self._pending.append
        self._counts = Bins()
        self._count = 0
        self._total = 0.0
        self._min = math.inf
        self._max = 0.0

    def settle(self) -> None:
        """Bin the values observed since the last read."""
        pending = self._pending
        if not pending:
            return
        if len(pending) <= _FEW:
            self._settle_few(pending)
            return
        values = np.array(pending, dtype=np.float64)
        del pending[:]
        indices = _bin_indices(values)
        counts = self._counts = self._counts.covering(int(indices.min()), int(indices.max()) + 1)
        counts.counts += np.bincount(indices - counts.start, minlength=len(counts.counts))
        self._count += len(values)
        self._total += float(values.sum())
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))

    def _settle_few(self, pending: array.array) -> None:
        """``settle`` for a handful of values, binned one by one in Python: numpy's dozen calls
        cost more than the work for these, and a topology of 10,000 services settles thousands
        of histograms holding a few values each, every interval."""
        indices = [_bin_index_of(value) for value in pending]
        self._counts = self._counts.adding(indices)
        self._count += len(indices)
        self._total += float(np.frombuffer(pending).sum())  # numpy's summation: the same float as for many values
        self._min = min(self._min, min(pending))
        self._max = max(self._max, max(pending))
        del pending[:]

    def latest(self, n: int) -> list[float] | None:
        """The last ``n`` values observed, if they still wait unbinned and are a handful
        (``_FEW``); None otherwise. Nothing is binned: for a reader of windows (``series``),
        which reads a window of a few values without copying the counts."""
        pending = self._pending
        if n > len(pending) or n > _FEW:
            return None
        return pending[len(pending) - n :].tolist()

    def add(self, other: LogHistogram) -> None:
        """Merge ``other``'s observations into this histogram."""
        other.settle()
        self.settle()
        self._counts = self._counts + other._counts
        self._count += other._count
        self._total += other._total
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    @property
    def observed(self) -> int:
        """Values observed so far, binned or not (``count`` without binning them)."""
        return self._count + len(self._pending)

    @property
    def waiting(self) -> int:
        """Values observed and not binned yet."""
        return len(self._pending)

    @property
    def count(self) -> int:
        self.settle()
        return self._count

    @property
    def total(self) -> float:
        self.settle()
        return self._total

    @property
    def min(self) -> float:
        self.settle()
        return self._min

    @property
    def max(self) -> float:
        self.settle()
        return self._max

    @property
    def mean(self) -> float:
        self.settle()
        return self._total / self._count if self._count else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1); 0.0 for an empty histogram."""
        self.settle()
        if not self._count:
            return 0.0
        if q >= 1.0:
            return self._max
        return min(max(self._counts.quantile(q), self._min), self._max)

    def bins(self) -> Bins:
        """A copy of the bin counts: the difference of two copies is what was observed in between."""
        self.settle()
        return self._counts.copy()

    def count_below(self, bound: float) -> int:
        """How many observations fell below ``bound`` (exact when ``bound`` is a bin edge)."""
        self.settle()
        counts = self._counts
        return int(counts.counts[: max(0, _bin_index(bound) - counts.start)].sum())


_NO_COUNTS = np.zeros(0, dtype=np.int64)
_NO_COUNTS.flags.writeable = False  # shared by every empty Bins: ``covering`` replaces it, never writes it


class Bins:
    """Counts of the consecutive bins ``start, start + 1, ...``; every bin outside holds zero.

    What a histogram keeps, and what its readers take: a copy at one instant, or the difference of
    two copies (what was observed in between), read as a quantile or as samples at bin midpoints.
    """

    __slots__ = ("start", "counts")

    def __init__(self, start: int = 0, counts: np.ndarray | None = None) -> None:
        self.start = start
        self.counts = _NO_COUNTS if counts is None else counts

    @classmethod
    def of(cls, values: np.ndarray) -> Bins:
        """The bins of ``values``, as a histogram that observed them would hold them."""
        if not len(values):
            return cls()
        indices = _bin_indices(np.asarray(values, dtype=np.float64))
        bins = cls().covering(int(indices.min()), int(indices.max()) + 1)
        bins.counts += np.bincount(indices - bins.start, minlength=len(bins.counts))
        return bins

    @property
    def end(self) -> int:
        return self.start + len(self.counts)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def copy(self) -> Bins:
        return Bins(self.start, self.counts.copy())

    def covering(self, start: int, end: int) -> Bins:
        """These counts over whole decades spanning at least [start, end): self if they already do.

        Whole decades, so that a histogram's range grows a few times in a run, not per value."""
        if self.start <= start and end <= self.end and len(self.counts):
            return self
        if len(self.counts):
            start, end = min(start, self.start), max(end, self.end)
        start = start - start % _PER_DECADE
        end = min(_BINS, end + (-end) % _PER_DECADE)
        counts = np.zeros(end - start, dtype=np.int64)
        if len(self.counts):
            counts[self.start - start : self.end - start] = self.counts
        return Bins(start, counts)

    def adding(self, indices: list[int]) -> Bins:
        """These counts with one more in each of the bins ``indices`` (in place when they cover them)."""
        if not indices:
            return self
        counts = self.covering(min(indices), max(indices) + 1)
        cells, start = counts.counts, counts.start
        for index in indices:
            cells[index - start] += 1
        return counts

    def __add__(self, other: Bins) -> Bins:
        return self._combine(other, 1)

    def __sub__(self, other: Bins) -> Bins:
        return self._combine(other, -1)

    def _combine(self, other: Bins, sign: int) -> Bins:
        if not len(other.counts):
            return self.copy()
        if not len(self.counts):
            return Bins(other.start, other.counts * sign)
        union = self.covering(other.start, other.end).copy()
        union.counts[other.start - union.start : other.end - union.start] += other.counts * sign
        return union

    def quantile(self, q: float) -> float:
        """The q-quantile read from the bins: the midpoint of the bin it falls in, within 1% of
        the true value; 0.0 when the bins are empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """``quantile`` of each of ``qs``, from one pass over the counts."""
        cumulative = np.cumsum(self.counts)
        if not len(cumulative) or not cumulative[-1]:
            return [0.0] * len(qs)
        total = int(cumulative[-1])
        found = []
        for local in np.searchsorted(cumulative, [q * total for q in qs], side="right").tolist():
            index = _BINS - 1 if local >= len(cumulative) else self.start + local
            found.append(0.0 if index == 0 else _bin_mid(index))
        return found

    def largest(self) -> float:
        """The midpoint of the highest bin holding anything (0.0 when empty)."""
        nonzero = np.flatnonzero(self.counts)
        return float(bin_mids()[self.start + nonzero[-1]]) if len(nonzero) else 0.0

    def samples(self) -> np.ndarray:
        """Every observation as its bin's midpoint, in order."""
        return np.repeat(bin_mids()[self.start : self.end], self.counts)


@functools.lru_cache(maxsize=1)
def bin_mids() -> np.ndarray:
    """Every bin's midpoint: the value a bin stands for when a histogram is read as samples."""
    mids = np.array([_bin_mid(i) for i in range(_BINS)])
    mids[0] = 0.0  # below 100 ns, zeros included
    mids.flags.writeable = False
    return mids


def _bin_indices(values: np.ndarray) -> np.ndarray:
    """The bin of each value. Exponents are corrected after log10 so that a value on a decade edge
    lands in the same bin whatever the last bit of the platform's log10."""
    values = np.minimum(values, _LARGEST)
    small = values < _SMALLEST
    values = np.where(small, 1.0, values)
    exponent = np.clip(np.floor(np.log10(values)).astype(np.int64), _E_MIN, _E_MAX)
    mantissa = values * _NEG_POW10[exponent - _E_MIN]
    exponent += (mantissa >= 10.0).astype(np.int64) - (mantissa < 1.0).astype(np.int64)
    top = exponent >= _E_MAX
    exponent = np.minimum(exponent, _E_MAX - 1)
    mantissa = values * _NEG_POW10[exponent - _E_MIN]
    step = np.minimum(((mantissa - 1.0) * 100.0 + _EPSILON).astype(np.int64), _PER_DECADE - 1)
    index = (exponent - _E_MIN) * _PER_DECADE + step
    return np.where(small, 0, np.where(top, _BINS - 1, index))


_FEW = 16
"""Up to this many waiting values are binned in Python (``_bin_index_of``), more with numpy."""
_NEG_POW10_LIST = _NEG_POW10.tolist()


def _bin_index_of(value: float) -> int:
    """``_bin_indices`` of one value, step for step in Python floats (the same IEEE operations,
    so the same bin: ``tests/test_metrics.py`` checks every decade edge and its neighbours)."""
    value = min(value, _LARGEST)
    if value < _SMALLEST:
        return 0
    exponent = min(max(math.floor(math.log10(value)), _E_MIN), _E_MAX)
    mantissa = value * _NEG_POW10_LIST[exponent - _E_MIN]
    exponent += (mantissa >= 10.0) - (mantissa < 1.0)
    if exponent >= _E_MAX:
        return _BINS - 1
    mantissa = value * _NEG_POW10_LIST[exponent - _E_MIN]
    step = min(int((mantissa - 1.0) * 100.0 + _EPSILON), _PER_DECADE - 1)
    return (exponent - _E_MIN) * _PER_DECADE + step


def bin_indices_of(values: list[float]) -> list[int]:
    """The bin of each value: in Python for a handful, with numpy for more (the same bins)."""
    if len(values) <= _FEW:
        return [_bin_index_of(value) for value in values]
    return _bin_indices(np.array(values, dtype=np.float64)).tolist()


@functools.lru_cache(maxsize=256)  # the bucket bounds of every scrape: a handful of values, many times
def _bin_index(value: float) -> int:
    return int(_bin_indices(np.array([value]))[0])


def quantiles_of_values(values: list[float], qs: tuple[float, ...]) -> list[float]:
    """``Bins.quantiles`` of the bins of a few values, without building the counts: the
    q-quantile falls in the bin of the (floor(q * n) + 1)-th smallest, as the cumulative search
    does, and binning keeps the order, so only the values a quantile falls on are binned."""
    if not values:
        return [0.0] * len(qs)
    ordered = sorted(values)
    n = len(ordered)
    found = []
    k_before, quantile = -1, 0.0
    for q in qs:
        k = int(q * n)
        if k != k_before:  # a window of a value or two: its quantiles are mostly the same one
            index = _BINS - 1 if k >= n else _bin_index_of(ordered[k])
            k_before, quantile = k, 0.0 if index == 0 else _bin_mid(index)
        found.append(quantile)
    return found


def _bin_mid(index: int) -> float:
    exponent, step = divmod(index, _PER_DECADE)
    return (1.0 + (step + 0.5) / 100.0) * float(_POW10[exponent])
