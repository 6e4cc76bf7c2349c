"""The layer contracts of ``.importlinter``, checked by import-linter itself: a module that imports
upwards (an actor importing the engine, the platform importing a scenario) fails this test."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    # Next to this interpreter first: the venv's script, whether or not the venv is activated.
    lint = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports is missing: install the test extras (pip install '.[test]')"
    proc = subprocess.run([lint, "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KEPT" in proc.stdout and "BROKEN" not in proc.stdout
