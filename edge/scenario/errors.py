"""The one error a scenario that cannot run raises: which file, where in it, what was expected.

Raised by the loader (``edge.scenario.load``) for what decoding refuses, by the checks
(``edge.scenario.checks``) for what spans tables, and by the engine for what only running shows
(a worker whose import fails); the CLI prints it once and exits 2 (``EdgeError``).
"""

from __future__ import annotations

from edge.platform.user_errors import EdgeError


class ConfigError(EdgeError):
    """A scenario that cannot run; ``str()`` is the message for the user."""

    def __init__(self, file: str, path: str, expected: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {expected}")
        self.file = file
        self.path = path
        self.expected = expected


class ConfigErrors(ConfigError):
    """Several problems reported at once (a gateway table's): ``path`` is the first one's, and
    ``str()`` lists each on its own line with its path."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        if len(problems) == 1:
            super().__init__(file, *problems[0])
        else:
            listed = "\n".join(f"  {path}: {expected}" for path, expected in problems)
            Exception.__init__(self, f"{file}: {len(problems)} problems:\n{listed}")
            self.file, (self.path, self.expected) = file, problems[0]
        self.problems = problems
