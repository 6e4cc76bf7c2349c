"""``edge init``: a project that runs as written, anywhere it is copied, and replaces nothing.

Also the repository's own ``scenarios/``: real files (a copy of the folder works), kept byte-equal
to the package's bundled ones so the two cannot drift."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.scenario.templates import TEMPLATES
from live import ROOT, exchange, serve, status_of

BUNDLED = ROOT / "edge" / "bundled"


def edge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_init_writes_a_project_that_runs_once_copied_elsewhere(tmp_path: Path, template: str) -> None:
    made = edge("init", "project", "--template", template, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    written = tree(tmp_path / "project")
    workers = {"api-gateway": ["api_hooks.py", "api_orders.py"]}.get(template, ["gateway.py", "auth.py"])
    assert set(written) == {"scenario.toml", "README.md", ".gitignore", *(f"workers/{name}" for name in workers)}
    assert not any(p.is_symlink() for p in (tmp_path / "project").rglob("*"))
    for name in workers:
        assert written[f"workers/{name}"] == (BUNDLED / "workers" / name).read_bytes()
    assert written["scenario.toml"] == TEMPLATES[template].read_bytes()
    assert b"edge run scenario.toml" in written["README.md"] and b"edge serve scenario.toml" in written["README.md"]

    # What a newcomer does next: move the folder somewhere else and run it, with its own duration.
    moved = tmp_path / "elsewhere" / "mine"
    shutil.copytree(tmp_path / "project", moved)
    shutil.rmtree(tmp_path / "project")
    ran = edge("run", "scenario.toml", cwd=moved)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "✓ pass" in ran.stdout and "✗" not in ran.stdout


def test_init_project_serves_real_http(tmp_path: Path) -> None:
    assert edge("init", "p", "--template", "gateway", cwd=tmp_path).returncode == 0
    with serve(str(tmp_path / "p" / "scenario.toml")) as served:
        allowed = exchange(served.port, b"GET / HTTP/1.1\r\nHost: example.com\r\nx-custom-token: change-me\r\nConnection: close\r\n\r\n")
        denied = exchange(served.port, b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    assert status_of(allowed) in (200, 500)  # app's model fails 0.1% of answers
    assert status_of(denied) == 403 and b"not allowed" in denied


def test_the_api_gateway_template_is_seed_004_and_its_readme_curl_is_answered(tmp_path: Path) -> None:
    """`--template gateway` is a gateway coded as a worker; the seed's API gateway, configured and
    not coded, is `--template api-gateway`: its project's README says how to call it, and that call
    is answered (the gateway's JSON envelope), without the key 401 and on no entry 404."""
    assert edge("init", "p", "--template", "api-gateway", cwd=tmp_path).returncode == 0
    readme = (tmp_path / "p" / "README.md").read_text()
    assert "curl -H 'host: api.example.com' -H 'authorization: Bearer k-7d41c0e2' http://127.0.0.1:8787/orders/42" in readme
    with serve(str(tmp_path / "p" / "scenario.toml")) as served:
        order = exchange(served.port, b"GET /orders/42 HTTP/1.1\r\nHost: api.example.com\r\nauthorization: Bearer k-7d41c0e2\r\nConnection: close\r\n\r\n")
        keyless = exchange(served.port, b"GET /orders/42 HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
        nowhere = exchange(served.port, b"GET /customers HTTP/1.1\r\nHost: api.example.com\r\nauthorization: Bearer k-7d41c0e2\r\nConnection: close\r\n\r\n")
    assert status_of(order) == 200 and order.endswith(b'{"status":"success","message":"Operation completed successfully.","data":{"id":42}}')
    assert status_of(keyless) == 401
    assert status_of(nowhere) == 404 and b"No match found." in nowhere


def test_init_defaults_to_the_current_folder_and_the_seed_chain(tmp_path: Path) -> None:
    assert edge("init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "scenario.toml").read_bytes() == (BUNDLED / "default.toml").read_bytes()


@pytest.mark.parametrize("existing", ["scenario.toml", "workers/auth.py", ".gitignore"])
def test_init_refuses_to_replace_any_file_and_writes_nothing(tmp_path: Path, existing: str) -> None:
    target = tmp_path / "p"
    (target / existing).parent.mkdir(parents=True)
    (target / existing).write_text("mine\n")
    before = tree(target)
    refused = edge("init", "p", cwd=tmp_path)
    assert refused.returncode == 2
    assert f"p/{existing}: exists" in refused.stderr
    assert tree(target) == before  # nothing written, not even the files that did not exist


def test_init_refuses_a_file_as_the_folder(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("a file\n")
    refused = edge("init", "p", cwd=tmp_path)
    assert refused.returncode == 2 and "p" in refused.stderr
    assert (tmp_path / "p").read_text() == "a file\n"


def test_init_refuses_an_unknown_template(tmp_path: Path) -> None:
    refused = edge("init", "p", "--template", "nosuch", cwd=tmp_path)
    assert refused.returncode == 2 and "invalid choice" in refused.stderr
    assert not (tmp_path / "p").exists()


def test_repository_scenarios_are_real_files_equal_to_the_bundled_ones() -> None:
    scenarios = ROOT / "scenarios"
    assert not [p for p in scenarios.rglob("*") if p.is_symlink()]
    assert (scenarios / "default.toml").read_bytes() == (BUNDLED / "default.toml").read_bytes()
    assert (scenarios / "api-gateway.toml").read_bytes() == (BUNDLED / "templates" / "api-gateway.toml").read_bytes()
    bundled = sorted(p.name for p in (BUNDLED / "workers").glob("*.py"))
    assert sorted(p.name for p in (scenarios / "workers").glob("*.py")) == bundled
    for name in bundled:
        assert (scenarios / "workers" / name).read_bytes() == (BUNDLED / "workers" / name).read_bytes(), name


def test_the_readme_first_screen_tells_a_newcomer_install_run_init_and_where_next():
    first_screen = (ROOT / "README.md").read_text().split("\n---\n", 1)[0]
    assert "pip install . && edge run" in first_screen
    assert "edge init myproject" in first_screen and "edge run scenario.toml" in first_screen
    assert "docs/scenario-fields.md" in first_screen and "#commands" in first_screen


def test_mailbox_docstring_states_what_trio_channels_do():
    import trio
    import trio.testing

    import actors.mailbox

    doc = actors.mailbox.__doc__
    assert "cannot hand a message straight to an idle consumer" not in doc
    assert "waited longest" in doc and "WouldBlock" in doc
    got: list[tuple[str, int]] = []

    async def main() -> None:  # what the docstring says, checked against trio itself
        send, receive = trio.open_memory_channel(1)

        async def consumer(name: str) -> None:
            got.append((name, await receive.receive()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer, "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(consumer, "second")
            await trio.testing.wait_all_tasks_blocked()
            send.send_nowait(1)  # handed to the receiver that waited longest, without blocking
            send.send_nowait(2)
            await trio.testing.wait_all_tasks_blocked()
            send.send_nowait(3)  # buffered (size 1)
            with pytest.raises(trio.WouldBlock):
                send.send_nowait(4)  # full: told at once

    trio.run(main)
    assert dict(got) == {"first": 1, "second": 2}  # who got what (both wake in one batch, in random order)


def test_readme_says_how_live_cpu_is_measured():
    readme = (ROOT / "README.md").read_text()
    assert "trio instrument" not in readme
    assert "`cpu.metered` drives the worker's coroutine itself" in readme


def test_a_command_given_no_scenario_takes_the_project_folders_scenario_toml(tmp_path):
    """`edge init` writes scenario.toml; `edge run` (check, graph, serve) with no argument in that
    folder takes it, and says so, instead of the bundled scenario. Elsewhere: the bundled one."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    project = tmp_path / "project"
    assert subprocess.run([sys.executable, "-m", "edge.cli", "init", str(project), "--template", "canary"], capture_output=True, env=env, timeout=60).returncode == 0
    checked = subprocess.run([sys.executable, "-m", "edge.cli", "check"], capture_output=True, text=True, env=env, cwd=project, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("scenario.toml: ok") and "edge: note: scenario.toml of this folder" in checked.stderr
    elsewhere = subprocess.run([sys.executable, "-m", "edge.cli", "check"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert elsewhere.returncode == 0 and "bundled/default.toml: ok" in elsewhere.stdout and "note" not in elsewhere.stderr


def test_every_template_with_a_rollout_has_a_tune_table_that_edge_tune_runs(tmp_path):
    """`edge tune scenario.toml` in a fresh canary project failed: the template had no [tune]."""
    from edge.scenario.load import load

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with_rollout = []
    for template in TEMPLATES:
        project = tmp_path / template
        assert subprocess.run([sys.executable, "-m", "edge.cli", "init", str(project), "--template", template], capture_output=True, env=env, timeout=60).returncode == 0
        if any(s.rollout for s in load(project / "scenario.toml").spec.services):
            with_rollout.append(template)
    assert "canary" in with_rollout
    for template in with_rollout:
        project = tmp_path / template
        # One replication, in the command's own process (no pool to start): the table runs; how
        # well it tunes is test_tune.py's.
        tuned = subprocess.run([sys.executable, "-m", "edge.cli", "tune", "scenario.toml", "--budget", "1", "--jobs", "1"], capture_output=True,
                               text=True, env=env, cwd=project, timeout=300)
        assert tuned.returncode == 0, tuned.stderr
        assert "replications" in tuned.stdout and "#1" in tuned.stdout
