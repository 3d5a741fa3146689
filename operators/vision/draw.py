"""Drawing detections onto frames (the post-processing stage's annotate step)."""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections

# A colour-blind-safe palette (Okabe-Ito), BGR.
_PALETTE = (
    (0, 159, 230),
    (233, 180, 86),
    (115, 158, 0),
    (66, 228, 240),
    (178, 114, 0),
    (0, 94, 213),
    (167, 121, 204),
)


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable BGR colour per label (the same on every frame and every run)."""
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


class BoxAnnotator:
    """Draws boxes with ``label confidence`` captions; styling is fixed at construction.

    Args:
        thickness: box line width in pixels.
        font_scale: OpenCV font scale of the captions.
        show_confidence: append the score to the label.
    """

    def __init__(
        self, thickness: int = 2, font_scale: float = 0.45, show_confidence: bool = True
    ) -> None:
        self.thickness = thickness
        self.font_scale = font_scale
        self.show_confidence = show_confidence

    def annotate(self, image: Image, detections: Detections) -> Image:
        """A copy of ``image`` with ``detections`` drawn; boxes are rescaled to the image size."""
        height, width = image.shape[:2]
        if detections.image_size != (width, height):
            detections = detections.scaled_to((width, height))
        canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        boxes = np.rint(detections.xyxy).astype(int)
        for (x1, y1, x2, y2), score, label in zip(
            boxes, detections.confidence, detections.labels, strict=True
        ):
            colour = label_colour(str(label))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, self.thickness)
            caption = f"{label} {score:.2f}" if self.show_confidence else str(label)
            (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, self.font_scale, 1)
            top = max(y1 - th - base - 2, 0)
            cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
            cv2.putText(
                canvas,
                caption,
                (x1 + 2, top + th + 1),
                cv2.FONT_HERSHEY_SIMPLEX,
                self.font_scale,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
        return canvas
