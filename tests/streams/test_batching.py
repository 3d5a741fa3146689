from __future__ import annotations

import asyncio

import pytest

from tierflow.streams.batching import PendingFrames


def _pending(
    supersede: bool, max_pending: int = 4, per_source: int = 1
) -> PendingFrames[tuple[str, int]]:
    return PendingFrames(lambda item: item[0], supersede, max_pending, per_source)


async def test_a_newer_frame_supersedes_the_waiting_one_of_its_source() -> None:
    pending = _pending(supersede=True)
    assert await pending.put(("a", 1)) is None
    assert await pending.put(("b", 1)) is None
    assert await pending.put(("a", 2)) == ("a", 1)
    assert len(pending) == 2
    # a's newer frame went to the back: b waited longer
    assert await pending.take(10) == [("b", 1), ("a", 2)]


async def test_two_frames_of_a_source_may_wait_before_the_oldest_is_superseded() -> None:
    pending = _pending(supersede=True, per_source=2)
    assert await pending.put(("a", 1)) is None
    assert await pending.put(("a", 2)) is None
    assert await pending.put(("b", 1)) is None
    assert await pending.put(("a", 3)) == ("a", 1)
    assert await pending.take(10) == [("a", 2), ("b", 1), ("a", 3)]
    assert await pending.put(("a", 4)) is None  # nothing of a waits any more


async def test_take_returns_at_most_the_batch_size_oldest_first() -> None:
    pending = _pending(supersede=True)
    for source in "abcde":
        await pending.put((source, 0))
    assert [s for s, _ in await pending.take(3)] == ["a", "b", "c"]
    assert [s for s, _ in await pending.take(3)] == ["d", "e"]


async def test_takers_share_what_is_waiting() -> None:
    pending = _pending(supersede=True)
    for source in "abc":
        await pending.put((source, 0))
    assert [s for s, _ in await pending.take(8, share=2)] == ["a", "b"]
    assert [s for s, _ in await pending.take(8, share=2)] == ["c"]


async def test_take_waits_for_a_frame() -> None:
    pending = _pending(supersede=True)
    taker = asyncio.create_task(pending.take(8))
    await asyncio.sleep(0)  # let the taker block on the empty buffer
    assert not taker.done()
    await pending.put(("a", 7))
    assert await asyncio.wait_for(taker, 1) == [("a", 7)]


async def test_without_supersede_frames_queue_and_put_blocks_when_full() -> None:
    pending = _pending(supersede=False, max_pending=2)
    await pending.put(("a", 1))
    await pending.put(("a", 2))
    blocked = asyncio.create_task(pending.put(("a", 3)))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert await pending.take(1) == [("a", 1)]
    assert await asyncio.wait_for(blocked, 1) is None
    assert await pending.take(5) == [("a", 2), ("a", 3)]


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        _pending(supersede=False, max_pending=0)
    with pytest.raises(ValueError, match="per_source"):
        _pending(supersede=True, per_source=0)
