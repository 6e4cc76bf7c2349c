"""The tests and benchmarks that docs/conformance.md and docs/reliability.md point at exist.

A row's evidence is its test: a renamed or deleted test would leave the row pointing at nothing.
A bare `test_name` in a cell belongs to the last `tests/FILE.py` named before it in that cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["docs/conformance.md", "docs/reliability.md"]
REFERENCE = re.compile(r"`((?:tests|benchmarks)/[\w/]+\.py)(?:::(\w+))?[^`]*`|`(test_\w+)[^`]*`")


def references(doc: str) -> list[tuple[str, str | None]]:
    """(file, test name or None) for each reference in ``doc``."""
    found = []
    for line in (ROOT / doc).read_text().splitlines():
        for cell in line.split("|"):
            current = None
            for match in REFERENCE.finditer(cell):
                path, name, bare = match.groups()
                if path is not None:
                    current = path
                    found.append((path, name))
                else:  # a bare name needs a file before it in its cell
                    found.append((current or "(no file named in its cell)", bare))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_and_benchmark_a_doc_points_at_exists(doc):
    refs = references(doc)
    assert len(refs) > 20, refs  # the pattern still finds the doc's references
    missing = []
    for path, name in refs:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name is not None and not re.search(rf"^(?:async )?def {name}\(", file.read_text(), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert not missing


def test_the_readmes_command_table_writes_an_optional_scenario_in_brackets_as_the_parser_has_it():
    """`edge check` takes the bundled scenario when none is given; the table said SCENARIO was
    required. Each command's SCENARIO is written as the parser takes it: [SCENARIO] when optional."""
    import argparse

    from edge import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    commands = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, sub in commands.choices.items():
        scenario = next((a for a in sub._actions if a.dest == "scenario"), None)
        row = re.search(rf"^\| `edge {name} ([^`]*)`", readme, re.M)
        if scenario is None or row is None:
            continue
        written = "[SCENARIO]" if scenario.nargs == "?" else "SCENARIO"
        assert row.group(1).startswith(written), f"edge {name}: the README writes {row.group(1)!r}, the parser takes {written}"
        checked += 1
    assert checked >= 5  # run, tune, check, graph, serve


def test_the_interval_help_says_what_the_series_does():
    """The help said "about 100 points" where the series takes the smallest round interval giving
    at most 120 (the README's words)."""
    from edge import cli
    from edge.metrics.series import TARGET_POINTS

    help_text = cli.parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert f"at most {TARGET_POINTS} points" in " ".join(help_text.split())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"at most {TARGET_POINTS} points" in readme
