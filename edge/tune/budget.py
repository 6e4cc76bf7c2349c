"""What bounds an ``edge tune`` run: replications per schedule, wall time, or a fixed count.

Light on purpose: the command parses ``--budget`` with it before anything heavy is imported.
"""

from __future__ import annotations

import msgspec

from edge.platform.units import format_duration
from edge.scenario.values import Duration


class Budget(msgspec.Struct, frozen=True):
    """At most ``replications`` per schedule, or at most ``seconds`` of wall time (checked between
    rounds), or exactly ``fixed`` replications per schedule in one round (no early stop)."""

    replications: int | None = None
    seconds: float | None = None
    fixed: int | None = None

    def __str__(self) -> str:
        if self.fixed is not None:
            return f"fixed {self.fixed} replications"
        if self.seconds is not None:
            return f"wall time {format_duration(self.seconds)}"
        return f"{self.replications} replications"


def parse_budget(text: str) -> Budget:
    """``--budget``: a whole number is replications per schedule ("200"), a duration is wall time
    ("5m", "1h30m"), as the scenario's durations are written."""
    if text.strip().isdigit():
        count = int(text)
        if count < 1:
            raise ValueError(f"expected at least 1 replication, got {text!r}")
        return Budget(replications=count)
    try:
        seconds = Duration(text).seconds
    except ValueError as exc:
        raise ValueError(f'expected a number of replications ("200") or a wall time ("5m"): {exc}') from None
    if seconds <= 0:
        raise ValueError(f"expected a wall time above zero, got {text!r}")
    return Budget(seconds=seconds)
