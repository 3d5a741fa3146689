from __future__ import annotations

import numpy as np
import pytest

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import ContentType, decode_image, encode_image


def _image(h: int = 48, w: int = 64, c: int = 3, dtype: str = "uint8") -> np.ndarray:
    rng = np.random.default_rng(7)
    shape = (h, w) if c == 1 else (h, w, c)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.mark.parametrize(
    ("content", "c", "dtype"),
    [
        (ContentType.PNG, 3, "uint8"),
        (ContentType.PNG, 4, "uint8"),
        (ContentType.PNG, 1, "uint16"),
        (ContentType.RAW, 3, "uint8"),
        (ContentType.RAW, 1, "float32"),
    ],
)
def test_lossless_encodings_round_trip_exactly(content: ContentType, c: int, dtype: str) -> None:
    image = _image(c=c, dtype=dtype)
    shape = image.shape if content is ContentType.RAW else None
    back = decode_image(encode_image(image, content), content, shape, dtype)
    np.testing.assert_array_equal(back, image)


def test_jpeg_round_trip_is_close_at_high_quality() -> None:
    image = np.full((64, 64, 3), 120, np.uint8)
    image[16:48, 16:48] = (20, 200, 90)
    back = decode_image(encode_image(image, ContentType.JPEG, 95), ContentType.JPEG)
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 2.0


def test_truncated_jpeg_is_reported_as_truncated() -> None:
    data = encode_image(_image(), ContentType.JPEG)
    with pytest.raises(FrameFormatError) as err:
        decode_image(data[: len(data) // 2], ContentType.JPEG)
    assert err.value.problem is FrameProblem.TRUNCATED_IMAGE
    assert "truncated" in str(err.value)


def test_truncated_png_is_reported_as_truncated() -> None:
    data = encode_image(_image(), ContentType.PNG)
    with pytest.raises(FrameFormatError) as err:
        decode_image(data[:-20], ContentType.PNG)
    assert err.value.problem is FrameProblem.TRUNCATED_IMAGE


def test_jpeg_padded_with_zeros_still_decodes() -> None:
    data = encode_image(_image(), ContentType.JPEG)
    assert decode_image(data + b"\x00\x00", ContentType.JPEG).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not an image at all", FrameProblem.UNDECODABLE_IMAGE),
        (b"\xff\xd8garbage-in-the-middle\xff\xd9", FrameProblem.UNDECODABLE_IMAGE),
        (b"", FrameProblem.UNDECODABLE_IMAGE),
    ],
)
def test_garbage_is_undecodable(data: bytes, problem: FrameProblem) -> None:
    with pytest.raises(FrameFormatError) as err:
        decode_image(data, ContentType.JPEG)
    assert err.value.problem is problem


@pytest.mark.parametrize(
    ("image", "content"),
    [
        ([[1, 2], [3, 4]], ContentType.JPEG),
        (np.zeros((8, 8, 3), np.float32), ContentType.JPEG),
        (np.zeros((8, 8, 4), np.uint8), ContentType.JPEG),
        (np.zeros((8,), np.uint8), ContentType.PNG),
        (np.zeros((0, 8, 3), np.uint8), ContentType.PNG),
        (np.zeros((8, 8), np.int64), ContentType.RAW),
    ],
)
def test_arrays_an_encoding_cannot_hold_are_wrong_type(image: object, content: ContentType) -> None:
    with pytest.raises(FrameFormatError) as err:
        encode_image(image, content)  # type: ignore[arg-type]  # the wrong type is the point
    assert err.value.problem is FrameProblem.WRONG_TYPE


@pytest.mark.parametrize(
    ("size_delta", "shape", "dtype", "problem"),
    [
        (-1, (4, 4, 3), "uint8", FrameProblem.TRUNCATED_IMAGE),
        (+1, (4, 4, 3), "uint8", FrameProblem.BAD_HEADER),
        (0, (4, 4, 3), "object", FrameProblem.BAD_HEADER),
        (0, (4, -4, 3), "uint8", FrameProblem.BAD_HEADER),
        (0, None, "uint8", FrameProblem.MISSING_HEADER),
    ],
)
def test_raw_frames_check_shape_dtype_and_size(
    size_delta: int, shape: tuple[int, ...] | None, dtype: str, problem: FrameProblem
) -> None:
    data = bytes(48 + size_delta)
    with pytest.raises(FrameFormatError) as err:
        decode_image(data, ContentType.RAW, shape, dtype)
    assert err.value.problem is problem


def test_unknown_content_type_names_the_known_ones() -> None:
    with pytest.raises(FrameFormatError) as err:
        ContentType.parse("video/h264")
    assert err.value.problem is FrameProblem.UNSUPPORTED_CONTENT
    assert "image/jpeg" in str(err.value)


def test_a_forged_raw_shape_whose_size_overflows_int64_is_a_format_error() -> None:
    """(2**32, 2**32, 1) is 2**64 bytes: np.prod wrapped it to 0, matching an empty value."""
    with pytest.raises(FrameFormatError) as err:
        decode_image(b"", ContentType.RAW, (2**32, 2**32, 1), "uint8")
    assert err.value.problem is FrameProblem.TRUNCATED_IMAGE
