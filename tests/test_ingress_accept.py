"""What the ingress does when accept() fails: a connection that died in the backlog is skipped, a
process out of descriptors takes nothing for a while; neither stops the server.

accept()'s errors cannot be had on demand from a real socket without starving the test process
of descriptors, so a listening socket that fails as the kernel would stands in for one.
"""

from __future__ import annotations

import errno
import logging

import pytest

from edge.live.ingress import _accept_waiting


class Backlog:
    """A listening socket's backlog: each entry a connection, or the errno its accept() fails with."""

    def __init__(self, *entries: object) -> None:
        self.entries = list(entries)

    def accept(self) -> tuple[object, None]:
        if not self.entries:
            raise BlockingIOError(errno.EAGAIN, "empty")
        entry = self.entries.pop(0)
        if isinstance(entry, int):
            raise OSError(entry, "failed")
        return entry, None


@pytest.mark.parametrize("dead", [errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN])
def test_a_connection_that_died_in_the_backlog_is_skipped_and_the_next_taken(dead):
    assert _accept_waiting(Backlog("a", dead, "b"), 10) == ["a", "b"]


@pytest.mark.parametrize("full", [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS])
def test_out_of_descriptors_keeps_what_was_taken_or_says_none(full, caplog):
    with caplog.at_level(logging.ERROR):
        assert _accept_waiting(Backlog("a", full, "b"), 10) == ["a"]
        assert _accept_waiting(Backlog(full, "b"), 10) is None
    assert "taking no connection for 0.1s" in caplog.text


def test_an_unexpected_accept_error_is_raised():
    with pytest.raises(OSError) as caught:
        _accept_waiting(Backlog(errno.EBADF), 10)
    assert caught.value.errno == errno.EBADF


@pytest.mark.parametrize(("waiting", "batch", "taken"), [(3, 2, 2), (2, 2, 2), (1, 2, 1)])
def test_at_most_a_batch_is_taken(waiting, batch, taken):
    backlog = Backlog(*(f"connection {i}" for i in range(waiting)))
    assert len(_accept_waiting(backlog, batch)) == taken
    assert len(backlog.entries) == waiting - taken
