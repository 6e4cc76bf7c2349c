"""The one base of every error a user can act on: a bad scenario, an output that cannot be
written, a port that is taken, an admin API that refuses. Raised where the problem is known, with
a one-line message that says what was expected; printed once, by the command's ``main``, as
``edge: error: MESSAGE``, and the process exits with the error's ``exit_code``.

Anything else that escapes a command is a bug in edge, not the user's: ``main`` prints its
traceback and asks for a report. A user should never see a traceback for their own mistake.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
"""The exit code of bad input: a scenario, a flag, a file, an address (as argparse's usage errors)."""


class EdgeError(Exception):
    """A problem the user can fix; ``str()`` is the message, one line (a list of problems may
    follow it, one per line, as a gateway table's)."""

    exit_code = EXIT_BAD_INPUT
    prefix = ""
    """Put before the message when printed: what kind of problem it is ("cannot write output: ")."""

    def shown(self) -> str:
        return f"{self.prefix}{self}"


class UsageError(EdgeError):
    """Flags or arguments that do not go together, or that name nothing."""
