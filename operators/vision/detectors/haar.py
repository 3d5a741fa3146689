"""The embedded default detector: OpenCV's bundled Haar cascades (Viola-Jones), CPU only.

It needs no model download and no server, so the pipeline runs anywhere; it is the weakest
detector and its cost grows with the input size (DESIGN.md: about 105 ms @512 with two
threads), which is what makes the quality trade-off of the control plane visible.

Confidence: Haar cascades give no probability. We ask ``detectMultiScale3`` for the reject
levels and take each grouped box's level weight (the summed score of the cascade's last
stage: higher is more face-like), squashed into [0, 1] with a logistic,
``1 / (1 + exp(-weight / 2))``. It only orders detections (F1 matches by confidence); it is
not calibrated. On generated scenes true faces score a median 0.95, false positives 0.73.

Defaults (measured with ``bench/scene_f1.py``): scale factor 1.15 and 3 neighbours without
histogram equalisation. Equalising cost F1 (0.82 against 0.95 at 512 px) and time, because
it turns flat or textured backgrounds into face-like windows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.detectors.base import DetectorError


@dataclass(frozen=True)
class Cascade:
    """One bundled cascade file and the label its boxes get."""

    file: str
    label: str


CASCADES: dict[str, Cascade] = {
    "face": Cascade("haarcascade_frontalface_default.xml", "face"),
    # COCO calls the whole visible person "person"; so do generated scenes
    # (tierflow.operators.vision.scene).
    "upper_body": Cascade("haarcascade_upperbody.xml", "person"),
    "full_body": Cascade("haarcascade_fullbody.xml", "person"),
}
"""Cascades by name. The default is face only: the upper-body cascade misses the astronaut
figure of generated scenes at every scale we tried, and adding it lowered F1 at 512 px from
0.95 to 0.89 (its truth counts then) at nearly three times the cost."""

_WEIGHT_SCALE = 2.0  # level weights of true faces are mostly 3..10; see module docstring


class HaarDetector:
    """Haar-cascade detector; thread-safe (one set of classifiers per calling thread).

    Args:
        input_size: side in pixels of the square images ``detect`` expects.
        cascades: names from ``CASCADES`` to run on every image.
        scale_factor: how much the search window grows per pyramid level (> 1); larger is
            faster and misses more.
        min_neighbors: candidate windows a box needs to be reported; larger means fewer
            false positives and more misses.
        min_size_px: smallest object side in pixels searched for; smaller objects are missed
            on purpose (it bounds the cost).
        equalize: equalise the grey histogram first (helps on dark or flat images).

    Raises:
        DetectorError: an unknown cascade name, a cascade file that does not load, or
            parameters out of range.
    """

    def __init__(
        self,
        input_size: int = 512,
        cascades: Sequence[str] = ("face",),
        *,
        scale_factor: float = 1.15,
        min_neighbors: int = 3,
        min_size_px: int = 24,
        equalize: bool = False,
    ) -> None:
        problems = []
        unknown = [c for c in cascades if c not in CASCADES]
        if unknown or not cascades:
            problems.append(
                f"cascades must be a non-empty subset of {sorted(CASCADES)}, got {list(cascades)}"
            )
        if input_size <= 0:
            problems.append(f"input_size must be positive pixels, got {input_size}")
        if scale_factor <= 1.0:
            problems.append(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0 or min_size_px < 1:
            problems.append(
                f"need min_neighbors >= 0 and min_size_px >= 1, got {min_neighbors}, {min_size_px}"
            )
        if problems:
            msg = "HaarDetector: " + "; ".join(problems)
            raise DetectorError(msg)
        self.input_size = input_size
        self.cascades = tuple(dict.fromkeys(cascades))
        self.labels = tuple(dict.fromkeys(CASCADES[c].label for c in self.cascades))
        self.name = "haar:" + "+".join(self.cascades)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_px = min_size_px
        self.equalize = equalize
        self._local = threading.local()
        self._classifiers()  # fail now, not on the first frame, if a file does not load

    def _classifiers(self) -> list[tuple[cv2.CascadeClassifier, str, tuple[int, int]]]:
        """This thread's classifiers with their labels and minimum window sizes in pixels."""
        loaded: list[tuple[cv2.CascadeClassifier, str, tuple[int, int]]] | None
        loaded = getattr(self._local, "classifiers", None)
        if loaded is None:
            loaded = [self._load(CASCADES[name]) for name in self.cascades]
            self._local.classifiers = loaded
        return loaded

    def _load(self, cascade: Cascade) -> tuple[cv2.CascadeClassifier, str, tuple[int, int]]:
        path = Path(cv2.data.haarcascades) / cascade.file  # type: ignore[attr-defined]  # not in cv2's stubs
        classifier = cv2.CascadeClassifier()
        if not path.is_file() or not classifier.load(str(path)):
            msg = f"HaarDetector: cannot load cascade {cascade.file!r} from {path.parent}"
            raise DetectorError(msg)
        # Scale the cascade's own window (not square for bodies) so its short side is min_size_px.
        w, h = classifier.getOriginalWindowSize()
        grow = max(1.0, self.min_size_px / min(w, h))
        return classifier, cascade.label, (round(w * grow), round(h * grow))

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        """Detect objects in each image; blocking, safe to call from several threads.

        Args:
            images: BGR uint8 arrays of shape (input_size, input_size, 3).

        Returns:
            One Detections per image, boxes in pixels of that image.

        Raises:
            DetectorError: an image of the wrong shape or dtype (nothing is detected then).
        """
        expected = (self.input_size, self.input_size, 3)
        for i, image in enumerate(images):
            if image.shape != expected or image.dtype != np.uint8:
                msg = (
                    f"{self.name}: image {i} must be uint8 {expected}, "
                    f"got {image.dtype} {image.shape}"
                )
                raise DetectorError(msg)
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: Image) -> Detections:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.equalize:
            grey = cv2.equalizeHist(grey)
        boxes: list[list[float]] = []
        labels: list[str] = []
        scores: list[float] = []
        for classifier, label, min_size in self._classifiers():
            found, _levels, weights = classifier.detectMultiScale3(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=min_size,
                outputRejectLevels=True,
            )
            for (x, y, w, h), weight in zip(found, np.ravel(weights), strict=True):
                boxes.append([float(x), float(y), float(x + w), float(y + h)])
                labels.append(label)
                scores.append(1.0 / (1.0 + math.exp(-float(weight) / _WEIGHT_SCALE)))
        size = (self.input_size, self.input_size)
        found_all = Detections.from_lists(boxes, labels, size, scores)
        # OpenCV collects candidates from parallel workers in no fixed order: sort, so that the
        # same image always gives the same Detections (most confident first, then top-left).
        order = np.lexsort((found_all.xyxy[:, 0], found_all.xyxy[:, 1], -found_all.confidence))
        return found_all[order]

    def close(self) -> None:
        """Drop the classifiers; threads that call ``detect`` again reload them."""
        self._local = threading.local()
