"""Resizing frames to a quality or a detector's input size (the pre-processing stage, NI).

Frames are square at every quality (the seed paper's 512x512 / 416x416), so a resize is
one number: the side in pixels.
"""

from __future__ import annotations

import cv2

from tierflow.operators.vision.codec import Image


def resize_square(image: Image, side: int) -> Image:
    """``image`` resized to ``side`` x ``side`` pixels; the same array when already that size.

    INTER_AREA when shrinking (no aliasing, the quality a real camera would deliver),
    INTER_LINEAR when enlarging.
    """
    if side <= 0:
        msg = f"side must be a positive number of pixels, got {side}"
        raise ValueError(msg)
    height, width = image.shape[:2]
    if (height, width) == (side, side):
        return image
    shrinking = side < max(height, width)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)
