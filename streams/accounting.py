"""Per-source accounting from ``metrics.frames``.

Every produced frame must end in exactly one outcome; the summary says how many did, how
fast, and how accurately.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from tierflow.operators.vision.accuracy import CarryForward
from tierflow.streams.golden import GoldenPairs, Scored
from tierflow.topics.contract import Contract
from tierflow.topics.follow import Follower
from tierflow.topics.records import FrameRecord, Outcome, RecordError, parse_frame_records

T = TypeVar("T", bound=Hashable)

log = logging.getLogger(__name__)
RATE_WINDOW_S = 5.0
CARRY_HORIZON_S = 15.0
"""A frame's carry-forward score is final once a frame captured this much later is seen:
frames older than the deadline plus the slowest record's delivery cannot still arrive."""
MEMORY = 100_000
"""Latencies and sequence numbers kept per source: a camera at 25 fps fills it in about an
hour; percentiles are then over the latest frames, and duplicates are looked for among
them (a redelivered record arrives close to its first delivery)."""


class RecentSet(Generic[T]):
    """The last ``size`` distinct items seen, for duplicate detection in bounded memory."""

    def __init__(self, size: int = MEMORY) -> None:
        self._order: deque[T] = deque()
        self._items: set[T] = set()
        self._size = size

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        """Remember ``item``, forgetting the oldest beyond ``size``."""
        if item in self._items:
            return
        self._order.append(item)
        self._items.add(item)
        if len(self._order) > self._size:
            self._items.discard(self._order.popleft())

    def discard(self, item: T) -> None:
        """Forget ``item`` (its place in the order goes when it would have)."""
        self._items.discard(item)

    def snapshot(self) -> set[T]:
        """The items remembered now."""
        return set(self._items)


def micro_f1(tp: int, fp: int, fn: int) -> float | None:
    """F1 over summed counts (2TP / (2TP + FP + FN)); None when nothing was scored."""
    denominator = 2 * tp + fp + fn
    return None if denominator == 0 else 2 * tp / denominator


@dataclass
class QualityTally:
    """Scored frames of one source at one quality."""

    processed: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def f1(self) -> float | None:
        """Micro-averaged F1 of the frames scored at this quality."""
        return micro_f1(self.tp, self.fp, self.fn)


