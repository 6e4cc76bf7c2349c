"""edge's two uses of h11's internals (``edge/platform/h11_internals.py``): the one change it makes, the
look at its receive buffer, and their guards."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import h11
import pytest

from edge.platform import h11_internals, trio_internals

ROOT = Path(__file__).resolve().parent.parent


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


def _unparsed_as_it_parses(conn: h11.Connection) -> list[bytes]:
    """What ``unparsed_reader(conn)`` gives at each step of reading two pipelined requests."""
    read = h11_internals.unparsed_reader(conn)
    seen = [bytes(read())]
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHo")
    seen.append(bytes(read()))
    assert isinstance(conn.next_event(), h11.Request)
    seen.append(bytes(read()))
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    conn.send(h11.Response(status_code=204, headers=[]))
    conn.send(h11.EndOfMessage())
    conn.start_next_cycle()
    conn.receive_data(b"st: a.test\r\n\r\n")
    seen.append(bytes(read()))
    assert isinstance(conn.next_event(), h11.Request)
    seen.append(bytes(read()))
    return seen


UNPARSED = [
    b"",
    b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHo",
    b"GET /2 HTTP/1.1\r\nHo",
    b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"",
]


def test_the_unparsed_bytes_are_h11s_own_buffer_uncopied():
    conn = h11.Connection(h11.SERVER)
    assert h11_internals.unparsed_reader(conn)() is conn._receive_buffer._data
    assert _unparsed_as_it_parses(h11.Connection(h11.SERVER)) == UNPARSED


@pytest.mark.parametrize("version", ["0.13.9", "0.17.0"])  # just before the oldest tested, just past the newest
def test_an_untested_h11_gets_the_same_unparsed_bytes_from_the_public_copy(monkeypatch, version):
    monkeypatch.setattr(h11, "__version__", version)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET")
    unparsed = h11_internals.unparsed_reader(conn)()
    assert unparsed == b"GET" and unparsed is not conn._receive_buffer._data
    assert _unparsed_as_it_parses(h11.Connection(h11.SERVER)) == UNPARSED


@pytest.mark.parametrize("version", ["0.14.0", "0.16.9"])
def test_the_uncopied_buffer_is_used_on_the_ends_of_the_tested_range(monkeypatch, version):
    monkeypatch.setattr(h11, "__version__", version)
    conn = h11.Connection(h11.SERVER)
    assert h11_internals.unparsed_reader(conn)() is conn._receive_buffer._data


@pytest.mark.parametrize("buffer", [None, SimpleNamespace(), SimpleNamespace(_data="GET /")], ids=["no buffer", "no _data", "text"])
def test_a_buffer_not_of_the_expected_shape_gets_the_public_copy(buffer):
    conn = SimpleNamespace(trailing_data=(b"GET /", False))  # an h11 whose connection keeps its bytes elsewhere
    if buffer is not None:
        conn._receive_buffer = buffer
    assert h11_internals.unparsed_reader(conn)() == b"GET /"


@pytest.mark.parametrize(("name", "module"), [("trio", trio_internals), ("h11", h11_internals)])
def test_pyproject_allows_exactly_the_minor_versions_the_internals_were_tested_on(name, module):
    (major, minor), (last_major, last_minor) = module.TESTED
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"{name}>={major}.{minor},<{last_major}.{last_minor + 1}" in dependencies
