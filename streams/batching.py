"""Frames waiting for a detector, so that frames which queue up are batched across sources.

With ``supersede`` (the default) at most one frame per source waits: a newer frame of the
same source replaces the waiting one, which the caller drops under the ``superseded``
policy. Latency then stays bounded by one inference however far the detector falls
behind. Without it, up to ``max_pending`` frames wait in arrival order and the stream is
back-pressured beyond that.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PendingFrames(Generic[T]):
    """An asyncio buffer between a stream and its inference workers.

    Args:
        key: the source of an item (one waiting item per key when superseding).
        supersede: replace a waiting item of the same key instead of queueing behind it.
        max_pending: items that may wait when not superseding.
    """

    def __init__(self, key: Callable[[T], str], supersede: bool, max_pending: int) -> None:
        if max_pending < 1:
            msg = f"max_pending must be >= 1, got {max_pending}"
            raise ValueError(msg)
        self._key = key
        self.supersede = supersede
        self.max_pending = max_pending
        self._items: OrderedDict[object, T] = OrderedDict()
        self._seq = 0
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> T | None:
        """Add ``item``; return the item it superseded, if any (the caller must account for it)."""
        async with self._changed:
            if self.supersede:
                old = self._items.pop(self._key(item), None)
                self._items[self._key(item)] = item
            else:
                await self._changed.wait_for(lambda: len(self._items) < self.max_pending)
                self._seq += 1
                self._items[self._seq] = item
                old = None
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
            batch = [self._items.popitem(last=False)[1] for _ in range(count)]
            self._changed.notify_all()
            return batch

    def drain(self) -> list[T]:
        """Remove and return everything waiting (on shutdown)."""
        items = list(self._items.values())
        self._items.clear()
        return items
