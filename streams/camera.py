"""The camera producer: light enough for an edge device (confluent-kafka, OpenCV, numpy).

A camera reads its source at a target frame rate, resizes each frame to its current quality
(the edge-side reduction T_reduce of the seed paper's eq. 1), encodes it with the envelope
and publishes it to ``frames.raw.<quality>`` keyed by its id. It follows
``control.assignments``: an assignment with a newer epoch for its id switches its quality
at the next frame. Epochs are the controller's wall clock in ms; one further ahead of the
camera's clock than ``camera.epoch_skew_s`` is ignored (:class:`~.assignments.AssignmentFollower`).

The capture loop never waits on the broker: ``produce`` only enqueues into the producer's
bounded queue (``camera.queue_kbytes``); a full queue drops the frame under the named
policy ``queue-full`` and counts it.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from tierflow.errors import FrameFormatError
from tierflow.operators.vision.codec import ContentType, Image
from tierflow.operators.vision.detections import Detections
from tierflow.streams.assignments import Assignments
from tierflow.streams.capture import Captured, CaptureError, FrameSource, Reconnecting, framed
from tierflow.streams.golden import ReferenceCopies
from tierflow.streams.metrics import METRICS, observe_camera
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import (
    DetectionsJson,
    FrameMeta,
    Headers,
    encode_headers,
    header_bytes,
    producer_headers,
)
from tierflow.topics.records import FrameRecord, Outcome, frame_records_bytes
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
SAMPLED_BATCH = 50
"""Most ``sampled`` records one message gathers."""
SAMPLED_BATCH_S = 0.5
"""Longest a ``sampled`` record waits to be sent, seconds."""


class Sampler:
    """Which ticks of a camera's native frame clock it sends at an assigned rate.

    The sent frames are spread evenly: each tick adds ``rate / native`` to a credit and a
    tick whose credit reaches one frame is sent (10 of 25 fps sends ticks 2, 4, 7, 9, 12...).

    Args:
        native_fps: the camera's own frame rate, frames per second.
    """

    def __init__(self, native_fps: float) -> None:
        self.native_fps = native_fps
        self.fps = native_fps
        self._credit = 0.0

    def assign(self, fps: float | None) -> None:
        """Send ``fps`` frames per second from now on (None or above native: every frame)."""
        self.fps = self.native_fps if fps is None else min(fps, self.native_fps)

    def take(self) -> bool:
        """Whether this tick's frame is sent (True) or sampled out (False)."""
        self._credit += self.fps / self.native_fps
        if self._credit >= 1.0 - 1e-9:
            self._credit -= 1.0
            return True
        return False


@dataclass
class CameraStats:
    """What a camera did, for its summary and metrics.

    Attributes:
        captured: frames read from the source, sent or not (the offered frames).
        sampled: frames skipped at the assigned frame rate whose ``sampled`` record the
            broker acknowledged (an outcome of their own, not a drop).
        sent: frames handed to the producer.
        produced: frames the broker acknowledged.
        dropped: frames lost on the camera by policy (``queue-full``, ``delivery-failed``,
            ``encode-error``, ``record-failed`` for a sampled frame's record).
        skipped_ticks: ticks of the frame clock missed because capture was slower than fps.
        refused_ticks: ticks not captured because the controller refused the source.
        switches: quality changes made on assignment.
        admitted: False while the controller refuses the source (Algorithm 1, steps 7-8).
    """

    captured: int = 0
    sampled: int = 0
    sent: int = 0
    produced: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    skipped_ticks: int = 0
    refused_ticks: int = 0
    switches: int = 0
    admitted: bool = True
    quality: int = 0
    fps: float = 0.0
    epoch: int = 0
    reason: str = ""
    """Why the controller assigned the current quality and rate (its last assignment)."""
    produced_sequences: deque[int] = field(default_factory=lambda: deque(maxlen=100_000))
    """The latest acknowledged sequence numbers (bounded: a camera may run for days)."""

    @property
    def accounted_on_topic(self) -> int:
        """Frames whose outcome ``metrics.frames`` must show: produced ones and sampled ones."""
        return self.produced + self.sampled


