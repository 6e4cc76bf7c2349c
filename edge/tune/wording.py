"""The words and numbers ``edge tune`` answers in, for the table, the plot and the progress lines
alike: drawn from one place, they cannot call one result "recommended" in the plot and "leading,
not decided" in the table. A schedule is *recommended* only once the answer is decided; before,
the fastest meeting the limits on the estimates is *leading*.
"""

from __future__ import annotations

from typing import Literal

from edge.tune.intervals import Estimate
from edge.tune.results import TuneResult

Kind = Literal["lead", "fails", "dropped", "paused", "passes", "open"]


def number(x: float) -> str:
    return f"{x:.1f}" if abs(x) < 10 else f"{x:,.0f}"


def percent(x: float) -> str:
    """One decimal below 10% ("6.2%"), none above; under 0.05% (an interval's lower bound a hair
    above 0) is "0%", not "0.0%"."""
    return f"{x:.1%}" if 0.0005 <= x < 0.1 else f"{x:.0%}"


def value(e: Estimate, unit: str = "", as_percent: bool = False) -> str:
    """"12 s", "95%", or "—" when nothing was measured."""
    if e.value is None:
        return "—"
    return percent(e.value) if as_percent else f"{number(e.value)}{unit}"


def interval(e: Estimate, as_percent: bool = False) -> str | None:
    """"(8.5–17)", "(95–100%)", or None with too few replications for one."""
    if e.low is None or e.high is None:
        return None
    return f"({percent(e.low)[:-1]}–{percent(e.high)})" if as_percent else f"({number(e.low)}–{number(e.high)})"


def lead(result: TuneResult) -> str:
    return "recommended" if result.decided else "leading"


def verdict(index: int, result: TuneResult) -> tuple[str, Kind]:
    """A schedule's verdict (the table's last column, the plot's point label) and what kind it is."""
    c = result.candidates[index]
    if index == result.recommended:
        return f"★ {lead(result)}", "lead"
    if c.dropped is not None:
        return c.dropped, "fails" if c.dropped.startswith("fails") else "dropped"
    if c.paused is not None:
        return f"paused: {c.paused}", "paused"
    if all(check.status == "passes" for check in c.checks):
        return "passes", "passes"
    return "open", "open"


def answer(result: TuneResult) -> str:
    """The answer in one sentence: under the table, and the plot's caption."""
    limits = ", ".join(check.limit for check in result.candidates[0].checks if not check.limit.startswith("rollout time"))
    if result.decided:
        if result.recommended is None:
            return f"no schedule meets the limits ({limits}): decided"
        return (f"recommended: #{result.recommended}, decided: it surely meets every limit ({limits}) "
                "and is surely the fastest of those left")
    why = "the budget is spent" if result.stopped == "budget" else "fixed replications"
    if result.recommended is None:
        return f"no schedule meets the limits ({limits}) on the estimates; not decided ({why})"
    return f"leading: #{result.recommended}, on the estimates; not decided ({why})"
