"""An environment's warm isolates: a bounded TTL/LRU cache on the model's clock.

A call that finds a warm idle isolate starts at once; one that finds none pays a cold start and
brings a new isolate up. An isolate goes back to the cache when its call ends, warm until it has
been idle for ``keep_warm`` (the cache's TTL: at exactly ``keep_warm`` it is gone). The cache
holds at most ``capacity`` idle isolates (what the node's memory keeps for this environment): one
more evicts the least recently used. Both removals are counted apart (``evicted``): ``capacity``
and ``expired``.

cachetools' ``TTLCache`` does the keeping, with the model clock's ``now`` as its timer, so virtual
time stays deterministic and never reads the wall clock. Its eviction hooks (``popitem`` when
full, ``expire`` for TTLs) are where cachetools' documentation says to count removals. It has no
cheap way to hand out its most recently used entry, which is the one a call takes (the others
then go cold, and a burst's extra isolates are let go as on the platform), so a stack of keys,
newest last, says which; keys the cache has dropped are skipped when they surface.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import cachetools

CAPACITY = "capacity"
EXPIRED = "expired"
REASONS = (CAPACITY, EXPIRED)


class _Counted(cachetools.TTLCache):  # type: ignore[type-arg]
    def __init__(self, capacity: float, ttl: float, timer: Callable[[], float], evicted: dict[str, int]) -> None:
        super().__init__(capacity, ttl, timer)
        self.evicted = evicted

    def popitem(self) -> Any:  # cachetools calls it only to make room
        item = super().popitem()
        self.evicted[CAPACITY] += 1
        return item

    def expire(self, time: float | None = None) -> Any:
        expired = super().expire(time)
        if expired:
            self.evicted[EXPIRED] += len(expired)
        return expired


class WarmIsolates:
    """The idle, warm isolates of one environment."""

    __slots__ = ("evicted", "_cache", "_idle", "_keys")

    def __init__(self, capacity: float, keep_warm: float, now: Callable[[], float]) -> None:
        self.evicted = dict.fromkeys(REASONS, 0)
        self._cache = _Counted(capacity, keep_warm, now, self.evicted)
        self._idle: list[int] = []  # keys, most recently used last
        self._keys = itertools.count()

    def take(self) -> bool:
        """Whether a warm isolate was there for a call (it is then busy until ``put_back``)."""
        cache = self._cache
        idle = self._idle
        while idle:
            key = idle.pop()
            if key in cache:  # not expired: an expired one stays for ``expire`` to count
                del cache[key]
                return True
        return False

    def put_back(self) -> None:
        """A call ended: its isolate is idle and warm from now."""
        key = next(self._keys)
        cache, idle = self._cache, self._idle
        cache[key] = None
        idle.append(key)
        if len(idle) > 2 * len(cache) + 16:  # dropped keys pile up below the live ones: prune, amortised O(1)
            idle[:] = [k for k in idle if k in cache]

    def clear(self) -> None:
        """Every isolate is gone (a restart, not an eviction: not counted)."""
        self._cache.clear()
        self._idle.clear()

    def evictions(self) -> dict[str, int]:
        """Evictions by reason, counting those whose keep_warm ran out since the last call."""
        self._cache.expire()
        return self.evicted

    def __len__(self) -> int:
        return len(self._cache)
