"""A virtual run's metrics as timestamped OpenMetrics, for Prometheus to backfill.

``edge run --openmetrics out.om`` scrapes the run's own collector every ``interval`` of simulated
time, as a Prometheus would scrape a live ``edge serve``, stamps each sample with the simulated
time shifted by ``start`` (an epoch second: by default the run ends at the moment it was written,
``ends_at``), and writes every scrape into one OpenMetrics file. ``promtool tsdb create-blocks-from openmetrics out.om DATA`` (``edge backfill``) turns it into
TSDB blocks, after which the same Grafana dashboards show a simulated hour as if it had been live.

The exposition itself is prometheus-client's; this module only keeps the scrapes and orders them
the way OpenMetrics wants: families not interleaved, and within a family each series' samples
together and in time order.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.openmetrics.exposition import generate_latest

from edge.platform.clock import ModelClock
from edge.platform.files import InputError, read_tail, write_output
from edge.metrics.exposition import RunCollector
from edge.metrics.recorders import RunMetrics
from edge.platform.user_errors import EdgeError


class OpenMetricsRecorder:
    """Scrapes a run's metrics every ``interval`` simulated seconds (a chain of clock callbacks)."""

    def __init__(self, metrics: RunMetrics, clock: ModelClock, interval: float, start: float, until: float) -> None:
        if interval <= 0:
            raise ValueError(f"expected a positive scrape interval, got {interval}")
        self.collector = RunCollector(metrics)
        self.clock = clock
        self.interval = interval
        self.start = start
        self.until = until  # the last scheduled scrape: a chain of callbacks must end for the run to
        self.scrapes = 0
        # Per family, its samples by series (labels but ``le``: a histogram's buckets, count and
        # sum are one series), each with the simulated time of its scrape. Kept apart as they
        # come, so that writing them is a walk, not a sort of every sample of the run.
        self._families: dict[str, tuple[Metric, dict[tuple[tuple[str, str], ...], list[tuple[Sample, float]]]]] = {}
        self._last: float | None = None

    def begin(self) -> None:
        self.clock.call_later(0.0, self.scrape)

    def ends_at(self, epoch: float) -> None:
        """Stamp the samples so that the last scrape falls on ``epoch``: a run backfilled just after
        it ended is in a dashboard's recent ranges, not partly in the future."""
        self.start = epoch - (self._last or 0.0)

    def scrape(self) -> None:
        """Record every sample now, stamped with the simulated time (``start`` is added as they are
        written, so it may be set after the run); then the next."""
        stamp = round(self.clock.now(), 3)
        if stamp == self._last:  # the end of the run fell on a scheduled scrape
            return
        self._last = stamp
        for family in self.collector.collect():
            kept = self._families.get(family.name)
            if kept is None:
                kept = self._families[family.name] = (Metric(family.name, family.documentation, family.type, family.unit), {})
            series = kept[1]
            for sample in family.samples:
                key = tuple(sorted(item for item in sample.labels.items() if item[0] != "le"))
                samples = series.get(key)
                if samples is None:
                    samples = series[key] = []
                samples.append((sample, stamp))
        self.scrapes += 1
        if self.clock.now() + self.interval <= self.until:
            self.clock.call_later(self.interval, self.scrape)

    def collect(self) -> Iterator[Metric]:
        """The recorded families, each series' samples together and in time order."""
        make, start = Sample._make, self.start
        for family, series in self._families.values():
            ordered = Metric(family.name, family.documentation, family.type, family.unit)
            # Each series' samples were kept in scrape order, and a scrape's in the collector's.
            ordered.samples = [make((*sample[:3], round(start + stamp, 3), *sample[4:]))
                               for key in sorted(series) for sample, stamp in series[key]]
            yield ordered

    def write(self, path: str | Path) -> None:
        """Write the OpenMetrics file atomically: a failed run leaves no partial file behind."""
        text = generate_latest(self)  # type: ignore[arg-type]  # anything with collect() will do
        write_output(path, text)


class BackfillError(EdgeError):
    """A backfill that did not happen; ``str()`` says why (the input, or what promtool said)."""


def backfill(openmetrics: str | Path, data_dir: str | Path) -> str:
    """``promtool tsdb create-blocks-from openmetrics``: TSDB blocks for a Prometheus to serve.

    The input is checked before anything is created. promtool's verdict is its exit status and
    the blocks it wrote: it prints errors to stdout (such as "try lock file: open ...: no such
    file") and exits 0 for an input with no samples, so a zero status that wrote no block is a
    failure too. A ``data_dir`` this call created is removed again when it fails."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise BackfillError("promtool not found: install Prometheus (Debian: apt-get install prometheus)")
    check_openmetrics_input(openmetrics)
    data_dir = Path(data_dir)
    created = not data_dir.exists()
    before = _blocks(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
            capture_output=True, text=True,
        )
        said = " ".join((done.stderr + done.stdout).split()) or "nothing"
        if done.returncode != 0:
            raise BackfillError(f"promtool failed (exit {done.returncode}): {said}")
        if not _blocks(data_dir) - before:
            raise BackfillError(f"{openmetrics}: promtool wrote no blocks (no samples?); it said: {said}")
    except BaseException:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return done.stdout


def check_openmetrics_input(path: str | Path) -> None:
    """A regular, readable file that ends as OpenMetrics does (``# EOF``), or BackfillError.

    Only its last bytes are read, as the file may be large (and a FIFO is refused unread)."""
    try:
        tail = read_tail(path, 64)
    except InputError as exc:
        raise BackfillError(f"{path}: {exc}") from None
    if not tail.rstrip().endswith(b"# EOF"):
        raise BackfillError(f"{path}: expected OpenMetrics ending with `# EOF`, as `edge run --openmetrics` writes")


def _blocks(data_dir: Path) -> set[str]:
    """The TSDB blocks in ``data_dir``: folders with a meta.json."""
    if not data_dir.is_dir():
        return set()
    return {block.name for block in data_dir.iterdir() if (block / "meta.json").is_file()}
