"""The draw service (post-processing, HI): annotates frames, stores them, closes their journey.

For each frame it draws the detections, writes ``<output_dir>/<source>/<sequence>.jpg``,
publishes ``frames.annotated`` and the detections alone on ``detections.json`` (boxes in
the source's pixels, :class:`~tierflow.topics.records.DetectionRecord`), and writes the
frame's :class:`FrameRecord` with its end-to-end latency and, when the frame carries ground
truth (``tf-truth``), its F1 (IoU >= 0.5 with the same label, seed paper §IV-B) over the
labels the detector can report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.accuracy import match
from tierflow.operators.vision.codec import ContentType, encode_image
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.draw import BoxAnnotator
from tierflow.settings import Settings
from tierflow.streams.app import Event
from tierflow.streams.metrics import METRICS, observe_stage
from tierflow.streams.service import Service
from tierflow.topics.envelope import (
    DetectionsJson,
    FrameMeta,
    Headers,
    encode_headers,
    header_bytes,
)
from tierflow.topics.headers import H_DETECTIONS
from tierflow.topics.records import DetectionRecord, FrameRecord, Outcome
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
STAGE = StageName.DRAW


@dataclass(frozen=True)
class Drawn:
    """What drawing one frame produced: the annotated message and the meta it carries."""

    value: bytes
    headers: Headers
    meta: FrameMeta


def frame_path(output_dir: Path, meta: FrameMeta) -> Path:
    """Where the annotated frame of ``meta`` is stored: ``<dir>/<source>/<sequence>.jpg``.

    The source id comes from a header, so it is made one safe path component: characters
    other than letters, digits, ``-``, ``_`` and ``.`` become ``_``, and leading dots too
    (``..`` or ``.`` would name the folder above or the folder itself). The result is
    checked to lie inside ``output_dir``.

    Raises:
        FrameFormatError: BAD_HEADER if the path would still leave ``output_dir``.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in meta.source)
    stripped = safe.lstrip(".")
    safe = "_" * (len(safe) - len(stripped)) + stripped or "_"
    root = output_dir.resolve()
    path = (root / safe / f"{meta.sequence:08d}.jpg").resolve()
    if not path.is_relative_to(root) or path.parent == root:
        msg = f"source {meta.source!r} would be stored outside {root}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return path


def draw_frame(service: Service, annotator: BoxAnnotator, value: bytes, meta: FrameMeta) -> Drawn:
    """Decode, annotate, store and re-encode one frame that carries detections (blocking).

    A frame with no detections has nothing to draw: its bytes are the annotated frame, so
    they are forwarded (and stored) as they came, without a decode and a re-encode (3-4 ms
    of CPU a 512 px JPEG here), once :meth:`~.FrameCodec.check_pixels` has found them
    whole (anyone may write to ``detections.<q>``). Only a frame stored as JPEG from
    another encoding is still decoded.

    Raises:
        FrameFormatError: the frame cannot be decoded (or is not whole), is too large to
            send with this stage's headers, or its source would be stored outside the
            output folder.
    """
    cpu_started = time.thread_time_ns()
    storing = service.settings.dataplane.store_frames
    nothing = meta.detections is not None and len(meta.detections) == 0
    if nothing and (meta.content_type is ContentType.JPEG or not storing):
        service.contract.codec.check_pixels(value, meta)
        out_meta = meta.stamped(f"{STAGE}.out", time.time_ns()).worked(
            STAGE, time.thread_time_ns() - cpu_started
        )
        headers_out = encode_headers(out_meta)
        service.contract.codec.check_size(len(value) + header_bytes(headers_out))
        if storing:
            _store(service, meta, value)
        return Drawn(value, headers_out, out_meta)
    image = service.contract.codec.decode_pixels(value, meta)
    annotated = annotator.annotate(image, meta.detections or Detections.empty(image.shape[1::-1]))
    done = time.time_ns()
    out_meta = meta.stamped(f"{STAGE}.out", done).worked(STAGE, time.thread_time_ns() - cpu_started)
    value_out, headers_out = service.contract.codec.encode(annotated, out_meta)
    if storing:
        jpeg = (
            value_out
            if out_meta.content_type is ContentType.JPEG
            else encode_image(annotated, ContentType.JPEG, service.contract.codec.jpeg_quality)
        )
        _store(service, meta, jpeg)
    return Drawn(value_out, headers_out, out_meta)


