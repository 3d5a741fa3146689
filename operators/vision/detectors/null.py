"""A detector that finds nothing at no cost: the data plane measured without inference.

``detector.backend = "null"`` runs the whole pipeline (cameras, resize, detect with its
decode and batching, draw, records) with inference taken out, which is what
``bench/naive_vs_tierflow.py --null-detector`` measures.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections


class NullDetector:
    """Returns no detections for every image.

    Args:
        input_size: side in pixels of the square images :meth:`detect` expects.
        labels: the labels it pretends it can report (F1 counts every true object of them
            as missed).
    """

    def __init__(self, input_size: int, labels: Sequence[str] = ("face",)) -> None:
        self.name = "null"
        self.input_size = input_size
        self.labels = tuple(labels)

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        """No detections, one empty result per image."""
        return [Detections.empty((image.shape[1], image.shape[0])) for image in images]

    def close(self) -> None:
        """Nothing to release."""
