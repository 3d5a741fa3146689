"""The detect service (analysis, LI/HI): one per quality.

The seed paper's YOLO-416/YOLO-512 pair, generalised to any detector at any input size.

Frames that queue up while inference runs are batched across sources (``PendingFrames``);
inference runs in the service's thread pool, ``detector.threads`` batches at a time, so it
never blocks the event loop and uses every core. The frame bytes are forwarded unchanged to
``detections.<q>`` with the detections in a header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.detectors.base import Detector, DetectorError
from tierflow.operators.vision.resize import resize_square
from tierflow.settings import Settings
from tierflow.streams.app import Event, cancel
from tierflow.streams.batching import PendingFrames
from tierflow.streams.metrics import METRICS, observe_stage
from tierflow.streams.outcomes import latency_s
from tierflow.streams.service import Service
from tierflow.topics.envelope import FrameMeta, encode_headers
from tierflow.topics.records import DropPolicy
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
STAGE = StageName.DETECT


@dataclass(frozen=True)
class Waiting:
    """A frame waiting for inference."""

    event: Event
    meta: FrameMeta


def infer(
    service: Service, detector: Detector, batch: list[Waiting]
) -> tuple[list[Detections | FrameFormatError], int]:
    """Decode and detect a batch (blocking); a frame that cannot be decoded gets its error.

    Returns:
        One result per frame, and the CPU time this thread spent, ns: the batch's compute
        cost whatever else competes for the cores (the control plane's ``C``).
    """
    cpu_started = time.thread_time_ns()
    decoded: list[Image | FrameFormatError] = []
    for item in batch:
        try:
            image = service.contract.codec.decode_pixels(item.event.value, item.meta)
            if image.ndim != 3 or image.shape[2] != 3:
                msg = f"detectors take BGR frames, got shape {image.shape}"
                raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
            decoded.append(resize_square(image, detector.input_size))
        except FrameFormatError as exc:
            decoded.append(exc)
    images = [d for d in decoded if not isinstance(d, FrameFormatError)]
    found = iter(detector.detect(images) if images else [])
    results = [d if isinstance(d, FrameFormatError) else next(found) for d in decoded]
    return results, time.thread_time_ns() - cpu_started


class Throughput:
    """Frames per second of busy inference time, smoothed (the announced capacity), and use.

    Attributes:
        fps: the smoothed capacity, frames per busy second; None before the first batch.
        served: frames analysed since the service started.
        last_ns: when the newest batch was analysed, ns since the Unix epoch.
    """

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.fps: float | None = None
        self.served = 0
        self.last_ns: int | None = None

    def usage(self) -> tuple[int, int | None]:
        """(frames served, last served ns): what the provisioning back end evicts by."""
        return self.served, self.last_ns

    def update(self, frames: int, busy_s: float, now_ns: int | None = None) -> None:
        """Fold in one batch of ``frames`` that took ``busy_s`` seconds, done at ``now_ns``."""
        self.served += frames
        self.last_ns = time.time_ns() if now_ns is None else now_ns
        if busy_s <= 0:
            return
        sample = frames / busy_s
        self.fps = sample if self.fps is None else (1 - self.alpha) * self.fps + self.alpha * sample


class Inference:
    """The detect service's workers: take batches of waiting frames, infer, send them on.

    ``threads`` workers run at once, each with one batch in flight in the service's pool.
    """

    def __init__(
        self,
        service: Service,
        quality: int,
        detector: Detector,
        pending: PendingFrames[Waiting],
    ) -> None:
        self.service = service
        self.detector = detector
        self.pending = pending
        self.throughput = Throughput()
        self.sink = service.topic(service.contract.names.detections(quality))
        self._quality = str(quality)
        self._workers: list[asyncio.Task[None]] = []
        self._first = True

    async def start(self) -> None:
        """Start the workers (a start hook)."""
        threads = self.service.settings.detector.threads
        self._workers.extend(
            self.service.spawn(self._run(), name=f"detect-{self._quality}-{i}")
            for i in range(threads)
        )

    async def stop(self) -> None:
        """Stop the workers (a stop hook).

        Waiting frames stay unacknowledged: their offsets are not committed and the next
        detector for this quality processes them.
        """
        await cancel(*self._workers)
        self.pending.drain()
        self.detector.close()

    async def _run(self) -> None:
        d = self.service.settings.detector
        while True:
            batch = await self.pending.take(d.max_batch, share=d.threads)
            fresh = await self._drop_late(batch)
            if fresh:
                await self._infer(fresh)

    async def _drop_late(self, batch: list[Waiting]) -> list[Waiting]:
        """The frames of ``batch`` still within the deadline; the others are dropped."""
        deadline_s = self.service.settings.dataplane.deadline_s
        now = time.time_ns()
        fresh = []
        for item in batch:
            if latency_s(item.meta, now) > deadline_s:
                await self.service.outcomes.dropped(item.event, item.meta, DropPolicy.DEADLINE)
            else:
                fresh.append(item)
        return fresh

    async def _infer(self, batch: list[Waiting]) -> None:
        outcomes = self.service.outcomes
        started = time.time_ns()
        METRICS.batch_frames.labels(self._quality).observe(len(batch))
        try:
            results, cpu_ns = await self.service.offload(infer, self.service, self.detector, batch)
        except DetectorError as exc:
            for item in batch:
                await outcomes.deadletter(item.event, "detector-error", str(exc), item.meta)
            return
        done = time.time_ns()
        if self._first:  # provisioning ends here: placement decided -> first frame analysed
            self._first = False
            log.info("detect-%s: first frame analysed", self._quality)
        self.throughput.update(len(batch), (done - started) / 1e9, done)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, FrameFormatError):
                problem, detail = result.problem.value, result.detail
                await outcomes.deadletter(item.event, problem, detail, item.meta)
                continue
            meta = (
                item.meta.stamped(f"{STAGE}.start", started)
                .stamped(f"{STAGE}.out", done)
                .worked(STAGE, cpu_ns // len(batch))
                .detected(result, self.detector.name, self.detector.labels)
            )
            headers = encode_headers(meta)
            if not outcomes.fits(item.event.key, item.event.value, headers):
                detail = f"{len(result)} detections make the frame too large to send"
                await outcomes.deadletter(item.event, FrameProblem.TOO_LARGE.value, detail, meta)
                continue
            delivered = await self.sink.send(
                key=item.event.key, value=item.event.value, headers=headers
            )
            outcomes.ack_after([item.event], [delivered])
            observe_stage(STAGE, meta, len(item.event.value))


def _queue_key(waiting: Waiting) -> str:
    """Whose frames supersede each other: a source's, and apart its reference copies.

    A reference copy (golden truth) must neither push out the frame it scores nor be
    pushed out by it: they share a sequence number and often this detector.
    """
    meta = waiting.meta
    return f"{meta.source}#reference" if meta.reference else meta.source


def build_detect(settings: Settings, quality: int, detector: Detector) -> Service:
    """The detect service for ``quality`` running ``detector``."""
    d, dp = settings.detector, settings.dataplane
    service = Service(settings, STAGE, quality, threads=d.threads)
    ready = service.contract.names.ready(quality)
    pending: PendingFrames[Waiting] = PendingFrames(
        _queue_key, dp.supersede, dp.max_pending, dp.per_source
    )
    inference = Inference(service, quality, detector, pending)
    service.announce(
        [ready],
        input_size=detector.input_size,
        model=detector.name,
        threads=d.threads,
        remote=d.backend == "triton",
        capacity_fps=lambda: inference.throughput.fps,
        usage=inference.throughput.usage,
    )
    service.on_start(inference.start)
    service.on_stop(inference.stop)

    async def admit(event: Event) -> None:
        meta = await service.admit(event)
        if meta is None:
            return
        superseded = await pending.put(Waiting(event, meta))
        if superseded is not None:
            await service.outcomes.dropped(superseded.event, superseded.meta, DropPolicy.SUPERSEDED)

    service.consume(service.topic(ready), f"{STAGE}-{quality}", admit)
    return service
