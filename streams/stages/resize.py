"""The resize service (pre-processing, NI): routes raw frames to live detectors by quality.

Each frame goes to the detector that the registry says serves its quality, resized to that
detector's input size.

A frame already at the detector's input size is forwarded byte for byte: re-encoding
between stages is the largest avoidable cost of the data plane (DESIGN.md).
"""

from __future__ import annotations

import logging
import time

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import ContentType
from tierflow.operators.vision.resize import resize_square
from tierflow.settings import Settings
from tierflow.streams.app import Event
from tierflow.streams.metrics import observe_stage
from tierflow.streams.service import Service
from tierflow.topics.envelope import FrameMeta, Headers, encode_headers
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
STAGE = StageName.RESIZE
NO_CONSUMER = "no-consumer"


def resized_message(
    service: Service, value: bytes, meta: FrameMeta, side: int
) -> tuple[bytes, Headers, FrameMeta]:
    """Decode, resize to ``side`` x ``side`` pixels, stamp ``resize.out``, re-encode (blocking).

    Returns the new value and headers, and the metadata they carry.
    """
    cpu_started = time.thread_time_ns()
    image = resize_square(service.contract.codec.decode_pixels(value, meta), side)
    done = time.time_ns()
    out = meta.stamped(f"{STAGE}.out", done).worked(STAGE, time.thread_time_ns() - cpu_started)
    return (*service.contract.codec.encode(image, out), out)


def build_resize(settings: Settings) -> Service:
    """The resize service over every quality of the catalogue."""
    service = Service(settings, STAGE)
    names = service.contract.names
    qualities = service.contract.qualities
    consumed = [names.raw(q) for q in qualities]
    raw = service.topics(consumed)
    ready = {q: service.topic(names.ready(q)) for q in qualities}
    registry = service.follow_registry(probed=True)
    service.announce(consumed)
    missing_logged: dict[int, float] = {}

    async def handle(event: Event) -> None:
        meta = await service.admit(event)
        if meta is None:
            return
        enter = meta.stamps[f"{STAGE}.in"]
        cpu_started = time.thread_time_ns()
        detector = registry.view.detector_for(meta.quality, enter)
        if detector is None or meta.quality not in ready:
            live = sorted(registry.view.live_qualities(enter))
            detail = f"no live detector consumes quality {meta.quality} (live: {live})"
            if time.monotonic() - missing_logged.get(meta.quality, -60.0) > 10.0:
                log.warning("resize: %s; frames go to deadletter", detail)
                missing_logged[meta.quality] = time.monotonic()
            await service.outcomes.deadletter(event, NO_CONSUMER, detail, meta)
            return
        side = detector.input_size or meta.quality
        if side == meta.quality and meta.content_type is not ContentType.RAW:
            value: bytes = event.value
            # Forwarding costs no pixel work: busy time is the (tiny) CPU of routing it.
            out = meta.stamped(f"{STAGE}.out", time.time_ns()).worked(
                STAGE, time.thread_time_ns() - cpu_started
            )
            headers = encode_headers(out)
        else:  # raw frames carry their shape in headers, so they are always re-encoded
            try:
                value, headers, out = await service.offload(
                    resized_message, service, event.value, meta, side
                )
            except FrameFormatError as exc:
                await service.outcomes.deadletter(event, exc.problem.value, exc.detail, meta)
                return
        if not service.outcomes.fits(event.key, value, headers):
            detail = f"{len(value)} bytes with the stage's headers exceed the broker's limit"
            await service.outcomes.deadletter(event, FrameProblem.TOO_LARGE.value, detail, meta)
            return
        delivered = await ready[meta.quality].send(key=event.key, value=value, headers=headers)
        observe_stage(STAGE, out, len(value))
        service.outcomes.ack_after([event], [delivered])

    service.consume(raw, STAGE, handle, ready=registry.caught_up)
    return service
