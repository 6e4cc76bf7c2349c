"""Scenario files for the tests, composed from small parts instead of written out again in each file.

Each part is the table it stands for, as a dict (the fields are docs/fields.md's); ``compose``
joins them into TOML text (tomli_w), and ``write`` / ``load`` put that text, and the workers it
names, in a folder::

    toml = compose(service("api", model={"latency": "2ms"}), traffic=[traffic("constant(100/s)", "https://api.test/")],
                   name="t", duration="10s")
    loaded = load(tmp_path, toml)

Only what a part is given is written: a field left out takes the schema's default, as it does in
a file. A test *about* the text itself (an error naming a line, a docs example) keeps its literal
TOML, and ``write`` / ``load`` take that text as well.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import tomli_w

from edge.scenario import load as scenario_load
from edge.scenario.resolved import LoadedScenario

PUBLIC: Any = object()
"""``service``'s default routes: ``["NAME.test/*"]``."""


def service(name: str = "app", *, routes: Any = PUBLIC, **fields: Any) -> dict[str, Any]:
    """A ``[[services]]`` table: public at ``NAME.test/*`` unless ``routes`` says otherwise
    (``None``: no routes, a service reached only through bindings); any other field as given
    (``worker``, ``model``, ``environments``, ``split``, ``rollout``, ``bindings``, ``vars``...)."""
    table: dict[str, Any] = {"name": name}
    if routes is PUBLIC:
        routes = [f"{name}.test/*"]
    if routes is not None:
        table["routes"] = list(routes)
    return table | {key: value for key, value in fields.items() if value is not None}


def canary_service(
    name: str = "app",
    *,
    production: dict[str, Any] | None = None,
    canary: dict[str, Any] | None = None,
    weight: float = 0,
    split: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A service with a ``production`` and a ``canary`` environment (their tables; the canary's is
    production's unless given), ``weight`` percent of its traffic sent to the canary (``split``
    adds the split's other fields: retry, affinity, override)."""
    production = {} if production is None else production
    return service(
        name,
        environments={"production": production, "canary": production if canary is None else canary},
        split={"weights": {"production": 100 - weight, "canary": weight}} | (split or {}),
        **fields,
    )


def traffic(arrivals: str | None = "constant(100/s)", url: str | None = "https://app.test/", **fields: Any) -> dict[str, Any]:
    """A ``[[traffic]]`` group sending ``arrivals`` to one ``url`` (``requests=[...]`` for several
    templates instead, ``url=None`` for none: a replay)."""
    table: dict[str, Any] = {}
    if arrivals is not None:
        table["arrivals"] = arrivals
    if url is not None and "requests" not in fields:
        table["requests"] = [{"url": url}]
    return table | {key: value for key, value in fields.items() if value is not None}


def compose(
    *services: dict[str, Any],
    traffic: list[dict[str, Any]] | tuple[()] = (),
    thresholds: list[Any] | tuple[()] = (),
    timeline: list[dict[str, Any]] | tuple[()] = (),
    tune: dict[str, Any] | None = None,
    **meta: Any,
) -> str:
    """The TOML text of a scenario: ``meta`` is its ``[scenario]`` table (name, duration, seed...)."""
    document: dict[str, Any] = {}
    if thresholds:
        document["thresholds"] = list(thresholds)
    meta = {key: value for key, value in meta.items() if value is not None}
    if meta:
        document["scenario"] = meta
    document["services"] = list(services)
    for key, value in (("traffic", traffic), ("timeline", timeline)):
        if value:
            document[key] = list(value)
    if tune is not None:
        document["tune"] = tune
    return tomli_w.dumps(document)


def write(folder: Path, toml: str, workers: dict[str, str] | None = None, *, file: str = "scenario.toml") -> Path:
    """``toml`` written to ``folder/file`` (created), with each worker's source beside it (dedented)."""
    path = folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, source in (workers or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(source))
    path.write_text(textwrap.dedent(toml))
    return path


def load(folder: Path, toml: str, workers: dict[str, str] | None = None, *, file: str = "scenario.toml") -> LoadedScenario:
    """``write``, then the scenario loaded."""
    return scenario_load.load(write(folder, toml, workers, file=file))