def _store(service: Service, meta: FrameMeta, jpeg: bytes) -> None:
    path = frame_path(service.settings.dataplane.output_dir, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg)


def processed_record(meta: FrameMeta, frame_bytes: int, drawn: bool) -> FrameRecord:
    """The outcome record of a frame whose detections arrived: counts and F1 when it has truth.

    F1 is the paper's (IoU >= 0.5, same label, §IV-B) over the labels the detector can
    report.
    """
    detections = meta.detections
    if detections is None:  # the caller checked
        msg = "processed_record needs a frame with detections"
        raise ValueError(msg)
    counts = None if meta.truth is None else match(detections, meta.truth, labels=meta.classes)
    return FrameRecord.of(
        meta,
        Outcome.PROCESSED,
        STAGE,
        detector=meta.detector,
        detections=len(detections),
        tp=counts.tp if counts else None,
        fp=counts.fp if counts else None,
        fn=counts.fn if counts else None,
        f1=counts.f1 if counts else None,
        frame_bytes=frame_bytes,
        found=DetectionsJson.of(detections, meta.classes),
        drawn=drawn,
    )


def build_draw(settings: Settings) -> Service:
    """The draw service over the detections of every quality."""
    service = Service(settings, STAGE, threads=2)
    names = service.contract.names
    consumed = [names.detections(q) for q in service.contract.qualities]
    source = service.topics(consumed)
    sink = service.topic(names.annotated)
    results = service.topic(names.detections_json)
    annotator = BoxAnnotator()
    service.announce(consumed)

    async def handle(event: Event) -> None:
        # No deadline here: dropping a frame whose detections exist would only waste them.
        meta = await service.admit(event, may_drop=False)
        if meta is None:
            return
        if meta.detections is None:
            detail = f"header {H_DETECTIONS!r} is missing: the frame did not pass a detector"
            await service.outcomes.deadletter(event, "missing-header", detail, meta)
            return
        if meta.reference or service.lagging(meta):
            # Behind the lag bound the annotated copy is skipped, not the frame: its
            # detections and score are recorded, so draw catches up without losing work.
            # A reference copy (golden truth) is only a record: no picture, no detections
            # for consumers (its frame has them), so it never overwrites the frame's file.
            out = meta.stamped(f"{STAGE}.out", time.time_ns())
            record = processed_record(out, len(event.value), drawn=False)
            deliveries = [await service.outcomes.record(record)]
            if not meta.reference:
                detections = DetectionRecord.of(meta).to_bytes()
                deliveries.append(await results.send(key=event.key, value=detections))
                METRICS.undrawn.inc()
            service.outcomes.ack_after([event], deliveries)
            return
        try:
            drawn = await service.offload(draw_frame, service, annotator, event.value, meta)
        except FrameFormatError as exc:
            await service.outcomes.deadletter(event, exc.problem.value, exc.detail, meta)
            return
        record = processed_record(drawn.meta, len(event.value), drawn=True)
        deliveries = [
            await sink.send(key=event.key, value=drawn.value, headers=drawn.headers),
            await results.send(key=event.key, value=DetectionRecord.of(meta).to_bytes()),
            await service.outcomes.record(record),
        ]
        service.outcomes.ack_after([event], deliveries)
        observe_stage(STAGE, drawn.meta, len(drawn.value))

    service.consume(source, STAGE, handle)

    return service
