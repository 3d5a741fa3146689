"""The one detection type every backend produces and every consumer (draw, F1, metrics) reads.

Column-aligned numpy arrays, validated on construction; boxes are ``x1, y1, x2, y2`` in pixels
of an image of ``image_size`` (width, height), so rescaling between the camera frame, the
detector input and the annotated frame is explicit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[np.float32]
"""(N, 4) boxes ``x1, y1, x2, y2`` in pixels, x to the right, y down."""


@dataclass(frozen=True, eq=False)
class Detections:
    """N detected (or true) objects in one image.

    Attributes:
        xyxy: (N, 4) float32 boxes in pixels of ``image_size``.
        confidence: (N,) float32 scores in [0, 1] (1 for ground truth).
        labels: (N,) str class names, e.g. ``face``, ``person`` (COCO names where they exist).
        image_size: (width, height) in pixels of the image the boxes refer to.
    """

    xyxy: Boxes
    confidence: npt.NDArray[np.float32]
    labels: npt.NDArray[np.str_]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        problems = []
        if self.xyxy.shape != (n, 4):
            problems.append(f"xyxy must be (N, 4), got {self.xyxy.shape}")
        if self.confidence.shape != (n,):
            problems.append(f"confidence must be ({n},), got {self.confidence.shape}")
        if self.labels.shape != (n,):
            problems.append(f"labels must be ({n},), got {self.labels.shape}")
        w, h = self.image_size
        if w <= 0 or h <= 0:
            problems.append(f"image_size must be positive (width, height), got {self.image_size}")
        if problems:
            msg = "invalid Detections: " + "; ".join(problems)
            raise ValueError(msg)

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Detections:
        """No detections in an image of ``image_size`` (width, height) pixels."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, dtype="<U1"),
            image_size,
        )

    @classmethod
    def from_lists(
        cls,
        boxes: Sequence[Sequence[float]],
        labels: Sequence[str],
        image_size: tuple[int, int],
        confidence: Sequence[float] | None = None,
    ) -> Detections:
        """Build from plain lists; confidence defaults to 1 (ground truth)."""
        if not boxes:
            return cls.empty(image_size)
        conf = confidence if confidence is not None else [1.0] * len(boxes)
        return cls(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(conf, np.float32),
            np.asarray(labels, dtype=np.str_),
            image_size,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """The detections selected by a boolean mask or an index array."""
        return Detections(
            self.xyxy[mask], self.confidence[mask], self.labels[mask], self.image_size
        )

    def scaled_to(self, image_size: tuple[int, int]) -> Detections:
        """The same objects in an image of ``image_size`` (width, height) pixels."""
        sx = image_size[0] / self.image_size[0]
        sy = image_size[1] / self.image_size[1]
        scale = np.array([sx, sy, sx, sy], np.float32)
        return Detections(self.xyxy * scale, self.confidence, self.labels, image_size)

    def with_labels(self, keep: Sequence[str]) -> Detections:
        """Only the detections whose label is in ``keep``."""
        return self[np.isin(self.labels, list(keep))]

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate detections of the same image (same ``image_size``)."""
        if not parts:
            msg = "merge needs at least one Detections to know the image size"
            raise ValueError(msg)
        sizes = {p.image_size for p in parts}
        if len(sizes) != 1:
            msg = f"cannot merge detections of different image sizes: {sorted(sizes)}"
            raise ValueError(msg)
        return cls(
            np.concatenate([p.xyxy for p in parts]).astype(np.float32),
            np.concatenate([p.confidence for p in parts]).astype(np.float32),
            np.concatenate([p.labels for p in parts]).astype(np.str_),
            parts[0].image_size,
        )


def box_iou(a: Boxes, b: Boxes) -> npt.NDArray[np.float32]:
    """Intersection over union of every pair: (N, 4), (M, 4) -> (N, M), boxes in xyxy pixels."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (bottom_right - top_left).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
