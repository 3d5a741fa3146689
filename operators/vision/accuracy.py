"""Detection accuracy as F1, the rule of Houmani et al. §IV-B.

A detection is a true positive when its IoU with a true box of the same label is at least
0.5; detections are matched greedily in order of decreasing confidence, each true box at most
once (a second detection of the same object is a false positive). Every unmatched detection is
a false positive and every unmatched true box a false negative; F1 = 2TP / (2TP + FP + FN).

Conventions:

* Detections and truth may refer to images of different sizes (a detector input of 320 px
  against a 1024 px truth): the detections are rescaled to the truth's image size first.
* With no true boxes and no detections there is nothing to get wrong: F1 is 1.0.
* ``labels`` restricts both sides to the classes a detector can report, so a face detector
  is not charged for the people in the scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tierflow.operators.vision.detections import Detections, box_iou

IOU_THRESHOLD = 0.5
"""Minimum IoU of a true positive (paper §IV-B)."""


class MatchCounts(NamedTuple):
    """True positives, false positives and false negatives (counts of boxes)."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: object) -> MatchCounts:  # sum, not concatenation
        if not isinstance(other, MatchCounts):
            return NotImplemented
        return MatchCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def f1(self) -> float:
        """2TP / (2TP + FP + FN); 1.0 when there was nothing to find and nothing was found."""
        return f1_score(*self)


def f1_score(tp: int, fp: int, fn: int) -> float:
    """F1 from counts: 2TP / (2TP + FP + FN), and 1.0 when all three are zero."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def match(
    pred: Detections,
    truth: Detections,
    iou: float = IOU_THRESHOLD,
    labels: Sequence[str] | None = None,
) -> MatchCounts:
    """Count TP, FP and FN of ``pred`` against ``truth`` with the paper's rule.

    Args:
        pred: detections, boxes in pixels of ``pred.image_size``; rescaled to
            ``truth.image_size`` before matching.
        truth: true boxes in pixels of ``truth.image_size``.
        iou: minimum intersection over union of a true positive (inclusive).
        labels: if given, only boxes (on both sides) with one of these labels count.

    Returns:
        The counts: each prediction is a TP or an FP, each true box a TP or an FN.
    """
    if labels is not None:
        pred, truth = pred.with_labels(labels), truth.with_labels(labels)
    if pred.image_size != truth.image_size:
        pred = pred.scaled_to(truth.image_size)
    overlaps = box_iou(pred.xyxy, truth.xyxy)
    # Only same-label pairs at or above the threshold may match.
    overlaps[(pred.labels[:, None] != truth.labels[None, :]) | (overlaps < iou)] = -1.0
    free = np.ones(len(truth), np.bool_)
    tp = 0
    for i in np.argsort(-pred.confidence, kind="stable"):
        candidates = np.where(free, overlaps[i], -1.0)
        if len(candidates) and candidates.max() >= 0.0:
            free[int(candidates.argmax())] = False
            tp += 1
    return MatchCounts(tp, len(pred) - tp, len(truth) - tp)


class F1Score:
    """F1 accumulated over many frames (micro-averaged: counts are summed, then F1 is taken).

    Args:
        labels: classes that count (e.g. ``Detector.labels``); ``None`` counts every label.
        iou: minimum IoU of a true positive.

    Example:
        >>> score = F1Score(labels=("face",))
        >>> truth = Detections.from_lists([[0, 0, 10, 10]], ["face"], (100, 100))
        >>> score.update(truth, truth).compute()
        1.0
    """

    def __init__(self, labels: Sequence[str] | None = None, iou: float = IOU_THRESHOLD) -> None:
        self.labels = tuple(labels) if labels is not None else None
        self.iou = iou
        self.counts = MatchCounts(0, 0, 0)

    def update(self, pred: Detections, truth: Detections) -> F1Score:
        """Add one frame's detections and truth; returns ``self`` to chain ``compute``."""
        self.counts = self.counts + match(pred, truth, self.iou, self.labels)
        return self

    def compute(self) -> float:
        """F1 over every frame since the last reset; 1.0 if nothing was seen or detected."""
        return self.counts.f1

    def reset(self) -> None:
        """Forget every frame seen so far."""
        self.counts = MatchCounts(0, 0, 0)


class CarryForward:
    """F1 over every captured frame of one source, by carry-forward.

    A frame that was not analysed (sampled out at the camera, dropped, deadlettered) takes
    the detections of the last analysed frame before it, as a user of the stream would see
    it; an analysed frame takes its own. Frames arrive in any order; each is scored, in
    sequence order, once :meth:`resolve` is told that no earlier frame can still arrive.
    Before the first analysed frame nothing is detected: its true objects are misses.

    Args:
        iou: minimum IoU of a true positive.

    Attributes:
        counts: TP, FP, FN summed over the frames scored so far.
        frames: frames scored so far (those with ground truth).
    """

    def __init__(self, iou: float = IOU_THRESHOLD) -> None:
        self.iou = iou
        self.counts = MatchCounts(0, 0, 0)
        self.frames = 0
        self._pending: dict[int, tuple[int, Detections | None, Detections | None]] = {}
        self._last: Detections | None = None
        self._labels: Sequence[str] | None = None

    def add(
        self,
        sequence: int,
        time_ns: int,
        truth: Detections | None,
        found: Detections | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        """One captured frame: ``found`` when it was analysed (with the ``labels`` that count)."""
        self._pending[sequence] = (time_ns, truth, found)
        if found is not None and labels is not None:
            self._labels = tuple(labels)

    def resolve(self, before_ns: int | None = None) -> None:
        """Score, in sequence order, the frames captured before ``before_ns`` (all when None)."""
        ready = sorted(
            seq for seq, (t, _, _) in self._pending.items() if before_ns is None or t < before_ns
        )
        for seq in ready:
            _, truth, found = self._pending.pop(seq)
            if found is not None:
                self._last = found
            if truth is None:
                continue
            used = self._last
            if used is None:
                kept = truth if self._labels is None else truth.with_labels(self._labels)
                self.counts = self.counts + MatchCounts(0, 0, len(kept))
            else:
                self.counts = self.counts + match(used, truth, self.iou, self._labels)
            self.frames += 1

    @property
    def f1(self) -> float | None:
        """F1 over the frames scored so far; None before any frame with truth was scored."""
        return self.counts.f1 if self.frames else None
