"""Frames waiting for a detector, so that frames which queue up are batched across sources.

With ``supersede`` (the default) at most ``per_source`` frames of one source wait (2 by
default): a newer frame pushes out the oldest waiting one, which the caller drops under the
``superseded`` policy. Latency then stays bounded by a couple of inferences however far
the detector falls behind, while the bursts a Kafka fetch delivers (two frames of a source
at once) do not cost a frame when the detector keeps up. Without ``supersede``, up to
``max_pending`` frames wait in arrival order and the stream is back-pressured beyond that.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PendingFrames(Generic[T]):
    """An asyncio buffer between a stream and its inference workers.

    Args:
        key: the source of an item.
        supersede: drop a source's oldest waiting item when it has ``per_source`` waiting,
            instead of queueing behind it.
        max_pending: items that may wait when not superseding.
        per_source: items of one source that may wait when superseding.
    """

    def __init__(
        self, key: Callable[[T], str], supersede: bool, max_pending: int, per_source: int = 2
    ) -> None:
        if max_pending < 1 or per_source < 1:
            msg = f"max_pending and per_source must be >= 1, got {max_pending}, {per_source}"
            raise ValueError(msg)
        self._key = key
        self.supersede = supersede
        self.max_pending = max_pending
        self.per_source = per_source
        self._items: deque[T] = deque()
        self._waiting: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> T | None:
        """Add ``item``; return the item it superseded, if any (the caller must account for it)."""
        source = self._key(item)
        async with self._changed:
            old = None
            if self.supersede:
                if self._waiting[source] >= self.per_source:
                    old = next(i for i in self._items if self._key(i) == source)
                    self._items.remove(old)
                    self._waiting[source] -= 1
            else:
                await self._changed.wait_for(lambda: len(self._items) < self.max_pending)
            self._items.append(item)
            self._waiting[source] += 1
            self._changed.notify_all()
            return old

    async def take(self, max_items: int, share: int = 1) -> list[T]:
        """Wait for at least one item; return up to ``max_items``, oldest first.

        Args:
            max_items: the largest batch.
            share: how many takers split what is waiting: each takes at most
                ``ceil(waiting / share)``, so one taker does not serialise frames that idle
                takers could run at the same time.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._items) > 0)
            count = min(max_items, -(-len(self._items) // max(1, share)))
            batch = [self._items.popleft() for _ in range(count)]
            self._waiting.subtract(self._key(i) for i in batch)
            self._changed.notify_all()
            return batch

    def drain(self) -> list[T]:
        """Remove and return everything waiting (on shutdown)."""
        items = list(self._items)
        self._items.clear()
        self._waiting.clear()
        return items
