"""Waiting for a condition on a real component, with a deadline: never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout_s: float = 30.0) -> T:
    """Call ``probe`` until ``accept`` takes its result; fail with the last result at the deadline.

    For state the broker applies asynchronously (KRaft metadata propagates from the
    controller to the broker's cache after a request returns).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            msg = f"condition not met within {timeout_s} s; last value: {value!r}"
            raise AssertionError(msg)
        time.sleep(0.05)


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Await ``predicate`` turning true, checking every 0.1 s; fail naming ``what`` at the deadline.

    For tests running services in the event loop, which ``eventually``'s blocking wait would
    stop.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)
