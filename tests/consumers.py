"""A mailbox's consumer as the tests of parking need one, as a fiber (tests/test_mailbox.py) or a
trio task (tests/test_live_slots.py): it records each message it gets, with its index, and parks
again, until it gets "retire"."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from actors.mailbox import Mailbox


def recording(mailbox: Mailbox, got: list[tuple[int, Any]]) -> Callable[[int], Awaitable[None]]:
    """The consumer, to start with its index: ``consumer(0)``."""

    async def consumer(index: int) -> None:
        while True:
            message = await mailbox.receive()
            got.append((index, message))
            if message == "retire":
                return

    return consumer
