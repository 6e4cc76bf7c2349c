"""The supervisor: every actor of a run lives in its one nursery.

Worker failures never reach the supervisor (an environment answers them with a 500 and carries on).
What can reach it is a fault in an actor's own loop, a platform bug: the supervisor logs it and
restarts the actor, a bounded number of times, after which the error propagates and ends the run
loudly rather than leaving a dead actor whose callers would wait for ever.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import trio

log = logging.getLogger("edge.supervisor")


class Actor(Protocol):
    async def run(self) -> Any: ...


class Supervisor:
    def __init__(self, nursery: trio.Nursery, max_restarts: int = 3) -> None:
        self._nursery = nursery
        self.max_restarts = max_restarts
        self.restarts: dict[str, int] = {}

    def start(self, name: str, actor: Actor) -> None:
        self._nursery.start_soon(self._keep, name, actor, name=f"actor {name}")

    async def _keep(self, name: str, actor: Actor) -> None:
        while True:
            try:
                await actor.run()
                return
            except Exception:
                count = self.restarts[name] = self.restarts.get(name, 0) + 1
                if count > self.max_restarts:
                    raise
                log.exception("actor %s crashed; restart %d of %d", name, count, self.max_restarts)

    def stop(self) -> None:
        """Cancel every actor (after the caller has drained what it wanted to finish)."""
        self._nursery.cancel_scope.cancel()
