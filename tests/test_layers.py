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


PACKAGES = ("edge.platform", "edge.scenario", "edge.metrics", "actors", "edge.engine", "edge.live", "edge.report", "edge.tune")


def cycles_inside(graph, package: str) -> tuple[str, ...] | None:
    """An import cycle among the modules of ``package`` (one, as the modules that form it), or None.
    Imports under ``TYPE_CHECKING`` are not counted: no code runs there."""
    import graphlib

    modules = {m for m in graph.modules if m.startswith(package + ".")}
    imports = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    try:
        tuple(graphlib.TopologicalSorter(imports).static_order())
    except graphlib.CycleError as exc:
        return tuple(exc.args[1])
    return None


def test_no_package_has_an_import_cycle():
    """Every package, not only those with a layers contract (engine, actors, scenario): a cycle
    hidden by a function-level import counts (grimp reads every import statement)."""
    import grimp

    graph = grimp.build_graph("edge", "actors", exclude_type_checking_imports=True, cache_dir=None)
    assert {package: cycles_inside(graph, package) for package in PACKAGES} == dict.fromkeys(PACKAGES)


def test_a_cycle_made_by_a_function_level_import_is_found(tmp_path, monkeypatch):
    import grimp

    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def later():\n    from cyclic import a  # the way config.py and checks.py hid theirs\n")
    (package / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic", exclude_type_checking_imports=True, cache_dir=None)
    assert sorted(set(cycles_inside(graph, "cyclic"))) == ["cyclic.a", "cyclic.b"]
    (package / "b.py").write_text("def later():\n    pass\n")
    assert cycles_inside(grimp.build_graph("cyclic", cache_dir=None), "cyclic") is None
