"""Secrets never reach a log line or a printed traceback.

Worker messages can carry anything the worker had in hand (``raise RuntimeError(env.API_KEY)``),
and so can a traceback printed when something escapes. Rather than trusting every place that logs
or prints an exception to redact, the scenario's secret values are registered as actors are built
(``register``), in the current run (``runs.Run.secrets``), and two hooks rewrite what leaves: the
``logging`` record factory (the message with its arguments, and the traceback of
``log.exception``, are rendered and redacted when the record is made, with the secrets of the run
that made it) and ``sys.excepthook`` (a traceback that ends the process). The hooks are the
process's, installed once; what they mask is per run, so a run's secrets are neither masked in
another run's lines nor kept once it is over. An exception that escapes a run carries the run's
secrets (``runs.new``), so the traceback printed after it (``format_exception``) masks them.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType
from typing import Any, Iterable

from edge.platform import runs

MASK = "***"

_installed = False
_install_lock = threading.Lock()  # two runs in two threads may register their first secrets at once


def register(secrets: Iterable[str]) -> None:
    """Redact these values from now on in the current run's log records and escaping tracebacks."""
    run_secrets = runs.current().secrets
    run_secrets.update(s for s in secrets if s)
    if run_secrets and not _installed:
        _install()


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with the current run's secrets (or ``secrets``) masked."""
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted(runs.current().secrets if secrets is None else secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def format_exception(exc: BaseException) -> str:
    """``exc``'s traceback as ``traceback.format_exception`` gives it, redacted with the current
    run's secrets and those ``exc`` (or an exception chained to it) carried out of a run."""
    return redact("".join(traceback.format_exception(exc)), runs.current().secrets | _carried(exc))


def _carried(exc: BaseException) -> set[str]:
    found: set[str] = set()
    seen: set[int] = set()
    pending = [exc]
    while pending:
        one = pending.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        found.update(getattr(one, runs.CARRIED, ()))
        pending.extend(e for e in (one.__cause__, one.__context__) if e is not None)
        pending.extend(getattr(one, "exceptions", ()))  # an exception group's members
    return found


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        make_record = logging.getLogRecordFactory()

        def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            record.msg, record.args = redact(record.getMessage()), None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = format_exception(record.exc_info[1]).rstrip("\n")
            return record

        logging.setLogRecordFactory(redacting_record)
        previous_hook = sys.excepthook

        def redacting_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            if previous_hook is not sys.__excepthook__:
                previous_hook(kind, exc, tb)  # someone else's hook (a debugger's): theirs to print
                return
            sys.stderr.write(format_exception(exc))

        sys.excepthook = redacting_hook
