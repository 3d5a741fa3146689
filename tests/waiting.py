"""Waiting for a condition on a real component, with a deadline: never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

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
