"""docs/scenario-fields.md: generated from the scenario's Structs, up to date, naming every field."""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path

import msgspec

from edge.scenario.schema import Environment, Meta, Model, Scenario, Service, ThresholdRule

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scenario-fields.md"


def generator():
    spec = importlib.util.spec_from_file_location("generate_fields", ROOT / "docs" / "generate_fields.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def scenario_structs() -> set[type]:
    """Every Struct a scenario file can hold, found from the type hints (not as the generator does)."""
    found: set[type] = set()

    def visit(hint: object) -> None:
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            if hint not in found:
                found.add(hint)
                for h in typing.get_type_hints(hint, include_extras=True).values():
                    visit(h)
            return
        for arg in typing.get_args(hint):
            visit(arg)

    visit(Scenario)
    return found


def test_the_fields_document_is_what_the_generator_writes_now():
    assert DOC.read_text() == generator().render(), "run: python docs/generate_fields.py"


def test_every_field_of_every_scenario_table_is_documented_under_its_table():
    text = DOC.read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    structs = scenario_structs()
    assert {Scenario, Meta, Service, Environment, Model, ThresholdRule} <= structs
    for cls in structs:
        assert cls.__name__ in sections, cls
        for field in msgspec.structs.fields(cls):
            row = next((line for line in sections[cls.__name__].splitlines() if line.startswith(f"| `{field.encode_name}` |")), None)
            assert row is not None, f"{cls.__name__}.{field.name}"
            assert row.rstrip().removesuffix("|").rsplit("|", 1)[1].strip(), f"{cls.__name__}.{field.name} has no meaning: a docstring under the field"


def test_drain_is_explained_and_the_readme_links_the_fields():
    meta = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", DOC.read_text(), re.M | re.S))["Meta"]
    drain = next(line for line in meta.splitlines() if line.startswith("| `drain` |"))
    assert '`"30s"`' in drain and "20s + drain" in drain and "never answered" in drain
    assert "docs/scenario-fields.md" in (ROOT / "README.md").read_text()


def test_edge_fields_prints_the_reference_a_table_or_a_field_and_refuses_an_unknown_name(capsys):
    """pip users lack docs/: `edge fields` prints the same reference from the installed package."""
    import subprocess
    import sys

    from edge import cli

    def fields(*args: str) -> subprocess.CompletedProcess:
        """The command run in this process (a Python start each costs a second): the command line
        itself is run once, below."""
        code = cli.main(["fields", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["edge", "fields", *args], code, out, err)

    whole = subprocess.run([sys.executable, "-m", "edge.cli", "fields"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert whole.returncode == 0 and whole.stdout == DOC.read_text()
    assert fields().stdout == whole.stdout
    field = fields("arrivals")  # a field: every table that has it, with its type, default and meaning
    assert field.returncode == 0 and field.stdout.startswith("[Traffic]\n  arrivals: arrivals (\"poisson(500/s)\"")
    assert "poisson(RATE) or constant(RATE)" in field.stdout
    table = fields("stage")  # a table, any case: all its fields
    assert table.returncode == 0 and table.stdout.splitlines()[0] == "[Stage]"
    assert [line.split(":")[0].strip() for line in table.stdout.splitlines() if line.startswith("  ") and not line.startswith("    ")] == ["duration", "rate"]
    model = fields("model")  # a struct type shows its table's name, without the document's link
    assert "](#" not in model.stdout
    unknown = fields("arrivalz")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("edge: error: no table or field called 'arrivalz': tables are Scenario, ")
