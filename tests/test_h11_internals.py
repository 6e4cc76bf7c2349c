"""The one change edge makes to h11 (``edge/platform/h11_internals.py``), and its guards."""

from __future__ import annotations

import re

import h11
import pytest

from edge.platform import h11_internals


def _reads(line: bytes) -> bool:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(line + b"\r\nHost: a.test\r\n\r\n")
    try:
        return isinstance(conn.next_event(), h11.Request)
    except h11.RemoteProtocolError:
        return False


def test_a_raw_utf8_target_is_read_and_spaces_and_controls_still_are_not():
    assert h11_internals.accept_raw_utf8_targets() is True
    assert h11_internals.accept_raw_utf8_targets() is True  # once or twice, the same
    assert _reads("GET /café?q=ü HTTP/1.1".encode())
    assert _reads(b"GET /plain HTTP/1.1")
    for refused in (b"GET /a b HTTP/1.1", b"GET /a\x00b HTTP/1.1", b"GET /a\x7fb HTTP/1.1", b"GET /a\tb HTTP/1.1"):
        assert not _reads(refused), refused


def test_an_untested_h11_or_an_unexpected_pattern_is_left_alone(monkeypatch):
    readers = h11._readers
    monkeypatch.setattr(h11, "__version__", "0.17.0")  # just past the newest tested
    assert h11_internals.accept_raw_utf8_targets() is False
    monkeypatch.setattr(h11, "__version__", "0.13.9")  # just before the oldest
    assert h11_internals.accept_raw_utf8_targets() is False
    monkeypatch.setattr(h11, "__version__", "0.14.0")  # the oldest tested, with a pattern not its own
    other = re.compile(rb"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/(?P<http_version>[0-9]\.[0-9])")
    monkeypatch.setattr(readers, "request_line_re", other)
    monkeypatch.setattr(h11._events, "request_target_re", re.compile(rb"[\x21-\x7e]+"))
    assert h11_internals.accept_raw_utf8_targets() is False and readers.request_line_re is other
    assert h11._events.request_target_re.pattern == rb"[\x21-\x7e]+"  # both or neither


@pytest.mark.parametrize("version", ["0.14.0", "0.16.0"])
def test_the_tested_range_is_inclusive(monkeypatch, version):
    monkeypatch.setattr(h11, "__version__", version)
    assert h11_internals.accept_raw_utf8_targets() is True
