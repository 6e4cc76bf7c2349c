"""Output that fits the terminal it is read in, without cutting a value.

Left to itself, rich wraps a long line at any space (parting "p99" from its "2.31ms") and shrinks
a table too wide for the terminal column by column, cropping what no longer fits with "…" (an
interval's bound became ``(9.4–99…``). Here a line breaks only between whole parts, and a table
gives every column at least its widest word (a cell wraps only at its spaces: between a value and
its interval, never inside either); when those widths do not fit, the least important columns are
left out (and named: their figures are in ``--json``) rather than any value cut. Piped output (a
console with ``soft_wrap``) is left whole, so logs keep their lines.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_parts(console: Console, parts: Sequence[str], *, indent: str = "  ") -> None:
    """One line of ``parts`` (rich markup, each ending in its own punctuation) joined by spaces,
    broken only between parts when it does not fit: "p99" never ends a line whose next starts
    with "2.31ms". A part wider than the console alone overflows rather than breaks."""
    if console.soft_wrap:
        console.print(" ".join(parts))
        return
    lines = [parts[0]]
    for part in parts[1:]:
        if Text.from_markup(f"{lines[-1]} {part}").cell_len <= console.width:
            lines[-1] += f" {part}"
        else:
            lines.append(indent + part)
    for line in lines:
        console.print(line, soft_wrap=True)


def clauses(*groups: Sequence[str]) -> list[str]:
    """The parts of ``groups`` for ``print_parts``: commas within a group, semicolons between."""
    kept = [group for group in groups if group]
    parts = []
    for g, group in enumerate(kept):
        for i, part in enumerate(group):
            parts.append(part + ("," if i < len(group) - 1 else ";" if g < len(kept) - 1 else ""))
    return parts


class Column(NamedTuple):
    header: str
    cells: list[str]
    """Rich markup."""
    priority: int
    """Lower is kept longer, and widened first."""
    justify: Literal["left", "right"] = "right"
    unbroken: tuple[str, ...] = ()
    """Phrases of a cell kept on one line ("★ leading")."""


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def _widths(column: Column) -> tuple[int, int, int]:
    """(the widest word of the header and cells, the widest cell, that or the header if wider)."""
    words = [word for text in (column.header, *column.cells) for word in _plain(text).split()]
    widest_word = max(map(cell_len, [*words, *column.unbroken]), default=1)
    widest_cell = max([widest_word, *(cell_len(line) for cell in column.cells for line in _plain(cell).splitlines())])
    return widest_word, widest_cell, max(widest_cell, cell_len(_plain(column.header)))


def fitted(title: str, columns: list[Column], width: int) -> tuple[Table, list[str]]:
    """The table, at most ``width`` columns wide, and the headers of the columns left out."""
    shown = list(columns)
    dropped: list[str] = []
    # A box table takes a border between and around the columns, and a space each side of a cell.
    def room() -> int:
        return width - (3 * len(shown) + 1)

    while len(shown) > 1 and sum(_widths(c)[0] for c in shown) > room():
        least = max(shown, key=lambda c: c.priority)
        shown.remove(least)
        dropped.append(least.header)
    lows, cells, headers = zip(*map(_widths, shown))
    widths = list(lows)
    spare = room() - sum(widths)
    # What is left unwraps the most important columns' cells first, then their headers.
    for wanted in (cells, headers):
        for i in sorted(range(len(shown)), key=lambda i: shown[i].priority):
            given = max(0, min(spare, wanted[i] - widths[i]))
            widths[i] += given
            spare -= given
    table = Table(title=title, title_justify="left")
    for column, column_width in zip(shown, widths):
        table.add_column(column.header, justify=column.justify, width=column_width)
    for row in zip(*(c.cells for c in shown)):
        table.add_row(*row)
    return table, dropped


def left_out(dropped: list[str], width: int) -> str | None:
    """The line under a table that ``fitted`` left columns out of, naming them."""
    return f"not shown at {width} columns: {', '.join(dropped)} (a wider terminal shows them; --json has every figure)" if dropped else None
