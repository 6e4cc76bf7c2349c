"""The live progress bar of ``edge run``: simulated time, request rate and errors as the run goes.

It is driven by the virtual clock (a tick every 1/500 of the run), not by a wall-clock timer, so
each tick shows a consistent state of the model between two events. The ticks only read counters:
a run with the bar is the same run, event for event, as one without (the JSON report is
byte-identical). rich draws it from its own thread on the wall clock, which is the shell's business;
the model never sees that clock.

Into something that is not a terminal (a pipe, a log file: ``--progress`` forces it there) a bar
would be redrawn as lines wrapped at rich's default width; a plain line every tenth of the run is
written instead, whole (never wrapped), each a state a reader of the log can use.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from edge.platform.clock import ModelClock
from edge.metrics.recorders import RunMetrics
from edge.platform.units import format_duration

TICKS = 500
PLAIN_LINES = 10  # lines over a run when the output is not a terminal


class _SimulatedTime(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = format_duration(task.total) if task.total is not None else "?"
        return Text(f"{format_duration(task.completed)} / {total}", style="progress.download")


class _Speed(ProgressColumn):
    """Simulated seconds per wall second (rich's own speed estimate over recent updates)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"x{speed:,.0f} real time" if speed else "", style="progress.data.speed")


class RunProgress:
    """Shows a virtual run's progress on ``console`` (stderr); use as a context manager."""

    def __init__(self, metrics: RunMetrics, clock: ModelClock, duration: float, console: Console) -> None:
        self.metrics = metrics
        self.clock = clock
        self.duration = duration
        self.step = max(duration / TICKS, 1e-3)
        self.console = console
        self.plain = not console.is_terminal
        self._next_line = duration / PLAIN_LINES
        self._line = (0, 0.0)  # requests and time at the last plain line
        self.bar = Progress(
            TextColumn("[bold]simulating[/bold]"), BarColumn(), _SimulatedTime(), _Speed(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[errors]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, refresh_per_second=8, speed_estimate_period=10.0, disable=self.plain,
        )
        self.task = self.bar.add_task("run", total=duration, rate="", errors="")
        self._last_requests = 0
        self._last_at = 0.0
        self._rate = 0.0

    def __enter__(self) -> RunProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.show(last=True)  # the end of the drain
        # rich tells its refresh thread to stop but does not wait for it; what comes next (the
        # plots drawn in a forked child, ``edge.report.outputs``) is only done aside when no
        # other thread runs.
        refresher = getattr(self.bar.live, "_refresh_thread", None)
        self.bar.stop()
        if refresher is not None:
            refresher.join()

    def begin(self) -> None:
        self.clock.call_later(self.step, self.tick)

    def tick(self) -> None:
        self.show()
        if self.clock.now() + self.step <= self.duration:
            self.clock.call_later(self.step, self.tick)

    def show(self, last: bool = False) -> None:
        now = self.clock.now()
        groups = self.metrics.groups.values()
        requests = sum(g.requests for g in groups)
        errors = sum(g.errors for g in groups)
        if now - self._last_at >= self.step / 2:  # not over the last sliver of the drain: it would be noise
            self._rate = (requests - self._last_requests) / (now - self._last_at)
            self._last_requests, self._last_at = requests, now
        if self.plain:
            if last or now >= self._next_line:
                self._next_line += self.duration / PLAIN_LINES
                rate = (requests - self._line[0]) / (now - self._line[1]) if now > self._line[1] else 0.0  # since the last line
                self._line = (requests, now)
                seen = f"{errors:,} errors ({errors / requests:.2%})" if errors else "no errors"
                self.console.print(
                    f"simulating {format_duration(min(now, self.duration))} / {format_duration(self.duration)}: "
                    f"{rate:,.0f} req/s, {requests:,} requests, {seen}",
                    markup=False, highlight=False, soft_wrap=True,
                )
            return
        self.bar.update(
            self.task, completed=min(now, self.duration), rate=f"{self._rate:,.0f} req/s",
            errors=f"[red]{errors:,} errors ({errors / requests:.2%})[/red]" if errors else f"{requests:,} requests, no errors",
        )
