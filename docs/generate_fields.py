"""Write docs/scenario-fields.md: every field of the scenario file, from the schema itself.

The reference is rendered by ``edge.scenario.fields`` (also what ``edge fields`` prints);
tests/test_scenario_fields.py checks the file is what this script writes now and that it names
every field.

    python docs/generate_fields.py          # rewrite the file
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.scenario.fields import render  # noqa: E402

OUTPUT = ROOT / "docs" / "scenario-fields.md"

if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(OUTPUT)
