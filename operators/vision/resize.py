"""Resizing frames to a quality or a detector's input size (the pre-processing stage, NI).

Frames are square at every quality (the seed paper's 512x512 / 416x416), so a quality is
one number: the side in pixels. A source whose frames are not square is *letterboxed*
into that square (scaled by its longer side, the rest padded), never squashed: squashing
changes the objects' aspect ratio, which a detector trained on undistorted images pays
for in accuracy, and makes boxes hard to map back to the source's pixels.
:class:`Letterbox` is the one place that maps boxes between the source's pixels and the
frame's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections

PAD_VALUE = 114
"""Grey of the letterbox bands (the value YOLO-family pre-processing pads with)."""


def resize_square(image: Image, side: int) -> Image:
    """``image`` resized to ``side`` x ``side`` pixels; the same array when already that size.

    INTER_AREA when shrinking (no aliasing, the quality a real camera would deliver),
    INTER_LINEAR when enlarging. Use it between square frames; :func:`letterbox` for a
    source's own frames.
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


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``origin`` (width, height) pixels sits in a ``side`` x ``side`` frame.

    The image is scaled by ``scale = side / max(width, height)`` and centred; the bands
    left over are ``pad_x`` pixels at the left (and about as many at the right) and
    ``pad_y`` at the top.
    """

    origin: tuple[int, int]
    side: int
    scale: float
    pad_x: int
    pad_y: int

    @classmethod
    def of(cls, origin: tuple[int, int], side: int) -> Letterbox:
        """The letterbox of an ``origin`` (width, height) image in a ``side``-pixel square."""
        width, height = origin
        if width <= 0 or height <= 0 or side <= 0:
            msg = f"letterbox needs positive sizes, got origin {origin} and side {side}"
            raise ValueError(msg)
        scale = side / max(width, height)
        content = cls._content(origin, scale, side)
        return cls(origin, side, scale, (side - content[0]) // 2, (side - content[1]) // 2)

    @staticmethod
    def _content(origin: tuple[int, int], scale: float, side: int) -> tuple[int, int]:
        return (
            min(side, max(1, round(origin[0] * scale))),
            min(side, max(1, round(origin[1] * scale))),
        )

    @property
    def content(self) -> tuple[int, int]:
        """(width, height) in frame pixels of the image inside the bands."""
        return self._content(self.origin, self.scale, self.side)

    def to_frame(self, detections: Detections) -> Detections:
        """``detections`` of the origin image (any scale of it) in pixels of the frame."""
        at_origin = detections.scaled_to(self.origin)
        offset = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        xyxy = at_origin.xyxy * np.float32(self.scale) + offset
        return Detections(xyxy, at_origin.confidence, at_origin.labels, (self.side, self.side))

    def to_origin(self, detections: Detections) -> Detections:
        """``detections`` in frame pixels (any square scale of it) back in origin pixels.

        Boxes are clipped to the image: a box that reaches into a band ends at the edge.
        """
        in_frame = detections.scaled_to((self.side, self.side))
        offset = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        xyxy = (in_frame.xyxy - offset) / np.float32(self.scale)
        width, height = self.origin
        limits = np.array([width, height] * 2, np.float32)
        xyxy = np.clip(xyxy, 0, limits).astype(np.float32)
        return Detections(xyxy, in_frame.confidence, in_frame.labels, self.origin)

    def apply(self, image: Image) -> Image:
        """``image`` (of the origin's aspect ratio, at any scale) in its square frame."""
        height, width = image.shape[:2]
        if width == height:
            return resize_square(image, self.side)
        content_w, content_h = self.content
        shrinking = content_w < width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        inner = cv2.resize(image, (content_w, content_h), interpolation=interpolation)
        frame = np.full((self.side, self.side, *image.shape[2:]), PAD_VALUE, image.dtype)
        frame[self.pad_y : self.pad_y + content_h, self.pad_x : self.pad_x + content_w] = inner
        return frame


def letterbox(image: Image, side: int) -> Image:
    """``image`` scaled by its longer side into a ``side`` x ``side`` frame, padded grey."""
    height, width = image.shape[:2]
    return Letterbox.of((width, height), side).apply(image)
