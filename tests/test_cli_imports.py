"""``edge`` imports, before it parses its command line, only what every command needs: the heavy
packages (numpy, scipy, matplotlib, trio, rich, prometheus_client, Dask) and edge's engine, live
serving and scenario loader are imported by the commands that use them. Each ``edge`` process pays
its imports (``edge serve`` twice: it starts again on jemalloc), and the test suite starts a few
hundred of them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "scipy", "matplotlib", "trio", "rich", "prometheus_client", "distributed", "selenium", "msgspec",
         "actors", "edge.engine", "edge.live.admin", "edge.live.serve", "edge.scenario.load", "edge.report", "edge.tune")


def test_the_cli_imports_none_of_the_heavy_packages_before_a_command_runs():
    program = f"import sys, edge.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"`import edge.cli` imports {done.stdout.strip()}: import it inside the command that needs it"


def test_the_admin_commands_client_imports_only_the_standard_library():
    # edge weight, rollout, versions and rollback send one request to a running server: none of
    # what a server holds (trio, the actors, msgspec) is theirs to import.
    program = f"import sys, edge.cli, edge.live.admin_client; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"`import edge.live.admin_client` imports {done.stdout.strip()}"
