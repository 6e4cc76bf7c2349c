"""``edge tune``'s table: the figures that decide, in at most 120 columns.

The schedules are listed under the table (a schedule can be long); the rest of the figures
(errors without the fallback, extra load, canary requests, the closed form, every check) are in
``--json``.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge.tune.intervals import Estimate
from edge.tune.power import PowerResult
from edge.tune.results import CandidateResult, EngineUse, TuneResult

WIDTH = 120
TOO_FEW = "too few replications"


def _console() -> Console:
    """A terminal's width up to ``WIDTH``; ``WIDTH`` into a file or pipe, so saved tables do not wrap."""
    return Console(width=min(Console().width, WIDTH)) if sys.stdout.isatty() else Console(width=WIDTH)


def _number(x: float) -> str:
    return f"{x:.1f}" if abs(x) < 10 else f"{x:,.0f}"


def _percent(x: float) -> str:
    return f"{x:.1%}" if 0 < x < 0.1 else f"{x:.0%}"


def shown(e: Estimate, unit: str = "", percent: bool = False) -> str:
    """"12 (8.5–17) s", "100% (95–100%)", or "too few replications" without an interval."""
    if e.value is None:
        return "—"
    if e.low is None or e.high is None:
        return TOO_FEW
    if percent:
        return f"{_percent(e.value)} [dim]({_percent(e.low)[:-1]}–{_percent(e.high)})[/dim]"
    return f"{_number(e.value)}{unit} [dim]({_number(e.low)}–{_number(e.high)})[/dim]"


def _verdict(index: int, c: CandidateResult, result: TuneResult) -> str:
    if index == result.recommended:
        return "[bold green]★ recommended[/bold green]" if result.decided else "[bold]★ leading[/bold]"
    if c.dropped is not None:
        return f"[red]{escape(c.dropped)}[/red]" if c.dropped.startswith("fails") else escape(c.dropped)
    if c.paused is not None:
        return f"paused: {escape(c.paused)}"
    return "passes" if all(check.status == "passes" for check in c.checks) else "open"


def print_table(result: TuneResult, console: Console | None = None) -> None:
    console = _console() if console is None else console
    table = Table(
        title=f"edge tune: {result.scenario}, rollout of {result.service}: {result.replications} replications in "
        f"{result.rounds} round(s) ({result.budget}); {result.confidence:.0%} intervals",
        title_justify="left",
    )
    for column in ("#", "reps", "bad: caught", "time to rollback", "errors seen", "good: false rollback", "rollout time", "verdict"):
        table.add_column(column, justify="right" if column not in ("#", "verdict") else "left")
    for index, c in enumerate(result.candidates):
        table.add_row(
            str(index), str(c.replications), shown(c.caught, percent=True), shown(c.time_to_rollback_s, " s"),
            shown(c.errors_seen), shown(c.false_rollback, percent=True), shown(c.rollout_time_s, " s"),
            _verdict(index, c, result),
        )
    console.print(table)
    for index, c in enumerate(result.candidates):
        console.print(f"  #{index}  {escape(c.schedule)}")
    console.print(engine_line(result.engine))
    limits = ", ".join(check.limit for check in result.candidates[0].checks if not check.limit.startswith("rollout time"))
    if result.decided:
        if result.recommended is None:
            console.print(f"[bold red]no schedule meets the limits[/bold red] ({limits}): decided")
        else:
            console.print(f"recommended: [bold]#{result.recommended}[/bold], decided: it surely meets every limit "
                          f"({limits}) and is surely the fastest of those left")
        return
    why = "the budget is spent" if result.stopped == "budget" else "fixed replications"
    if result.recommended is None:
        console.print(f"[bold red]no schedule meets the limits[/bold red] ({limits}) on the estimates; not decided ({why})")
    else:
        console.print(f"leading: [bold]#{result.recommended}[/bold], on the estimates; not decided ({why}). Open:")
    for line in result.undecided:
        console.print(f"  {escape(line)}")


def engine_line(engine: EngineUse) -> str:
    """"engine: 762 simulations batched (P(requests meet) <= 0.00029, 0 fell back), 0 per request"."""
    batched = f"{engine.batched:,} simulations batched"
    if engine.batched or engine.fell_back:
        batched += f" (P(requests meet) <= {engine.coupling_bound:.2g}, {engine.fell_back} fell back)"
    why = f": {escape('; '.join(engine.why_per_request))}" if engine.why_per_request else ""
    return f"engine: {batched}, {engine.per_request:,} per request{why}"


def print_power_table(result: PowerResult, console: Console | None = None) -> None:
    """P(caught) per schedule and bug (points only: the intervals are in ``--json`` and the plot),
    false rollbacks, and the smallest bug caught at the target."""
    console = _console() if console is None else console
    table = Table(
        title=f"edge tune --power: {result.scenario}, rollout of {result.service}: {result.replications} replications per point; "
        f"P(caught) as the {result.kind} bug grows",
        title_justify="left",
    )
    table.add_column("#")
    for point in result.curves[0].points:
        table.add_column(escape(point.bug), justify="right")
    for column in ("false rollback", f"caught ≥ {result.target:.0%} from", f"surely ({result.confidence:.0%})"):
        table.add_column(column, justify="right")
    for index, curve in enumerate(result.curves):
        cells = [_percent(p.caught.value) if p.caught.value is not None else "—" for p in curve.points]
        table.add_row(str(index), *cells, shown(curve.false_rollback, percent=True),
                      escape(curve.smallest_caught or "none"), escape(curve.smallest_surely_caught or "none"))
    console.print(table)
    for index, curve in enumerate(result.curves):
        console.print(f"  #{index}  {escape(curve.schedule)}")
    console.print(engine_line(result.engine))