@dataclass
class SourceTally:
    """Outcomes of one source's frames seen on ``metrics.frames``.

    ``carried`` scores every captured frame with ground truth by carry-forward (a frame not
    analysed takes the detections of the last analysed one); ``f1`` is over analysed frames.
    ``controlled_latencies_s`` are those of frames captured under a control-plane epoch (the
    camera had followed an assignment), ``lag_s`` each stage's wait in front of it.
    """

    processed: int = 0
    sampled: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    deadlettered: Counter[str] = field(default_factory=Counter)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=MEMORY))
    controlled_latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=MEMORY))
    """Latencies of the latest frames (bounded: a camera may run for days), seconds."""
    lag_s: dict[str, deque[float]] = field(default_factory=dict)
    processed_at_s: deque[float] = field(default_factory=lambda: deque(maxlen=MEMORY))
    """When each processed frame left the pipeline (capture + latency), epoch seconds."""
    by_quality: dict[int, QualityTally] = field(default_factory=dict)
    carried: CarryForward = field(default_factory=CarryForward)
    frames: RecentSet[tuple[int, int]] = field(default_factory=RecentSet)
    """The latest frames given an outcome, as (sequence, capture_ns)."""
    duplicates: int = 0
    recent: deque[float] = field(default_factory=deque)
    last_quality: int | None = None
    golden: GoldenPairs = field(default_factory=GoldenPairs)
    golden_scored: int = 0
    """Frames scored against a reference copy (``truth = "golden"`` sources)."""

    def sequences(self) -> set[int]:
        """Sequence numbers of the latest frames given an outcome."""
        return {sequence for sequence, _ in self.frames.snapshot()}

    @property
    def accounted(self) -> int:
        """Frames with an outcome (sampled ones included: the camera skipped them on purpose)."""
        return (
            self.processed
            + self.sampled
            + sum(self.dropped.values())
            + sum(self.deadlettered.values())
        )

    def add(self, record: FrameRecord, now_s: float) -> None:
        """Fold one record in; a second record for the same frame counts as a duplicate.

        Records of frames whose headers were unreadable carry sequence -1: each is a frame
        of its own, never a duplicate of another.
        """
        if record.reference:  # a golden reference copy: not a frame, the truth of one
            self._scored(self.golden.add(record))
            return
        if record.sequence >= 0:
            # A camera restarted under the same id counts from 0 again: a frame is its
            # sequence *and* capture time (a redelivered record repeats both).
            frame = (record.sequence, record.capture_ns)
            if frame in self.frames:
                self.duplicates += 1
                return
            self.frames.add(frame)
        self.last_quality = record.quality
        self._carry(record)
        for stage, waited in record.transfer_s.items():
            self.lag_s.setdefault(stage, deque(maxlen=MEMORY)).append(waited)
        if record.outcome is Outcome.SAMPLED:
            self.sampled += 1
        elif record.outcome is Outcome.PROCESSED:
            self.processed += 1
            self.latencies_s.append(record.latency_s)
            self.processed_at_s.append(record.capture_ns / 1e9 + record.latency_s)
            if record.epoch > 0:
                self.controlled_latencies_s.append(record.latency_s)
            self.recent.append(now_s)
            tally = self.by_quality.setdefault(record.quality, QualityTally())
            tally.processed += 1
            if record.tp is not None:
                tally.tp += record.tp
                tally.fp += record.fp or 0
                tally.fn += record.fn or 0
            else:
                self._scored(self.golden.add(record))
        elif record.outcome is Outcome.DROPPED:
            self.dropped[record.policy.value if record.policy else "unnamed"] += 1
        else:
            self.deadlettered[record.reason or "unknown"] += 1

    def _scored(self, scored: Scored | None) -> None:
        """Count a frame scored against its reference copy (golden truth) in its quality."""
        if scored is None:
            return
        self.golden_scored += 1
        tally = self.by_quality.setdefault(scored.quality, QualityTally())
        tally.tp += scored.counts.tp
        tally.fp += scored.counts.fp
        tally.fn += scored.counts.fn

    def _carry(self, record: FrameRecord) -> None:
        """Feed the carry-forward score; frames older than its horizon are final."""
        found = record.found if record.outcome is Outcome.PROCESSED else None
        self.carried.add(
            record.sequence,
            record.capture_ns,
            record.truth.detections() if record.truth is not None else None,
            found.detections() if found is not None else None,
            found.classes if found is not None else None,
        )
        self.carried.resolve(before_ns=record.capture_ns - int(CARRY_HORIZON_S * 1e9))

    def fps_out(self, now_s: float) -> float:
        """Processed frames per second over the last few seconds."""
        while self.recent and self.recent[0] < now_s - RATE_WINDOW_S:
            self.recent.popleft()
        return len(self.recent) / RATE_WINDOW_S

    def percentile_s(self, q: float, latencies_s: deque[float] | None = None) -> float | None:
        """The ``q``-th percentile of end-to-end latency (or of ``latencies_s``), seconds."""
        values = self.latencies_s if latencies_s is None else latencies_s
        return float(np.percentile(values, q)) if values else None

    @property
    def max_gap_s(self) -> float | None:
        """The longest time between two consecutive processed frames, seconds.

        The downtime a source saw: a crash or a migration shows here (frame-rate sampling
        too, at most ``1 / fps``). None before two frames were processed.
        """
        if len(self.processed_at_s) < 2:
            return None
        return float(np.diff(np.sort(np.fromiter(self.processed_at_s, float))).max())

    @property
    def f1(self) -> float | None:
        """Micro-averaged F1 over every scored frame of the source."""
        tp = sum(t.tp for t in self.by_quality.values())
        fp = sum(t.fp for t in self.by_quality.values())
        fn = sum(t.fn for t in self.by_quality.values())
        return micro_f1(tp, fp, fn)

    def summary(self) -> dict[str, Any]:
        """The JSON-able summary of this source (without camera-side counts)."""
        self.carried.resolve()  # the run is over: no earlier frame can still arrive
        controlled = self.controlled_latencies_s
        return {
            "processed": self.processed,
            "sampled": self.sampled,
            "dropped": dict(self.dropped),
            "deadlettered": sum(self.deadlettered.values()),
            "deadletter_reasons": dict(self.deadlettered),
            "latency_p50_s": _round(self.percentile_s(50)),
            "latency_p99_s": _round(self.percentile_s(99)),
            "controlled_latency_p99_s": _round(self.percentile_s(99, controlled)),
            "lag_p99_s": {
                stage: _round(self.percentile_s(99, waits))
                for stage, waits in sorted(self.lag_s.items())
            },
            "f1": _round(self.f1),
            "f1_carry_forward": _round(self.carried.f1),
            "by_quality": {
                str(q): {"processed": t.processed, "f1": _round(t.f1)}
                for q, t in sorted(self.by_quality.items())
            },
            "max_gap_s": _round(self.max_gap_s),
            "duplicates": self.duplicates,
            "golden_scored": self.golden_scored,
        }


