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
"""

from __future__ import annotations

import re

import h11

TESTED = ((0, 14), (0, 16))
"""The oldest and newest h11 minor versions the change was tested on (every minor in between)."""

_TARGET = rb"[\x21-\x7e]+"
_WIDENED = rb"[\x21-\x7e\x80-\xff]+"
_PATTERNS = (("_readers", "request_line_re"), ("_events", "request_target_re"))
"""Where h11 keeps the two patterns, as (module of h11, attribute)."""


def accept_raw_utf8_targets() -> bool:
    """Let h11 read request targets with bytes from 0x80; True if it now does (or already did)."""
    match = re.match(r"(\d+)\.(\d+)", h11.__version__)
    if match is None or not TESTED[0] <= (int(match[1]), int(match[2])) <= TESTED[1]:
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
