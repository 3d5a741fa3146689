"""HiGHS prints a banner to the C-level stdout when a process creates its first solver.

That would corrupt machine-readable output (``tierflow plan --json``), and highspy offers
no switch that acts before the first instance exists. :func:`absorb_banner` creates that
first instance with file descriptor 1 pointed at stderr; every later instance is silent.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import highspy


@functools.cache
def absorb_banner() -> None:
    """Create the process's first HiGHS instance with its banner sent to stderr (once)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ bare
        ctypes.CDLL(None).fflush(None)  # the banner sits in C's stdout buffer until flushed
    finally:
        os.dup2(saved, 1)
        os.close(saved)
