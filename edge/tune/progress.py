"""``edge tune``'s progress on stderr: a rich bar with an ETA on a terminal, one plain line per
round otherwise (a log or CI keeps whole lines, and learns something every round rather than
nothing for minutes). ``--power`` has one round, and a line per point of its grid as it is done.

The bar follows the round's simulations (its ETA is the round's end) and takes the width its
description and figures leave, so that the whole line fits the terminal; each round's line,
printed above it, wraps at the terminal's width between words. ``edge run``'s bar
(``edge.report.progress``) follows a clock instead, and is not shared.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from edge.tune.results import TuneResult


class TuneProgress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.dropped: set[int] = set()

    def __enter__(self) -> TuneProgress:
        if self.console.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=None, table_column=Column(ratio=1)),
                                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                console=self.console, transient=True, expand=True)
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def started(self, description: str, simulations: int) -> None:
        """A new bar for the next ``simulations``."""
        if self.bar is None:
            return
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(description, total=simulations)

    def simulation_done(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)

    def said(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            self.console.file.write(line + "\n")
            self.console.file.flush()

    def round_started(self, number: int, seeds: dict[int, range], simulations: int) -> None:
        # One range for every schedule: a description per schedule left the bar no room at 80 columns.
        starts, stops = [r.start for r in seeds.values()], [r.stop for r in seeds.values()]
        self.started(f"round {number}" + (f": seeds {min(starts)}–{max(stops) - 1}" if seeds else ""), simulations)

    def round_finished(self, result: TuneResult) -> None:
        line = round_line(result, self.dropped)
        self.dropped |= {i for i, c in enumerate(result.candidates) if c.dropped is not None}
        self.said(line)


def round_line(result: TuneResult, already_dropped: set[int]) -> str:
    """One line: the round, what it dropped, and the answer so far."""
    parts = [f"edge tune: round {result.rounds}, {result.replications} replications"]
    for i, c in enumerate(result.candidates):
        if c.dropped is not None and i not in already_dropped:
            parts.append(f"dropped #{i} ({c.dropped})")
    if result.decided:
        parts.append("decided: " + (f"#{result.recommended}" if result.recommended is not None else "no schedule meets the limits"))
    else:
        lead = f"leading #{result.recommended}" if result.recommended is not None else "no schedule meets the limits yet"
        more = f", about {result.more_replications:,} more replications to decide" if result.more_replications is not None else ""
        parts.append(f"{lead}; {len(result.undecided)} open{more}")
    return "; ".join(parts)
