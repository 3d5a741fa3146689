"""Letterboxing: frames keep their aspect ratio and boxes go back to the source's pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.resize import PAD_VALUE, Letterbox, letterbox


def test_a_wide_image_is_scaled_by_its_width_and_padded_above_and_below() -> None:
    image = np.full((360, 640, 3), 200, np.uint8)
    frame = letterbox(image, 320)
    assert frame.shape == (320, 320, 3)
    box = Letterbox.of((640, 360), 320)
    assert box.scale == 0.5 and box.content == (320, 180) and (box.pad_x, box.pad_y) == (0, 70)
    assert (frame[:70] == PAD_VALUE).all() and (frame[250:] == PAD_VALUE).all()
    assert (frame[70:250] == 200).all()


def test_a_square_image_is_only_resized() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    assert letterbox(image, 64) is image
    assert letterbox(image, 32).shape == (32, 32, 3)


@given(
    width=st.integers(16, 4000),
    height=st.integers(16, 4000),
    side=st.sampled_from([320, 416, 512]),
    x=st.floats(0, 0.8),
    y=st.floats(0, 0.8),
    size=st.floats(0.05, 0.2),
)
def test_boxes_survive_the_round_trip_to_the_frame_and_back(
    width: int, height: int, side: int, x: float, y: float, size: float
) -> None:
    box = Letterbox.of((width, height), side)
    xyxy = [x * width, y * height, (x + size) * width, (y + size) * height]
    truth = Detections.from_lists([xyxy], ["face"], (width, height))
    in_frame = box.to_frame(truth)
    assert in_frame.image_size == (side, side)
    assert (in_frame.xyxy >= -1e-3).all() and (in_frame.xyxy <= side + 1e-3).all()
    back = box.to_origin(in_frame.scaled_to((side // 2, side // 2)))
    assert back.image_size == (width, height)
    # One frame pixel of rounding in the content size is at most 1/scale source pixels.
    np.testing.assert_allclose(back.xyxy[0], xyxy, atol=2.0 / box.scale)


def test_a_box_in_the_bands_is_clipped_to_the_image() -> None:
    box = Letterbox.of((640, 360), 320)
    in_band = Detections.from_lists([[10, 0, 50, 100]], ["face"], (320, 320))
    back = box.to_origin(in_band)
    assert back.xyxy[0, 1] == 0  # reached into the top band: starts at the image's edge


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Letterbox.of((0, 10), 320)
