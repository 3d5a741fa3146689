"""The interface every detector backend implements.

A detector takes a batch of BGR images already resized to its ``input_size`` (by the resize stage)
and returns one :class:`~tierflow.operators.vision.detections.Detections` per image, boxes in pixels
of that image. ``detect`` blocks (it is CPU or network bound): callers run it off the event loop.
Backends convert their native output into ``Detections`` at their edge; nothing downstream knows
which backend produced a box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tierflow.errors import TierflowError
from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections


class DetectorError(TierflowError):
    """A detector could not be loaded or could not run on its input."""


@runtime_checkable
class Detector(Protocol):
    """A batch object detector.

    Attributes:
        name: backend and model, e.g. ``haar:face``, ``onnx:yolov8n``, ``triton:yolo@grpc``.
        input_size: side in pixels of the square images ``detect`` expects.
        labels: class names this detector can report (F1 is computed over these).
    """

    name: str
    input_size: int
    labels: tuple[str, ...]

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        """Detect objects in each image; blocking.

        Args:
            images: BGR uint8 arrays of shape (input_size, input_size, 3).

        Returns:
            One Detections per image, in order, boxes in pixels of that image.

        Raises:
            DetectorError: the backend failed (model error, server unreachable, bad shape).
        """
        ...

    def close(self) -> None:
        """Release sessions, connections and threads."""
        ...
