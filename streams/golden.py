"""Golden-configuration truth for unlabelled video (Chameleon's idea, Jiang et al. 2018).

A source without ground truth (``truth = "golden"`` in a sources file) sends, every
``camera.golden_every_s`` seconds, one of its frames a second time at the strongest quality
it may use: a *reference copy* (``tf-reference: 1``). Whatever the strongest configuration
finds in that copy is taken as the truth of the frame, and the frame's own detections, at
the quality the controller chose, are scored against it with the seed paper's F1 rule
(§IV-B). So the controller's accuracy model has signal on real video — F1 relative to the
best this pipeline can do, not to what is really there; the summary says so (``truth:
golden``). At the strongest quality a frame scores 1 by construction (the copy is the
same frame through the same detector).

A reference copy is not a frame: it has no outcome of its own and is in no count.
:class:`GoldenPairs` pairs the two records of a probed frame as they arrive on
``metrics.frames``, in either order.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from confluent_kafka import KafkaError, Message, Producer

from tierflow.errors import FrameFormatError
from tierflow.operators.vision.accuracy import MatchCounts, match
from tierflow.streams.capture import Captured, framed
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, producer_headers
from tierflow.topics.records import FrameRecord, Outcome

log = logging.getLogger(__name__)

PENDING = 2048
"""Records waiting for their partner, per reader (oldest forgotten first)."""


@dataclass(frozen=True)
class Scored:
    """A frame scored against its reference copy."""

    source: str
    quality: int
    detector: str
    counts: MatchCounts


class GoldenPairs:
    """Pairs processed frames with their reference copies; yields the scored frames."""

    def __init__(self, pending: int = PENDING) -> None:
        self.pending = pending
        self._frames: OrderedDict[tuple[str, int, int], FrameRecord] = OrderedDict()
        self._references: OrderedDict[tuple[str, int, int], FrameRecord] = OrderedDict()

    def add(self, record: FrameRecord) -> Scored | None:
        """Fold in a record; the score of its frame once both records are in, else None.

        Only processed records without truth of their own take part (a frame with a truth
        file is scored by it; a dropped frame or copy has nothing to compare).
        """
        if record.outcome is not Outcome.PROCESSED or record.found is None:
            return None
        if record.truth is not None and not record.reference:
            return None
        key = (record.source, record.sequence, record.capture_ns)
        mine, theirs = (
            (self._references, self._frames)
            if record.reference
            else (self._frames, self._references)
        )
        partner = theirs.pop(key, None)
        if partner is None:
            mine[key] = record
            while len(mine) > self.pending:
                mine.popitem(last=False)
            return None
        frame, reference = (partner, record) if record.reference else (record, partner)
        return self.score(frame, reference)

    @staticmethod
    def score(frame: FrameRecord, reference: FrameRecord) -> Scored | None:
        """``frame``'s detections against ``reference``'s, over the labels it can report."""
        if frame.found is None or reference.found is None:
            return None
        found = frame.found.detections()
        truth = reference.found.detections()
        counts = match(found, truth, labels=frame.found.classes)
        return Scored(frame.source, frame.quality, frame.detector or "", counts)


class ReferenceCopies:
    """A golden source's camera side: reference copies of some of its frames.

    Every ``every_s`` seconds, one sent frame goes again at ``quality`` (the strongest the
    source may use), flagged ``tf-reference``.

    Copies are counted apart (``sent``, ``delivered``, ``failed``): they are probes, not
    frames, and no outcome is expected for them.

    Args:
        contract: topic names and the frame codec.
        producer: the camera's producer.
        quality: the strongest quality, pixels (its detector must run).
        every_s: seconds between copies.
    """

    def __init__(
        self, contract: Contract, producer: Producer, quality: int, every_s: float
    ) -> None:
        self.contract = contract
        self.producer = producer
        self.quality = quality
        self.every_s = every_s
        self.sent = self.delivered = self.failed = 0
        self._due = time.monotonic()

    def offer(self, captured: Captured, meta: FrameMeta) -> None:
        """Send a reference copy of the frame just sent (``meta``), if one is due."""
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self.every_s
        image, _, origin = framed(captured, self.quality)
        copy = replace(meta, quality=self.quality, origin=origin, truth=None, reference=True)
        try:
            value, headers = self.contract.codec.encode(image, copy)
            self.producer.produce(
                self.contract.names.raw(self.quality),
                key=meta.source.encode(),
                value=value,
                headers=producer_headers(headers),
                on_delivery=self._delivered,
            )
            self.sent += 1
        except (BufferError, FrameFormatError) as exc:
            self.failed += 1
            log.warning(
                "%s: reference copy of frame %d not sent: %s", meta.source, meta.sequence, exc
            )

    def _delivered(self, err: KafkaError | None, _message: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
