"""Secrets never reach a log line or a printed traceback.

Worker messages can carry anything the worker had in hand (``raise RuntimeError(env.API_KEY)``),
and so can a traceback printed when something escapes. Rather than trusting every place that logs
or prints an exception to redact, the scenario's secret values are registered here as actors are
built (``register``), and two process-wide hooks rewrite what leaves: the ``logging`` record
factory (the message with its arguments, and the traceback of ``log.exception``, are rendered and
redacted when the record is made) and ``sys.excepthook`` (a traceback that ends the process).
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any, Iterable

MASK = "***"

_secrets: set[str] = set()
_installed = False


def register(secrets: Iterable[str]) -> None:
    """Redact these values from now on, in every log record and uncaught traceback."""
    _secrets.update(s for s in secrets if s)
    if _secrets and not _installed:
        _install()


def redact(text: str) -> str:
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _install() -> None:
    global _installed
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(redacting_record)
    previous_hook = sys.excepthook

    def redacting_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if previous_hook is not sys.__excepthook__:
            previous_hook(kind, exc, tb)  # someone else's hook (a debugger's): theirs to print
            return
        sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = redacting_hook