def totals(tallies: Iterable[SourceTally]) -> dict[str, Any]:
    """The summary of several sources together: counts summed, percentiles over every frame.

    ``max_gap_s`` is the longest gap of any one source (sources do not fill each other's).
    """
    merged = SourceTally()
    gaps: list[float] = []
    for tally in tallies:
        if (gap := tally.max_gap_s) is not None:
            gaps.append(gap)
        tally.carried.resolve()
        merged.processed += tally.processed
        merged.sampled += tally.sampled
        merged.dropped.update(tally.dropped)
        merged.deadlettered.update(tally.deadlettered)
        merged.duplicates += tally.duplicates
        merged.golden_scored += tally.golden_scored
        merged.latencies_s.extend(tally.latencies_s)
        merged.controlled_latencies_s.extend(tally.controlled_latencies_s)
        for stage, waits in tally.lag_s.items():
            merged.lag_s.setdefault(stage, deque(maxlen=None)).extend(waits)
        for quality, counts in tally.by_quality.items():
            into = merged.by_quality.setdefault(quality, QualityTally())
            into.processed += counts.processed
            into.tp += counts.tp
            into.fp += counts.fp
            into.fn += counts.fn
        merged.carried.counts = merged.carried.counts + tally.carried.counts
        merged.carried.frames += tally.carried.frames
    return {**merged.summary(), "max_gap_s": _round(max(gaps, default=None))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class MetricsCollector:
    """Follows ``metrics.frames`` from the offsets it starts at and tallies per source.

    Start it before the cameras: records older than its start are not counted.
    """

    def __init__(
        self,
        contract: Contract,
        sources: set[str] | None = None,
        on_record: Callable[[FrameRecord], None] | None = None,
    ) -> None:
        self.sources = sources
        self.on_record = on_record
        self.tallies: dict[str, SourceTally] = {}
        self.records = 0
        self._follower = Follower(
            contract,
            contract.names.metrics_frames,
            self._apply,
            client_id="tierflow-metrics-collector",
            from_end=True,
        )

    async def start(self) -> None:
        """Assign every partition at its current end and start tallying."""
        await self._follower.start()

    def _apply(self, _key: bytes | None, value: bytes | None) -> None:
        try:
            records = parse_frame_records(value)
        except RecordError as exc:
            log.warning("ignoring a malformed metrics record: %s", exc)
            return
        now = time.monotonic()
        for record in records:
            if self.sources is not None and record.source not in self.sources:
                continue
            self.records += 1
            self.tallies.setdefault(record.source, SourceTally()).add(record, now)
            if self.on_record is not None:
                self.on_record(record)

    def accounted(self, expected: dict[str, int]) -> int:
        """Outcomes seen so far, counting at most ``expected[source]`` per source."""
        return sum(
            min(self.tallies.get(s, SourceTally()).accounted, n) for s, n in expected.items()
        )

    async def wait_for(
        self,
        expected: dict[str, int],
        timeout_s: float,
        progress: Callable[[int], None] | None = None,
    ) -> bool:
        """Wait until each source has at least ``expected[source]`` outcomes; False on timeout.

        ``progress`` is called with the number of outcomes seen (of ``sum(expected)``).
        """
        deadline = time.monotonic() + timeout_s
        while (done := self.accounted(expected)) < sum(expected.values()):
            if progress is not None:
                progress(done)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._follower.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._follower.changed.wait(), remaining)
        if progress is not None:
            progress(sum(expected.values()))
        return True

    async def stop(self) -> None:
        """Stop following."""
        await self._follower.stop()
