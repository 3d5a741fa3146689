"""Pairs of processed frames of one source, for the carry-forward model of the controller.

For each processed frame with ground truth, the detections of the few processed frames of
its source before it are scored against its truth: what a frame skipped at that lag would
have scored by carry-forward (:mod:`tierflow.operators.planning.frame_rate`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from tierflow.operators.vision.accuracy import match
from tierflow.operators.vision.detections import Detections
from tierflow.topics.records import FrameRecord

KEEP = 6
"""Earlier processed frames of a source each frame is paired with."""
HORIZON_S = 4.0
"""Pairs further apart than this say nothing the model uses, seconds."""


@dataclass(frozen=True)
class Pair:
    """Detections ``lag_s`` old scored against a frame's truth, beside the frame's own score."""

    quality: int
    lag_s: float
    carried_f1: float
    fresh_f1: float


class CarryPairs:
    """Remembers the last processed frames of each source; pairs each new one with them."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._seen: dict[str, deque[tuple[int, Detections, tuple[str, ...] | None]]] = {}

    def add(self, record: FrameRecord) -> Iterator[Pair]:
        """The pairs ``record`` (a processed frame) makes with its source's earlier frames."""
        if record.found is None:
            return
        found = record.found.detections()
        labels = tuple(record.found.classes) if record.found.classes is not None else None
        earlier = self._seen.setdefault(record.source, deque(maxlen=self.keep))
        if record.truth is not None and record.f1 is not None:
            truth = record.truth.detections()
            for capture_ns, detections, classes in earlier:
                lag_s = (record.capture_ns - capture_ns) / 1e9
                if 0 < lag_s <= HORIZON_S:
                    carried = match(detections, truth, labels=classes).f1
                    yield Pair(record.quality, lag_s, carried, record.f1)
        earlier.append((record.capture_ns, found, labels))
