"""Recording a prefix's frame topics, and replaying a recording into a prefix.

A replay is a set of cameras whose source is the recording (one per recorded source, same
ids): they publish to ``frames.raw.<quality>`` of the target prefix, keyed and ordered per
source, on the recording's own timing scaled by ``speed``, and they follow
``control.assignments`` as live cameras do, so a policy's quality and frame-rate decisions
take effect during replay. Frames skipped at an assigned rate are ``sampled``, as live.

What is kept from a recorded message: its value (forwarded unchanged when sent at the size
it was recorded) and its ground truth. What is the replay's own: capture and stage
timestamps (latency is measured in the replay), the epoch of the assignment it follows,
and the sequence number (the frame's position in its source's recording, counting on
through loops, so a looping replay never repeats a sequence).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message
from confluent_kafka import TopicPartition as Partition

from tierflow.errors import FrameFormatError
from tierflow.streams.assignments import Assignments
from tierflow.streams.camera import Camera, camera_producer
from tierflow.streams.recording import (
    Recording,
    RecordingError,
    RecordingSource,
    RecordingWriter,
)
from tierflow.topics.clients import consumer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, decode_meta, header_map
from tierflow.topics.snapshot import partitions_of, read_to_end

log = logging.getLogger(__name__)


@dataclass
class TopicRecorder:
    """Writes the frame messages of some sources (all when ``sources`` is None).

    ``skipped`` counts frames of other sources, ``invalid`` messages that are not frames.
    """

    writer: RecordingWriter
    sources: frozenset[str] | None = None
    skipped: int = 0
    invalid: int = 0

    def handle(self, message: Message) -> None:
        """Record ``message`` if it is a frame of a wanted source."""
        value = message.value()
        if message.error() is not None or value is None:
            return
        try:
            headers = header_map(message.headers())
            meta: FrameMeta = decode_meta(headers)
        except FrameFormatError as exc:
            self.invalid += 1
            log.warning("not recorded: %s offset %s: %s", message.topic(), message.offset(), exc)
            return
        if self.sources is not None and meta.source not in self.sources:
            self.skipped += 1
            return
        self.writer.add(value, headers)


def record_topics(
    contract: Contract,
    folder: Path,
    *,
    duration_s: float | None,
    max_frames: int | None = None,
    sources: frozenset[str] | None = None,
    from_beginning: bool = False,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Record the ``frames.raw.<quality>`` topics of ``contract``'s prefix into ``folder``.

    Args:
        contract: the prefix and cluster.
        folder: a new recording folder.
        duration_s: record what arrives for this many seconds (live mode).
        max_frames: stop after this many frames.
        sources: only these camera ids.
        from_beginning: record what the topics retain, up to their end now, instead.
        stop: set to end a live recording early (Ctrl-C).

    Returns:
        The manifest.
    """
    origin = f"topics:{contract.names.prefix or '(no prefix)'}"
    topics = [contract.names.raw(q) for q in contract.qualities]
    consumer = Consumer(consumer_config(contract, "tierflow-record-unused", "tierflow-record"))
    partitions = partitions_of(consumer, topics, 30.0)
    if not partitions:
        consumer.close()
        msg = f"prefix {contract.names.prefix or '(none)'!r} has no frames.raw topics to record"
        raise RecordingError(msg)
    with RecordingWriter(folder, origin) as writer:
        recorder = TopicRecorder(writer, sources)

        def enough() -> bool:
            full = max_frames is not None and writer.frames >= max_frames
            return full or (stop is not None and stop.is_set())

        if from_beginning:
            consumer.close()
            read_to_end(
                contract, topics, recorder.handle, client_id="tierflow-record", until=enough
            )
            return writer.close()
        try:
            consumer.assign([Partition(tp.topic, tp.partition, OFFSET_END) for tp in partitions])
            ends = time.monotonic() + duration_s if duration_s is not None else None
            while not enough():
                if ends is not None and time.monotonic() >= ends:
                    break
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if (error := message.error()) is not None and error.fatal():
                    raise KafkaException(error)
                recorder.handle(message)
        finally:
            consumer.close()
        return writer.close()


def recorded_cameras(
    contract: Contract,
    recording: Recording,
    follower: Assignments | None,
    producer: Any,
    *,
    loop: bool = False,
    initial_fps: float | None = None,
    quality: int | None = None,
    sources: Collection[str] | None = None,
) -> list[Camera]:
    """One camera per recorded source (of ``sources`` when given), at its recorded rate.

    It starts at ``quality``, else at its first frame's recorded quality (the largest with
    topics here when that one has none).

    Raises:
        RecordingError: ``sources`` names a source the recording does not have.
    """
    missing = sorted(set(sources or ()) - set(recording.by_source))
    if missing:
        known = ", ".join(sorted(recording.by_source))
        msg = f"the recording has no source {', '.join(missing)} (it has {known})"
        raise RecordingError(msg)
    cameras = []
    for source_id, frames in sorted(recording.by_source.items()):
        if sources is not None and source_id not in sources:
            continue
        start = quality or frames[0].quality
        if start not in contract.qualities:
            start = max(contract.qualities)
            log.warning(
                "%s: recorded at %d px, no topic here: sending %d",
                source_id,
                frames[0].quality,
                start,
            )
        cameras.append(
            Camera(
                contract,
                source_id,
                RecordingSource(recording, source_id, contract, loop=loop),
                producer,
                follower,
                recording.fps(source_id),
                start,
                initial_fps=initial_fps,
            )
        )
    return cameras


def replay(
    contract: Contract,
    recording: Recording,
    *,
    speed: float | None,
    loop: bool,
    follower: Assignments | None,
    queue_kbytes: int,
    stop: threading.Event,
    initial_fps: float | None = None,
    sources: Collection[str] | None = None,
) -> dict[str, Any]:
    """Replay ``recording``'s ``sources`` (None: all) into the prefix; per-source counts.

    Each source runs in its own thread on its recorded timing (``speed`` None: as fast as
    possible); the call returns when every source is done (or ``stop``) and the producer
    has delivered what it was given.
    """
    producer = camera_producer(contract, "tierflow-replay", queue_kbytes)
    cameras = recorded_cameras(
        contract,
        recording,
        follower,
        producer,
        loop=loop,
        initial_fps=initial_fps,
        sources=sources,
    )
    threads = [
        threading.Thread(
            target=cam.replay,
            args=(stop, recording.offsets_s(cam.source_id), speed, loop, recording.span_s()),
            name=f"replay-{cam.source_id}",
            daemon=True,
        )
        for cam in cameras
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    unflushed = producer.flush(30)
    return {
        "recording": str(recording.folder),
        "sha256": recording.sha256,
        "prefix": contract.names.prefix,
        "duration_s": round(time.monotonic() - started, 3),
        "undelivered": unflushed,
        "sources": {
            cam.source_id: {
                "captured": cam.stats.captured,
                "sent": cam.stats.sent,
                "produced": cam.stats.produced,
                "sampled": cam.stats.sampled,
                "dropped": dict(cam.stats.dropped),
                "quality": cam.stats.quality,
                "fps": cam.stats.fps,
            }
            for cam in cameras
        },
    }