class Camera:
    """One camera: a source, a frame clock and a producer.

    Args:
        contract: topic names, qualities with topics, the frame codec.
        source_id: the camera id, the Kafka key of its frames.
        source: where frames come from.
        producer: a confluent-kafka producer (thread-safe; cameras of a process share one).
        follower: assignments to follow, or None to keep ``quality``.
        fps: the native frame rate of the camera's clock, frames per second; assignments may
            lower the rate it sends at.
        quality: starting quality (side in pixels).
        max_frames: stop after capturing this many frames.
        initial_fps: frames/s sent until the first assignment, for at most
            ``slow_start_s`` (None: the native rate from the start).
        slow_start_s: seconds without an assignment after which the native rate holds.
        allowed: the qualities this source may send at (a sources file's ``qualities``);
            an assignment outside them takes the nearest allowed one below it, else the
            smallest (None: any quality with a topic).
        reference: sends reference copies of some frames (``truth = "golden"`` sources).
    """

    def __init__(
        self,
        contract: Contract,
        source_id: str,
        source: FrameSource | Reconnecting,
        producer: Producer,
        follower: Assignments | None,
        fps: float,
        quality: int,
        max_frames: int | None = None,
        initial_fps: float | None = None,
        slow_start_s: float = 30.0,
        allowed: tuple[int, ...] | None = None,
        reference: ReferenceCopies | None = None,
    ) -> None:
        self.contract = contract
        self.allowed = tuple(sorted(allowed)) if allowed else None
        self.reference = reference
        quality = self.within(quality)
        self.source_id = source_id
        self.source = source
        self.producer = producer
        self.follower = follower
        self.fps = fps
        self.max_frames = max_frames
        self.stats = CameraStats(quality=quality, fps=min(initial_fps or fps, fps))
        self.sampler = Sampler(fps)
        self._batch: list[FrameRecord] = []
        self._batch_due = time.monotonic() + SAMPLED_BATCH_S
        self.sampler.assign(initial_fps)
        slow = initial_fps is not None and follower is not None
        self._slow_start_until = time.monotonic() + slow_start_s if slow else None
        self._lock = threading.Lock()
        METRICS.camera_quality.labels(source_id).set(quality)
        METRICS.camera_epoch.labels(source_id).set(0)

    def within(self, quality: int) -> int:
        """``quality`` if this source may send at it, else the allowed one that replaces it."""
        if self.allowed is None or quality in self.allowed:
            return quality
        below = [q for q in self.allowed if q < quality]
        return below[-1] if below else self.allowed[0]

    def _follow(self) -> None:
        if self.follower is None:
            return
        assignment = self.follower.get(self.source_id)
        slow = self._slow_start_until
        if assignment is None and slow is not None and time.monotonic() >= slow:
            self._slow_start_until = None  # nobody assigns anything: the native rate
            self.sampler.assign(None)
            self.stats.fps = self.sampler.fps
        if assignment is None or assignment.epoch <= self.stats.epoch:
            return
        self._slow_start_until = None
        if assignment.admitted != self.stats.admitted:
            log.warning(
                "%s: %s by the controller: %s",
                self.source_id,
                "admitted" if assignment.admitted else "refused",
                assignment.reason,
            )
            self.stats.admitted = assignment.admitted
        if assignment.quality not in self.contract.qualities:
            log.warning(
                "%s: assignment to quality %d has no topic; keeping %d",
                self.source_id,
                assignment.quality,
                self.stats.quality,
            )
            self.stats.epoch = assignment.epoch
            return
        self.sampler.assign(assignment.fps)
        quality = self.within(assignment.quality)
        if quality != assignment.quality:
            log.info(
                "%s: assigned %d px, which it may not send; sending %d px",
                self.source_id,
                assignment.quality,
                quality,
            )
        if (quality, self.sampler.fps) != (self.stats.quality, self.stats.fps):
            self.stats.switches += 1
            log.info(
                "%s: %d px at %g fps -> %d px at %g fps (epoch %d: %s)",
                self.source_id,
                self.stats.quality,
                self.stats.fps,
                quality,
                self.sampler.fps,
                assignment.epoch,
                assignment.reason,
            )
        self.stats.quality = quality
        self.stats.fps = self.sampler.fps
        self.stats.epoch = assignment.epoch
        self.stats.reason = assignment.reason
        METRICS.camera_quality.labels(self.source_id).set(quality)
        METRICS.camera_epoch.labels(self.source_id).set(assignment.epoch)

    def _delivered(self, sequence: int, err: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if err is None:
                self.stats.produced += 1
                self.stats.produced_sequences.append(sequence)
                observe_camera(self.source_id, "produced")
            else:
                self._drop("delivery-failed")
                log.warning("%s: delivery failed: %s", self.source_id, err)

    def _sampled(self, count: int, err: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if err is None:
                self.stats.sampled += count
                observe_camera(self.source_id, "sampled", count)
            else:
                self._drop("record-failed", count)
                log.warning("%s: %d sampled frames' records failed: %s", self.source_id, count, err)

    def _drop(self, policy: str, count: int = 1) -> None:
        self.stats.dropped[policy] += count
        observe_camera(self.source_id, policy, count)

    def capture_one(self, index: int, t_s: float) -> bool:
        """Capture the frame at ``index``: send it, or sample it out; False at end of input."""
        self._follow()
        if not self.stats.admitted:
            self.stats.refused_ticks += 1
            return True
        quality = self.stats.quality
        try:
            if not self.sampler.take():
                skipped = self.source.skip(index, t_s, quality)
                if skipped is not None:
                    self._record_sampled(index, quality, skipped.truth)
                return skipped is not None
            captured = self.source.read(index, t_s, quality)
        except CaptureError as exc:
            log.error("%s: %s", self.source_id, exc)
            return False
        except FrameFormatError as exc:  # a recorded frame that cannot be read back
            self.stats.captured += 1
            self._drop("decode-error")
            log.error("%s: frame %d cannot be read: %s", self.source_id, index, exc)
            return True
        if captured is None:
            return False
        capture_ns = time.time_ns()
        self.stats.captured += 1
        image, truth, origin = framed(captured, quality)
        meta = FrameMeta(
            source=self.source_id,
            sequence=index,
            capture_ns=capture_ns,
            quality=quality,
            epoch=self.stats.epoch,
            content_type=self.contract.codec.content_type,
            origin=origin,
            truth=truth,
        )
        try:
            value, headers = self._encode(
                image, captured, meta.stamped("camera.out", time.time_ns())
            )
        except FrameFormatError as exc:
            self._drop("encode-error")
            log.error("%s: frame %d cannot be encoded: %s", self.source_id, index, exc)
            return True
        try:
            self.producer.produce(
                self.contract.names.raw(quality),
                key=self.source_id.encode(),
                value=value,
                headers=producer_headers(headers),
                on_delivery=functools.partial(self._delivered, index),
            )
            self.stats.sent += 1
            if self.reference is not None:
                self.reference.offer(captured, meta)
        except BufferError:
            self._drop("queue-full")
        self.producer.poll(0)
        return True

    def _encode(self, image: Image, captured: Captured, meta: FrameMeta) -> tuple[bytes, Headers]:
        """The message of ``image``: a recorded frame at its own size is forwarded as is.

        Raw frames are always encoded: their headers carry the array's shape and dtype,
        which only the codec fills in.
        """
        codec = self.contract.codec
        raw = meta.content_type is ContentType.RAW
        if captured.encoded is None or image is not captured.image or raw:
            return codec.encode(image, meta)
        headers = encode_headers(meta)
        codec.check_size(len(captured.encoded) + header_bytes(headers))
        return captured.encoded, headers

    def _record_sampled(self, index: int, quality: int, truth: Detections | None) -> None:
        """Account a frame skipped at the assigned rate: a ``sampled`` record, with its truth.

        The records are gathered and sent as one message every ``SAMPLED_BATCH_S`` (or
        ``SAMPLED_BATCH`` frames): a message per skipped frame would cost the broker and
        every reader more than the frames the camera does send.
        """
        self.stats.captured += 1
        self._batch.append(FrameRecord(
            source=self.source_id,
            sequence=index,
            quality=quality,
            epoch=self.stats.epoch,
            capture_ns=time.time_ns(),
            outcome=Outcome.SAMPLED,
            stage=StageName.CAMERA,
            latency_s=0.0,
            truth=DetectionsJson.of(truth) if truth is not None else None,
        ))  # fmt: skip
        if len(self._batch) >= SAMPLED_BATCH or time.monotonic() >= self._batch_due:
            self.flush_sampled()

    def flush_sampled(self) -> None:
        """Send the gathered ``sampled`` records now (also at the end of a run)."""
        batch, self._batch = self._batch, []
        self._batch_due = time.monotonic() + SAMPLED_BATCH_S
        if not batch:
            return
        try:
            self.producer.produce(
                self.contract.names.metrics_frames,
                key=self.source_id.encode(),
                value=frame_records_bytes(batch),
                on_delivery=functools.partial(self._sampled, len(batch)),
            )
        except BufferError:
            self._drop("record-failed", len(batch))
        self.producer.poll(0)

    def replay(
        self,
        stop: threading.Event,
        offsets_s: Sequence[float],
        speed: float | None,
        loop: bool,
        span_s: float | None = None,
    ) -> CameraStats:
        """Capture frame ``i`` at ``offsets_s[i] / speed`` seconds from the start.

        A recording's own timing, scaled: ``speed`` 2 plays twice as fast, None as fast as
        the pipeline takes them (no waiting). Unlike :meth:`run`, a replay that falls behind
        sends late rather than skipping, so every recorded frame is offered in order. With
        ``loop``, the recording starts again every ``span_s`` seconds (default: this
        source's last offset plus one frame period), for ever or until ``stop``; sources of
        one recording share its span, so they stay in step lap after lap.
        """
        if not offsets_s:
            return self.stats
        span = span_s if span_s is not None else offsets_s[-1] + 1.0 / self.fps
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                break
            lap, at = divmod(index, len(offsets_s))
            if lap and not loop:
                break
            t_s = lap * span + offsets_s[at]
            if speed is not None and stop.wait(max(0.0, start + t_s / speed - time.monotonic())):
                break
            if not self.capture_one(index, t_s):
                break
            index += 1
        self.flush_sampled()
        return self.stats

    def run(self, stop: threading.Event, duration_s: float | None = None) -> CameraStats:
        """Capture at ``fps`` until ``stop``, ``duration_s``, ``max_frames`` or end of input.

        Ticks missed because capture or encoding was slower than the frame period are
        skipped (counted in ``skipped_ticks``), never caught up in a burst.
        """
        period = 1.0 / self.fps
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                break
            if duration_s is not None and index * period >= duration_s:
                break
            if not self.capture_one(index, index * period):
                break
            index += 1
            due = start + index * period
            now = time.monotonic()
            if now > due + period:
                behind = math.floor((now - due) / period)
                self.stats.skipped_ticks += behind
                index += behind
                due = start + index * period
            stop.wait(max(0.0, due - time.monotonic()))
        self.flush_sampled()
        return self.stats


def camera_producer(
    contract: Contract, client_id: str, queue_kbytes: int, **overrides: Any
) -> Producer:
    """A producer for frames whose queue (``queue_kbytes``) bounds the camera's memory."""
    queue = {"queue.buffering.max.kbytes": queue_kbytes}
    return Producer(producer_config(contract, client_id=client_id, **queue, **overrides))
