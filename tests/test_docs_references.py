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
