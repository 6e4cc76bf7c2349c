"""Output that fits the terminal: lines broken only between whole values, tables that drop their
least needed columns instead of cutting a figure, and piped output left whole; the run summary
read at 80 and 120 columns."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from edge.engine.simulate import simulate
from edge.platform.units import format_duration
from edge.report.build import SUMMARY_PRIORITY, build_report, print_summary
from edge.report.terminal import Column, clauses, fitted, print_parts
from edge.scenario.load import load


def lines_of(console: Console) -> list[str]:
    return console.export_text().splitlines()


def test_clauses_join_with_commas_within_a_group_and_semicolons_between():
    assert clauses(["a 1", "b 2"], [], ["c 3"]) == ["a 1,", "b 2;", "c 3"]


@pytest.mark.parametrize("width, lines", [(16, ["p50 1ms, p99 2ms"]), (17, ["p50 1ms, p99 2ms"]), (15, ["p50 1ms,", "  p99 2ms"])],
                         ids=["exactly fits", "one over", "one column short"])
def test_a_line_breaks_only_between_parts_and_only_when_it_does_not_fit(width, lines):
    """"p50 1ms, p99 2ms" is 16 columns: broken, p99 stays with its 2ms."""
    console = Console(width=width, record=True)
    print_parts(console, ["p50 1ms,", "p99 2ms"])
    assert lines_of(console) == lines


def test_markup_does_not_count_towards_the_width():
    console = Console(width=16, record=True)
    print_parts(console, ["[bold]p50 1ms,[/bold]", "[red]p99 2ms[/red]"])
    assert lines_of(console) == ["p50 1ms, p99 2ms"]


def test_a_console_that_does_not_wrap_gets_the_whole_line():
    console = Console(width=10, record=True, soft_wrap=True)
    print_parts(console, ["p50 1ms,", "p99 2ms,", "max 9ms"])
    assert lines_of(console) == ["p50 1ms, p99 2ms, max 9ms"]


def fitted_text(width: int, columns: list[Column]) -> tuple[str, list[str]]:
    console = Console(width=width, record=True)
    table, left_out = fitted("", columns, width)
    console.print(table)
    return console.export_text(), left_out


COLUMNS = [Column("environment", ["app@production", "app@canary"], 0, "left"), Column("requests", ["12,345", "678"], 2),
           Column("p99", ["2.5ms", "15.2ms"], 1)]
NATURAL = 38  # the widest words, 14 + 8 + 6, and 3 x 3 + 1 of borders and padding


@pytest.mark.parametrize("width, dropped", [(NATURAL, []), (NATURAL + 1, []), (NATURAL - 1, ["requests"])],
                         ids=["exactly fits", "one over", "one short"])
def test_a_table_leaves_out_its_least_needed_column_only_when_it_does_not_fit(width, dropped):
    text, left_out = fitted_text(width, COLUMNS)
    assert left_out == dropped
    assert "…" not in text and ("12,345" in text) is not bool(dropped) and "15.2ms" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width


@pytest.fixture(scope="module")
def report():
    return build_report(simulate(load("scenarios/bad-canary.toml"), seed=7, duration=120.0))


@pytest.mark.parametrize("width", [80, 120])
def test_the_run_summary_fits_the_terminal_without_cutting_a_value(report, width):
    console = Console(width=width, record=True)
    print_summary(report, console)
    text = console.export_text()
    assert "…" not in text  # rich's mark of a cut cell
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), width
    for label in ("p50", "p99", "max", "retries", "shed", "CPU limit exceeded"):  # never a label at a line's end
        assert not re.search(rf"\b{label}\s*$", text, re.MULTILINE), label
    c = report.clients
    assert f"{c.requests:,} requests" in text and f"{c.errors:,} errors" in text


def test_a_narrow_summary_says_which_columns_it_left_out(report):
    wide, narrow = Console(width=120, record=True), Console(width=80, record=True)
    print_summary(report, wide)
    print_summary(report, narrow)
    assert "not shown" not in wide.export_text()
    text = narrow.export_text()
    note = re.search(r"not shown at 80 columns: (.*?) \(a wider", " ".join(text.split()))
    left_out = note.group(1).split(", ")
    assert left_out == list(reversed(SUMMARY_PRIORITY))[:len(left_out)] and left_out  # the least needed, first
    header = next(line for line in text.splitlines() if "environment" in line)
    assert all(name not in header.split("┃") for name in left_out)


def test_a_piped_summary_keeps_every_line_whole(report):
    console = Console(width=160, soft_wrap=True, record=True)
    print_summary(report, console)
    [clients] = [line for line in console.export_text().splitlines() if line.startswith("clients:")]
    assert clients.endswith(f"p99 {format_duration(report.clients.cpu_per_request_s.p99)}")
