"""One error model (issue 30, item 3): every error a user can act on is an ``EdgeError``, raised
where the problem is known and printed once by ``main`` as one line with its exit code; anything
else is edge's bug, printed as a traceback with a request to report it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from edge import cli
from edge.platform.user_errors import EXIT_BAD_INPUT, EdgeError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def run_main(monkeypatch, capsys, command, raising: BaseException) -> tuple[int, str]:
    """``main`` on ``command`` whose function raises ``raising``."""
    def func(args):
        raise raising

    real = cli.parser

    def parser():
        built = real()
        built.set_defaults(func=func)
        for action in built._actions:
            for sub in getattr(action, "choices", None) or {}:
                if hasattr(action.choices[sub], "set_defaults"):
                    action.choices[sub].set_defaults(func=func)
        return built

    monkeypatch.setattr(cli, "parser", parser)
    code = cli.main(command)
    return code, capsys.readouterr().err


class Refused(EdgeError):
    exit_code = 3
    prefix = "refused: "


def test_a_users_error_is_one_line_with_its_exit_code(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, ["check"], Refused("the port is taken"))
    assert (code, err) == (3, "edge: error: refused: the port is taken\n")


def test_an_error_inside_a_nursery_is_found_in_its_exception_group(monkeypatch, capsys):
    """edge serve's listeners raise inside a nursery: trio wraps the error in a group."""
    async def listeners():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise UsageError("127.0.0.2 is not an address of this machine")

    try:
        trio.run(listeners)
    except BaseException as exc:
        grouped = exc
    assert isinstance(grouped, BaseExceptionGroup)
    code, err = run_main(monkeypatch, capsys, ["check"], grouped)
    assert (code, err) == (EXIT_BAD_INPUT, "edge: error: 127.0.0.2 is not an address of this machine\n")


def test_an_unexpected_exception_is_a_traceback_and_a_request_for_a_bug_report(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, ["check"], ZeroDivisionError("a bug"))
    assert code == cli.EXIT_BUG == 70
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err
    assert err.rstrip().endswith(cli.BUG_REPORT)


def test_the_errors_a_user_meets_are_edge_errors():
    from edge.live.admin_client import AdminError
    from edge.live.serve import ListenError
    from edge.metrics.openmetrics import BackfillError
    from edge.platform.files import InputError, OutputError
    from edge.platform.trio_internals import UnsupportedTrio
    from edge.scenario.errors import ConfigError, ConfigErrors

    for kind in (AdminError, ListenError, BackfillError, InputError, OutputError, UnsupportedTrio, ConfigError, ConfigErrors, UsageError):
        assert issubclass(kind, EdgeError), kind
    assert OutputError("x").shown() == "cannot write output: x"


def test_commands_raise_rather_than_print_their_errors():
    """Only ``main`` prints "edge: error": a command that printed its own would bypass the
    exit code and could print twice."""
    tree = ast.parse((ROOT / "edge" / "cli.py").read_text())
    printing = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.JoinedStr | ast.Constant)
                and "edge: error" in (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else
                                      "".join(v.value for v in getattr(node, "values", []) if isinstance(v, ast.Constant)))]
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    assert all(main.lineno <= line <= main.end_lineno for line in printing), printing


@pytest.mark.parametrize("args, message", [
    (["rollout", "pause"], "`edge rollout pause` needs the SERVICE whose rollout to pause"),
    (["versions", "app"], "expected SERVICE@ENVIRONMENT (e.g. app@production), got 'app'"),
    (["fields", "no-such"], "no table or field called 'no-such'"),
])
def test_a_commands_usage_error_is_one_line_and_exit_2(args, message):
    env = {"PATH": "/usr/bin:/bin", "EDGE_ADMIN_TOKEN": "x" * 16, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "edge.cli", *args, *(["--admin", "http://127.0.0.1:9"] if args[0] != "fields" else [])],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"edge: error: {message}") and done.stderr.count("\n") == 1, done.stderr
