"""Reading the values of frame headers: strict, with the header named in every error.

Integers are ASCII decimals in ``[0, 2**63)``, sizes positive and below OpenCV's int; a
value that is not what its header promises is BAD_HEADER, a missing one MISSING_HEADER.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import RAW_DTYPES
from tierflow.topics.headers import H_DTYPE, H_ORIGIN, H_SHAPE

INT_LIMIT = 2**63
"""Integer headers (sequence, times, quality, epoch, stamps) lie in ``[0, 2**63)``: what an
int64 holds, as Kafka, Prometheus and every other reader of the records store them."""
SIDE_LIMIT = 2**31
"""A raw frame's height and width, and a detections ``size``, are below this (OpenCV's int)."""
DECIMAL = re.compile(r"-?[0-9]{1,20}")
"""An integer header: ASCII digits, no sign but ``-``, no spaces or ``_`` (``int()`` takes
those, and other scripts' digits too)."""


def text_value(headers: Mapping[str, bytes], name: str) -> str:
    """Header ``name`` as UTF-8 text; MISSING_HEADER or BAD_HEADER naming it."""
    try:
        raw = headers[name]
    except KeyError:
        msg = f"header {name!r} is missing (present: {sorted(headers) or 'none'})"
        raise FrameFormatError(FrameProblem.MISSING_HEADER, msg) from None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        msg = f"header {name!r} is not UTF-8: {raw[:32]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg) from None


def int_value(headers: Mapping[str, bytes], name: str, minimum: int = 0) -> int:
    """Header ``name`` as an integer in ``[minimum, INT_LIMIT)``; BAD_HEADER otherwise."""
    text = text_value(headers, name)
    if not DECIMAL.fullmatch(text):
        msg = f"header {name!r} must be a decimal integer, got {text[:32]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    value = int(text)
    if not minimum <= value < INT_LIMIT:
        msg = f"header {name!r} must be >= {minimum} and < 2**63, got {value}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return value


def shape_value(headers: Mapping[str, bytes]) -> tuple[int, ...]:
    """``h,w[,c]`` of a raw frame: positive sides below SIDE_LIMIT, 1, 3 or 4 channels."""
    text = text_value(headers, H_SHAPE)
    parts = text.split(",")
    if len(parts) not in (2, 3) or not all(DECIMAL.fullmatch(p) for p in parts):
        msg = f"header {H_SHAPE!r} must be h,w[,c] in decimal integers, got {text[:64]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    shape = tuple(int(p) for p in parts)
    if not all(0 < n < SIDE_LIMIT for n in shape[:2]) or shape[2:] not in ((), (1,), (3,), (4,)):
        msg = (
            f"header {H_SHAPE!r} {shape} is not positive sides below 2**31 with 1, 3 or 4 channels"
        )
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return shape


def dtype_value(headers: Mapping[str, bytes]) -> str:
    """``tf-dtype``: one of the raw dtypes; BAD_HEADER otherwise."""
    dtype = text_value(headers, H_DTYPE)
    if dtype not in RAW_DTYPES:
        msg = f"header {H_DTYPE!r} {dtype[:32]!r} is not one of {', '.join(RAW_DTYPES)}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return dtype


def flag_value(headers: Mapping[str, bytes], name: str) -> bool:
    """A ``1`` header; absent is False. Anything but ``1`` is BAD_HEADER."""
    if name not in headers:
        return False
    if headers[name] != b"1":
        msg = f"header {name!r} must be 1 when present, got {headers[name][:16]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return True


def origin_value(headers: Mapping[str, bytes]) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` of the source's frames: positive sides below SIDE_LIMIT."""
    if H_ORIGIN not in headers:
        return None
    text = text_value(headers, H_ORIGIN)
    width, sep, height = text.partition("x")
    if not sep or not DECIMAL.fullmatch(width) or not DECIMAL.fullmatch(height):
        msg = f"header {H_ORIGIN!r} must be WIDTHxHEIGHT in decimal integers, got {text[:64]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    size = int(width), int(height)
    if not all(0 < n < SIDE_LIMIT for n in size):
        msg = f"header {H_ORIGIN!r} {text!r} must have positive sides below 2**31"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return size
