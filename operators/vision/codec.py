"""Image <-> bytes: JPEG (default), PNG (lossless) and raw numpy arrays, never pickle.

Truncation is checked on the container's end marker before decoding, because libjpeg
decodes a cut-off JPEG into a partly grey image with only a warning on stderr.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tierflow.errors import FrameFormatError, FrameProblem

Image = npt.NDArray[Any]
"""An image array: (height, width) or (height, width, channels), BGR channel order."""

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
RAW_DTYPES = ("uint8", "uint16", "float32")


class ContentType(enum.StrEnum):
    """How a frame's bytes are encoded (the ``content-type`` header)."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    RAW = "application/x-tierflow-ndarray"

    @classmethod
    def parse(cls, value: str) -> ContentType:
        """The content type named by ``value``; FrameFormatError if it is not one we speak."""
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(c.value for c in cls)
            msg = f"content type {value!r} is not one of {known}"
            raise FrameFormatError(FrameProblem.UNSUPPORTED_CONTENT, msg) from None


def _check_image(image: object, content_type: ContentType) -> Image:
    if not isinstance(image, np.ndarray):
        msg = f"an image must be a numpy array, got {type(image).__name__}"
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    allowed_dtypes = {
        ContentType.JPEG: ("uint8",),
        ContentType.PNG: ("uint8", "uint16"),
        ContentType.RAW: RAW_DTYPES,
    }[content_type]
    allowed_channels = (1, 3) if content_type is ContentType.JPEG else (1, 3, 4)
    if channels not in allowed_channels or image.dtype.name not in allowed_dtypes:
        msg = (
            f"{content_type.value} takes (height, width[, {'|'.join(map(str, allowed_channels))}])"
            f" arrays of {'/'.join(allowed_dtypes)}; got shape {image.shape} of {image.dtype}"
        )
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    if image.shape[0] == 0 or image.shape[1] == 0:
        msg = f"an image needs at least one pixel, got shape {image.shape}"
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    return image


def encode_image(image: Image, content_type: ContentType, jpeg_quality: int = 90) -> bytes:
    """Encode ``image`` (BGR, see :data:`Image`) as ``content_type``.

    Args:
        image: the pixels.
        content_type: the encoding.
        jpeg_quality: 1-100, used by JPEG only.

    Raises:
        FrameFormatError: WRONG_TYPE when the array cannot be stored in that encoding.
    """
    image = _check_image(image, content_type)
    if content_type is ContentType.RAW:
        return np.ascontiguousarray(image).tobytes()
    ext, params = (
        (".jpg", [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if content_type is ContentType.JPEG
        else (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1])
    )
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:  # pragma: no cover - OpenCV refuses only shapes _check_image already rejects
        msg = f"OpenCV could not encode a {image.shape} {image.dtype} image as {content_type}"
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    return bytes(buf)


def decode_image(
    data: object,
    content_type: ContentType,
    shape: Sequence[int] | None = None,
    dtype: str | None = None,
) -> Image:
    """Decode bytes produced by :func:`encode_image`.

    Args:
        data: the encoded bytes (anything else is a WRONG_TYPE error).
        content_type: their encoding.
        shape: (height, width[, channels]) in pixels; required for RAW.
        dtype: numpy dtype name; required for RAW.

    Raises:
        FrameFormatError: TRUNCATED_IMAGE, UNDECODABLE_IMAGE, WRONG_TYPE or BAD_HEADER.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        msg = f"frame data must be bytes, got {type(data).__name__}"
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    if content_type is ContentType.RAW:
        return _decode_raw(bytes(data), shape, dtype)
    _check_complete(bytes(data), content_type)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        msg = f"{len(data)} bytes are not a decodable {content_type.value} image"
        raise FrameFormatError(FrameProblem.UNDECODABLE_IMAGE, msg)
    return image


def check_encoded(
    data: bytes,
    content_type: ContentType,
    shape: Sequence[int] | None = None,
    dtype: str | None = None,
) -> None:
    """What :func:`decode_image` checks before it decodes, without decoding.

    JPEG and PNG: the signature and the end marker (a truncated or foreign payload); raw:
    the shape, dtype and length. A stage that forwards a frame's bytes unchanged calls
    this instead of paying for a decode (a 512 px JPEG: ~1.5 ms).

    Raises:
        FrameFormatError: TRUNCATED_IMAGE, UNDECODABLE_IMAGE, MISSING_HEADER or BAD_HEADER.
    """
    if content_type is ContentType.RAW:
        _decode_raw(data, shape, dtype)  # a view of the bytes: checks, copies nothing
    else:
        _check_complete(data, content_type)


def _check_complete(data: bytes, content_type: ContentType) -> None:
    if content_type is ContentType.JPEG:
        head, tail, name = _JPEG_SOI, _JPEG_EOI, "JPEG"
        # Some encoders pad with zero bytes after the end-of-image marker.
        body = data.rstrip(b"\x00")
    else:
        head, tail, name = _PNG_SIGNATURE, _PNG_IEND, "PNG"
        body = data
    if not body.startswith(head):
        msg = f"{len(data)} bytes do not start with the {name} signature {head.hex()}"
        raise FrameFormatError(FrameProblem.UNDECODABLE_IMAGE, msg)
    if not body.endswith(tail):
        msg = f"{name} data of {len(data)} bytes lacks its end marker {tail.hex()}: truncated"
        raise FrameFormatError(FrameProblem.TRUNCATED_IMAGE, msg)


def _decode_raw(data: bytes, shape: Sequence[int] | None, dtype: str | None) -> Image:
    if shape is None or dtype is None:
        msg = "a raw frame needs its shape and dtype"
        raise FrameFormatError(FrameProblem.MISSING_HEADER, msg)
    if dtype not in RAW_DTYPES:
        msg = f"raw dtype {dtype!r} is not one of {', '.join(RAW_DTYPES)}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    if len(shape) not in (2, 3) or any(n <= 0 for n in shape):
        msg = f"raw shape {tuple(shape)} is not (height, width[, channels]) of positive sizes"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    # math.prod: exact Python ints; np.prod wraps around in int64 for forged shapes (2**32, 2**32).
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(data) != expected:
        problem = FrameProblem.TRUNCATED_IMAGE if len(data) < expected else FrameProblem.BAD_HEADER
        msg = f"raw {dtype} frame of shape {tuple(shape)} needs {expected} bytes, got {len(data)}"
        raise FrameFormatError(problem, msg)
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(tuple(shape))
