"""A rollout's state for the terminal: what ``edge rollout status`` prints, read from a running
``edge serve`` (``GET /rollouts``) the way ``kubectl argo rollouts get`` reads a cluster."""

from __future__ import annotations

from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape

from edge.engine.rollout import RolloutReport
from edge.platform.units import format_duration
from edge.report.terminal import clauses, print_parts

HISTORY = 8
"""The last events shown; ``--json`` has them all."""

COLOURS = {"promoted": "green", "rolled back": "red", "paused": "yellow"}


def decode(data: Any) -> RolloutReport:
    """A rollout as the admin API sends it (``RolloutReport`` as JSON builtins)."""
    return msgspec.convert(data, RolloutReport)


def print_rollout(console: Console, service: str, r: RolloutReport) -> None:
    colour = COLOURS.get(r.phase, "cyan")
    at = "not started" if r.step == 0 else f"step {r.step} of {r.steps}"
    ended = "" if r.ended_at_s is None else f" at {format_duration(r.ended_at_s)}"
    print_parts(console, clauses(
        [f"[bold]{escape(service)}[/bold]: [{colour}]{r.phase}{ended}[/{colour}]", at, f"{escape(r.canary)} at {r.weight:g}%",
         f"against {escape(r.stable)}"],
        [f"failed analyses {r.failures} (rolls back at {r.failure_limit})", f"{r.steps_passed} steps passed"],
        [f"{r.canary_requests:,} canary answers", f"{r.canary_errors:,} errors"],
    ))
    analyses = [e for e in r.events if e.checks]
    if analyses:
        last = analyses[-1]
        print_parts(console, [f"  last analysis at {format_duration(last.at_s)}: {last.event}", *(
            f"{'✓' if c.passed else '✗'} {escape(c.shown())}" + ("," if i < len(last.checks) - 1 else "") for i, c in enumerate(last.checks))],
            indent="    ")
    shown = r.events[-HISTORY:]
    if len(r.events) > len(shown):
        console.print(f"  [dim]… {len(r.events) - len(shown)} earlier events (--json for all)[/dim]")
    for e in shown:
        first, *rest = clauses(*([escape(part)] for part in e.detail.split("; ")))
        print_parts(console, [f"  [cyan]{format_duration(e.at_s):>8}[/cyan]  {e.event} ({e.weight:g}%):" + (f" {first}" if first else ""), *rest],
                    indent=" " * 12)
