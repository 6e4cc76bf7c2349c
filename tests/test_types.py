"""mypy --strict over the platform primitives, the scenario and the actors (pyproject's
[tool.mypy]): a type error there fails the suite, as a broken layer contract does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_core_packages_type_check_strictly():
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found" in checked.stdout


def test_strict_mode_covers_the_three_packages():
    import tomllib

    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert settings["strict"] is True and set(settings["files"]) == {"edge/platform", "edge/scenario", "actors"}
