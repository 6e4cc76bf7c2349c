"""``edge init``: a new project that runs as it is, to edit from there.

A project is a folder of plain files, nothing linked into the installed package: the scenario
(``scenario.toml``), copies of the worker modules it names (``workers/``), a README stub and a
``.gitignore`` for what runs write. Copying or moving the folder keeps it working, which a project
made of symlinks into ``site-packages`` (the old ``scenarios/workers``) did not.

Nothing is replaced: every file is checked before the first is written, so a refusal leaves the
folder as it was.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge.platform.files import OutputError, check_directory, write_output

BUNDLED = Path(__file__).resolve().parent.parent / "bundled"
TEMPLATES = {
    "seed-chain": BUNDLED / "default.toml",  # what `edge run` runs with no scenario
    "gateway": BUNDLED / "templates" / "gateway.toml",  # a gateway coded as a worker
    "api-gateway": BUNDLED / "templates" / "api-gateway.toml",  # seed 004: a gateway configured, not coded
    "canary": BUNDLED / "templates" / "canary.toml",
}
DEFAULT_TEMPLATE = "seed-chain"

_GITIGNORE = """\
# what `edge run --json/--plots/--openmetrics` and `edge backfill` write
*.json
*.om
plots/
data/
"""

_README = """\
# {name}

Made by `edge init --template {template}`. A simulated edge platform, Cloudflare-Workers style:

- `scenario.toml`: the services, their routes, bindings, models and traffic (every field is
  described by `edge fields`, one table or field by `edge fields NAME`, e.g. `edge fields arrivals`);
- `workers/*.py`: the code workers, written as Cloudflare's Python Workers are (`from workers import
  WorkerEntrypoint, Response`; `class Default(WorkerEntrypoint)` with `async def fetch(self, request)`).

Run it in virtual time (seconds for minutes of traffic; exit 1 if a threshold fails):

    edge run scenario.toml
    edge run scenario.toml --json report.json --plots plots/

Serve it live over HTTP (ingress on :8787, /metrics, an admin API):

    edge serve scenario.toml
{try_it}

Check it without running it: `edge check scenario.toml`; see who calls whom: `edge graph scenario.toml`.
"""


_TRY_IT = {
    None: """    curl -H 'host: example.com' -H "x-custom-token: $TOKEN" http://127.0.0.1:8787/

(`$TOKEN`: auth's `SECRET_TOKEN` in scenario.toml; without it the gateway answers 403.)""",
    "api-gateway": """    curl -H 'host: api.example.com' -H 'authorization: Bearer k-7d41c0e2' http://127.0.0.1:8787/orders/42

(the key is hooks's `API_KEY` in scenario.toml: without it the gateway's pre_process hook answers
401; a path or method no `paths` entry has is 404 `{"message": "No match found."}`.)""",
}
"""How to try a served project with curl, by template (None: the gateway chains')."""


def project_files(template: str) -> dict[str, bytes]:
    """The files of a new project, by path relative to its folder."""
    scenario = TEMPLATES[template]
    files = {"scenario.toml": scenario.read_bytes()}
    for worker in _workers_named(tomllib.loads(scenario.read_text())):
        files[worker] = (BUNDLED / worker).read_bytes()
    files["README.md"] = _README.format(name=template, template=template, try_it=_TRY_IT.get(template, _TRY_IT[None])).encode()
    files[".gitignore"] = _GITIGNORE.encode()
    return files


def _workers_named(spec: dict[str, Any]) -> list[str]:
    """The worker modules a template's services and environments name (``workers/NAME.py``)."""
    named = set()
    for service in spec.get("services", []):
        for table in [service, *service.get("environments", {}).values()]:
            if "worker" in table:
                named.add(table["worker"])
    return sorted(named)


def write_project(directory: str | Path, template: str) -> list[Path]:
    """Write the template's project into ``directory`` (created if missing); the paths written.

    Raises OutputError naming the first file that already exists, before writing anything."""
    directory = Path(directory)
    files = {directory / name: data for name, data in project_files(template).items()}
    for path in files:
        if path.exists() or path.is_symlink():
            raise OutputError(f"{path}: exists; edge init never replaces a file (choose another folder)")
    check_directory(directory)
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_output(path, data)
    return list(files)
