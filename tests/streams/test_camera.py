"""Camera behaviour that needs no broker: pacing, quality following, the queue-full policy."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from confluent_kafka import Producer

from tierflow.settings import Settings
from tierflow.streams.camera import Camera, CameraStats, Sampler
from tierflow.streams.capture import SceneSource
from tierflow.topics.contract import Contract
from tierflow.topics.records import Assignment, Outcome, parse_frame_records


class Fixed:
    """Assignments as a controller would have published them."""

    def __init__(self, *assignments: Assignment) -> None:
        self.by_source = {a.source: a for a in assignments}

    def get(self, source: str) -> Assignment | None:
        return self.by_source.get(source)


class CountingProducer(Producer):
    """A producer that remembers the topic of everything handed to it."""

    def __init__(self, config: dict[str, object]) -> None:
        super().__init__(config)
        self.topics: list[str] = []
        self.values: list[bytes] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.topics.append(topic)
        self.values.append(kwargs.get("value", b""))
        super().produce(topic, *args, **kwargs)


def _unreachable_producer(queue_kbytes: int) -> CountingProducer:
    # Nothing listens on port 1: every frame stays queued, as when the broker is away.
    return CountingProducer(
        {
            "bootstrap.servers": "127.0.0.1:1",
            "queue.buffering.max.kbytes": queue_kbytes,
            "message.max.bytes": 8 * 1024 * 1024,
            "log_level": 0,
        }
    )


def test_a_full_producer_queue_drops_frames_by_name_and_never_blocks_capture(
    settings: Settings,
) -> None:
    producer = _unreachable_producer(queue_kbytes=200)  # room for a few 512 px JPEGs
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        None,
        fps=500.0,
        quality=512,
        max_frames=40,
    )
    stats = camera.run(threading.Event())
    assert stats.captured + stats.skipped_ticks >= 40
    assert stats.dropped["queue-full"] > 0
    assert stats.sent + stats.dropped["queue-full"] == stats.captured
    assert stats.produced == 0


def test_a_newer_epoch_switches_quality_at_the_next_frame(settings: Settings) -> None:
    producer = _unreachable_producer(queue_kbytes=65536)
    follower = Fixed(Assignment(source="cam", quality=320, epoch=4, reason="overload"))
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        follower,
        fps=50.0,
        quality=512,
        max_frames=3,
    )
    camera.run(threading.Event())
    assert (camera.stats.quality, camera.stats.epoch, camera.stats.switches) == (320, 4, 1)
    follower.by_source["cam"] = Assignment(source="cam", quality=512, epoch=3)  # stale epoch
    camera.capture_one(10, 0.0)
    assert camera.stats.quality == 320


def test_a_refused_source_stops_capturing_until_admitted(settings: Settings) -> None:
    producer = _unreachable_producer(queue_kbytes=65536)
    follower = Fixed(Assignment(source="cam", quality=512, epoch=1, admitted=False, reason="a_min"))
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        follower,
        fps=50.0,
        quality=512,
        max_frames=3,
    )
    camera.run(threading.Event())
    assert (camera.stats.captured, camera.stats.refused_ticks) == (0, 3)
    follower.by_source["cam"] = Assignment(source="cam", quality=416, epoch=2)
    assert camera.capture_one(3, 0.1)
    assert (camera.stats.captured, camera.stats.quality) == (1, 416)


def test_an_assignment_to_a_quality_without_topics_is_ignored(settings: Settings) -> None:
    producer = _unreachable_producer(queue_kbytes=65536)
    follower = Fixed(Assignment(source="cam", quality=999, epoch=1))
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        follower,
        fps=50.0,
        quality=416,
        max_frames=2,
    )
    camera.run(threading.Event())
    assert camera.stats.quality == 416 and camera.stats.epoch == 1


def test_the_sampler_spreads_the_assigned_rate_over_the_native_ticks() -> None:
    sampler = Sampler(25.0)
    sampler.assign(10.0)
    sent = [i for i in range(50) if sampler.take()]
    assert len(sent) == 20
    gaps = {b - a for a, b in itertools.pairwise(sent)}
    assert gaps <= {2, 3}  # evenly spread, never a burst
    sampler.assign(None)
    assert all(sampler.take() for _ in range(10))
    sampler.assign(100.0)  # above the native rate: every frame, not more
    assert sampler.fps == 25.0


def test_frames_above_the_assigned_rate_are_sampled_out_with_a_record_each(
    settings: Settings,
) -> None:
    producer = _unreachable_producer(queue_kbytes=65536)
    follower = Fixed(Assignment(source="cam", quality=320, fps=5.0, epoch=2, reason="load"))
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        follower,
        fps=50.0,
        quality=512,
        max_frames=50,
    )
    stats = camera.run(threading.Event())
    assert (stats.quality, stats.fps) == (320, 5.0)
    assert stats.captured + stats.skipped_ticks == 50
    assert 1 <= stats.sent <= stats.captured / 10 + 1  # 5 of 50 fps
    # every captured frame was queued: as the frame, or as a sampled frame's record for
    # metrics.frames, gathered in batches (none is delivered: the broker is unreachable, so
    # none counts yet)
    names = Contract.of(settings).names
    frames = producer.topics.count(names.raw(320)) + producer.topics.count(names.raw(512))
    assert frames == stats.sent
    batches = [v for k, v in zip(producer.topics, producer.values, strict=True) if "metrics" in k]
    records = [r for batch in batches for r in parse_frame_records(batch)]
    assert len(records) == stats.captured - stats.sent
    assert len(batches) < len(records) / 4  # gathered, not one message each
    assert {r.outcome for r in records} == {Outcome.SAMPLED}
    assert all(r.truth is not None and r.quality == 320 for r in records)
    assert stats.sampled == 0


def test_a_following_camera_starts_slow_until_assigned_or_its_slow_start_ends(
    settings: Settings,
) -> None:
    def run(slow_start_s: float) -> CameraStats:
        camera = Camera(
            Contract.of(settings),
            "cam",
            SceneSource(0, 1024),
            _unreachable_producer(queue_kbytes=65536),
            Fixed(),  # no controller answers
            fps=50.0,
            quality=320,
            max_frames=50,
            initial_fps=5.0,
            slow_start_s=slow_start_s,
        )
        return camera.run(threading.Event())

    patient = run(slow_start_s=30.0)
    assert patient.sent <= 6 and patient.fps == 5.0  # 5 of 50 fps for the whole second
    impatient = run(slow_start_s=0.3)
    assert impatient.fps == 50.0  # nobody assigned anything: the native rate took over
    assert impatient.sent >= 25


def test_a_source_keeps_to_its_allowed_qualities(settings: Settings) -> None:
    producer = _unreachable_producer(queue_kbytes=65536)
    follower = Fixed(Assignment(source="cam", quality=512, epoch=1))
    camera = Camera(
        Contract.of(settings),
        "cam",
        SceneSource(0, 1024),
        producer,
        follower,
        fps=50.0,
        quality=512,
        max_frames=1,
        allowed=(416, 320),
    )
    assert camera.stats.quality == 416  # the start quality is not allowed: the one below
    camera.run(threading.Event())
    assert camera.stats.quality == 416  # assigned 512: the nearest allowed below
    follower.by_source["cam"] = Assignment(source="cam", quality=320, epoch=2)
    camera.capture_one(1, 0.02)
    assert camera.stats.quality == 320
    assert camera.within(256) == 320  # nothing allowed below: the smallest
