"""Every use of h11's private internals, in one place, checked before use (as ``trio_internals``).

h11 reads a request line with a regular expression, ``h11._readers.request_line_re``, and checks
the target again when it makes the ``Request`` event (``h11._events.request_target_re``); both take
a target to be a run of visible ASCII (``[\x21-\x7e]+``), and anything else is a malformed request
line. Clients do send raw UTF-8 in a target (browsers percent-encode it; curl, load tools and
scripts often do not), and workerd passes such a target to the worker as it came; edge answered 400.
``accept_raw_utf8_targets`` widens that character class in both by the bytes from 0x80 (RFC 9110's
obs-text), when this h11 is a version the change was tested on (``TESTED``) and both patterns are
the ones expected; otherwise it changes nothing and says so (such a request stays a 400, as it
was). The change is to the process's h11, which edge uses to read requests in its ingress and to
write them in its load generator; control characters and spaces stay refused.

``unparsed_reader`` is the other use: a look at h11's receive buffer without the copy its public
``trailing_data`` makes, guarded the same way, with that copy as its fallback.
"""

from __future__ import annotations

import re
from typing import Callable

import h11

TESTED = ((0, 14), (0, 16))
"""The oldest and newest h11 minor versions both uses were tested on (every minor in between); also
the bound in ``pyproject.toml``."""

_TARGET = rb"[\x21-\x7e]+"
_WIDENED = rb"[\x21-\x7e\x80-\xff]+"
_PATTERNS = (("_readers", "request_line_re"), ("_events", "request_target_re"))
"""Where h11 keeps the two patterns, as (module of h11, attribute)."""


def _tested(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and TESTED[0] <= (int(match[1]), int(match[2])) <= TESTED[1]


def accept_raw_utf8_targets() -> bool:
    """Let h11 read request targets with bytes from 0x80; True if it now does (or already did)."""
    if not _tested(str(getattr(h11, "__version__", ""))):
        return False
    found = []
    for module_name, attribute in _PATTERNS:
        module = getattr(h11, module_name, None)
        pattern = getattr(getattr(module, attribute, None), "pattern", None)
        if not isinstance(pattern, bytes):
            return False
        found.append((module, attribute, pattern))
    if all(_WIDENED in pattern for _, _, pattern in found):
        return True
    if not all(pattern.count(_TARGET) == 1 for _, _, pattern in found):
        return False  # not the patterns the change was written for: both or neither
    for module, attribute, pattern in found:
        setattr(module, attribute, re.compile(pattern.replace(_TARGET, _WIDENED)))
    return True


def unparsed_reader(conn: h11.Connection) -> Callable[[], bytes | bytearray]:
    """A function giving what ``conn`` has received and not parsed yet, each time it is called; the
    caller only reads what it gives.

    h11 has no public view of its buffer, and the ingress looks at it several times a request (as
    each chunk arrives, to screen a head h11 would accept but edge refuses, to size the next read).
    On a tested h11 the function gives the buffer itself (``conn._receive_buffer._data``, a
    bytearray h11 appends to and trims as it parses, in a buffer object made once per connection),
    at no cost. Fallback, on an untested h11 or a buffer not of that shape: ``conn.trailing_data``'s
    copy, which costs a copy of every unparsed byte at each look, up to the ingress's read-ahead
    bound (a whole head at the limits) while a large head or a pipelining client's requests wait.
    """
    buffer = getattr(conn, "_receive_buffer", None) if _tested(str(getattr(h11, "__version__", ""))) else None
    if isinstance(getattr(buffer, "_data", None), (bytes, bytearray)):
        return lambda: buffer._data  # type: ignore[union-attr]
    return lambda: conn.trailing_data[0]
