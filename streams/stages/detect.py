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
import uuid
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
from tierflow.topics.records import DropPolicy, ServiceAnnouncement

log = logging.getLogger(__name__)
STAGE = "detect"


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
    """Frames per second of busy inference time, smoothed (the announced capacity)."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.fps: float | None = None

    def update(self, frames: int, busy_s: float) -> None:
        """Fold in one batch of ``frames`` that took ``busy_s`` seconds."""
        if busy_s <= 0:
            return
        sample = frames / busy_s
        self.fps = sample if self.fps is None else (1 - self.alpha) * self.fps + self.alpha * sample


def build_detect(settings: Settings, quality: int, detector: Detector) -> Service:
    """The detect service for ``quality`` running ``detector``."""
    d = settings.detector
    dp = settings.dataplane
    service = Service(settings, STAGE, f"tierflow-detect-{quality}", threads=d.threads)
    names = service.contract.names
    source = service.topic(names.ready(quality))
    sink = service.topic(names.detections(quality))
    pending: PendingFrames[Waiting] = PendingFrames(
        lambda w: w.meta.source, dp.supersede, dp.max_pending, dp.per_source
    )
    throughput = Throughput()
    service_id = f"detect-{quality}-{dp.node}-{uuid.uuid4().hex[:6]}"
    service.announce(
        lambda now: ServiceAnnouncement(
            service_id=service_id,
            stage=STAGE,
            quality=quality,
            input_size=detector.input_size,
            topic=names.ready(quality),
            model=detector.name,
            tier=dp.tier,
            node=dp.node,
            capacity_fps=throughput.fps,
            threads=d.threads,
            remote=d.backend == "triton",
            heartbeat_ns=now,
            ttl_s=dp.registry_ttl_s,
        )
    )

    async def run_batches() -> None:
        while True:
            batch = await pending.take(d.max_batch, share=d.threads)
            now = time.time_ns()
            fresh = []
            for item in batch:
                if latency_s(item.meta, now) > dp.deadline_s:
                    await service.outcomes.dropped(item.event, item.meta, DropPolicy.DEADLINE)
                else:
                    fresh.append(item)
            if not fresh:
                continue
            started = time.time_ns()
            METRICS.batch_frames.labels(str(quality)).observe(len(fresh))
            try:
                results, cpu_ns = await service.offload(infer, service, detector, fresh)
            except DetectorError as exc:
                for item in fresh:
                    await service.outcomes.deadletter(
                        item.event, "detector-error", str(exc), item.meta
                    )
                continue
            done = time.time_ns()
            throughput.update(len(fresh), (done - started) / 1e9)
            for item, result in zip(fresh, results, strict=True):
                if isinstance(result, FrameFormatError):
                    await service.outcomes.deadletter(
                        item.event, result.problem.value, result.detail, item.meta
                    )
                    continue
                meta = (
                    item.meta.stamped(f"{STAGE}.start", started)
                    .stamped(f"{STAGE}.out", done)
                    .worked(STAGE, cpu_ns // len(fresh))
                    .detected(result, detector.name, detector.labels)
                )
                delivered = await sink.send(
                    key=item.event.key, value=item.event.value, headers=encode_headers(meta)
                )
                service.outcomes.ack_after([item.event], [delivered])
                observe_stage(STAGE, meta, len(item.event.value))

    workers: list[asyncio.Task[None]] = []

    async def start_workers() -> None:
        workers.extend(
            asyncio.create_task(run_batches(), name=f"detect-{quality}-{i}")
            for i in range(d.threads)
        )

    async def stop_workers() -> None:
        await cancel(*workers)
        # Waiting frames stay unacknowledged: their offsets are not committed and the next
        # detector for this quality processes them.
        pending.drain()
        detector.close()

    service.on_start(start_workers)
    service.on_stop(stop_workers)

    async def admit(event: Event) -> None:
        meta = await service.admit(event)
        if meta is None:
            return
        superseded = await pending.put(Waiting(event, meta))
        if superseded is not None:
            await service.outcomes.dropped(superseded.event, superseded.meta, DropPolicy.SUPERSEDED)

    service.consume(source, f"{STAGE}-{quality}", admit)

    return service
