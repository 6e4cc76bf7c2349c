"""``edge tune``'s table: the figures that decide, in the terminal's width (up to 120 columns).

A value is never cut: at 80 columns a cell wraps between a value and its interval, and the
columns that matter least are left out, and named, rather than any bound cropped (``fit``). The
schedules are listed under the table (a schedule can be long); the rest of the figures (errors
without the fallback, extra load, canary requests, the closed form, every check) are in ``--json``.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from edge.report.terminal import Column, fitted, left_out
from edge.tune.intervals import Estimate
from edge.tune.power import PowerResult
from edge.tune.results import EngineUse, TuneResult
from edge.tune.wording import Kind, answer, interval, percent, value, verdict

WIDTH = 120
TOO_FEW = "too few replications"
STYLES: dict[Kind, str] = {"lead": "bold", "fails": "red", "dropped": "", "paused": "", "passes": "", "open": ""}


def _console() -> Console:
    """A terminal's width up to ``WIDTH``; ``WIDTH`` into a file or pipe, so saved tables do not wrap."""
    return Console(width=min(Console().width, WIDTH)) if sys.stdout.isatty() else Console(width=WIDTH)


def shown(e: Estimate, unit: str = "", as_percent: bool = False) -> str:
    """"12 s (8.5–17)", "100% (95–100%)", or "too few replications" without an interval."""
    if e.value is None:
        return "—"
    bounds = interval(e, as_percent)
    return TOO_FEW if bounds is None else f"{value(e, unit, as_percent)} [dim]{bounds}[/dim]"


def _verdict(index: int, result: TuneResult) -> str:
    text, kind = verdict(index, result)
    style = "bold green" if kind == "lead" and result.decided else STYLES[kind]
    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)


def print_table(result: TuneResult, console: Console | None = None) -> None:
    console = _console() if console is None else console
    cs = result.candidates
    # Left out first when the width is short: what decides (the verdict, the limits, the rollout
    # time) stays; errors seen matters more when it is one of the limits.
    errors_rank = 4 if "errors_seen" in result.limits else 7
    columns = [
        Column("#", [str(i) for i in range(len(cs))], 0, "left"),
        Column("reps", [str(c.replications) for c in cs], 5),
        Column("bad: caught", [shown(c.caught, as_percent=True) for c in cs], 2),
        Column("time to rollback", [shown(c.time_to_rollback_s, " s") for c in cs], 6),
        Column("errors seen", [shown(c.errors_seen) for c in cs], errors_rank),
        Column("good: false rollback", [shown(c.false_rollback, as_percent=True) for c in cs], 2),
        Column("rollout time", [shown(c.rollout_time_s, " s") for c in cs], 3),
        Column("verdict", [_verdict(i, result) for i in range(len(cs))], 1, "left",
               () if result.recommended is None else (verdict(result.recommended, result)[0],)),
    ]
    title = (f"edge tune: {result.scenario}, rollout of {result.service}: {result.replications} replications in "
             f"{result.rounds} round(s) ({result.budget}); {result.confidence:.0%} intervals")
    table, dropped = fitted(title, columns, console.width)
    console.print(table)
    if note := left_out(dropped, console.width):
        console.print(note, style="dim")
    for index, c in enumerate(cs):
        console.print(f"  #{index}  {escape(c.schedule)}")
    console.print(engine_line(result.engine))
    style = "bold red" if result.recommended is None else "bold" if result.decided else ""
    console.print(Text(answer(result) + (". Open:" if result.undecided else ""), style=style))
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
    curves = result.curves
    # The answer's columns stay longest; of the bugs, the largest (caught by all, most often) go first.
    columns = [
        Column("#", [str(i) for i in range(len(curves))], 0, "left"),
        *(Column(escape(point.bug), [percent(c.points[g].caught.value) if c.points[g].caught.value is not None else "—" for c in curves],
                 4 + len(curves[0].points) - g)
          for g, point in enumerate(curves[0].points)),
        Column("false rollback", [shown(c.false_rollback, as_percent=True) for c in curves], 2),
        Column(f"caught ≥ {result.target:.0%} from", [escape(c.smallest_caught or "none") for c in curves], 1),
        Column(f"surely ({result.confidence:.0%})", [escape(c.smallest_surely_caught or "none") for c in curves], 3),
    ]
    title = (f"edge tune --power: {result.scenario}, rollout of {result.service}: {result.replications} replications per point; "
             f"P(caught) as the {result.kind} bug grows")
    table, dropped = fitted(title, columns, console.width)
    console.print(table)
    if note := left_out(dropped, console.width):
        console.print(note, style="dim")
    for index, curve in enumerate(curves):
        console.print(f"  #{index}  {escape(curve.schedule)}")
    console.print(engine_line(result.engine))
