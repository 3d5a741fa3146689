"""Camera behaviour that needs no broker: pacing, quality following, the queue-full policy."""

from __future__ import annotations

import threading

from confluent_kafka import Producer

from tierflow.settings import Settings
from tierflow.streams.camera import Camera
from tierflow.streams.capture import SceneSource
from tierflow.topics.contract import Contract
from tierflow.topics.records import Assignment


class Fixed:
    """Assignments as a controller would have published them."""

    def __init__(self, *assignments: Assignment) -> None:
        self.by_source = {a.source: a for a in assignments}

    def get(self, source: str) -> Assignment | None:
        return self.by_source.get(source)


def _unreachable_producer(queue_kbytes: int) -> Producer:
    # Nothing listens on port 1: every frame stays queued, as when the broker is away.
    return Producer(
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
