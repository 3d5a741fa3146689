"""The data plane on the real broker: cameras -> resize -> detect -> draw, every frame accounted.

Services run in-process (each its own faust app and consumer group, as in separate
processes) so the test can start a detector for a new quality mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from tests.waiting import until
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.draw import label_colour
from tierflow.settings import Settings
from tierflow.streams.accounting import MetricsCollector, SourceTally
from tierflow.streams.assignments import AssignmentFollower, publish_assignment
from tierflow.streams.camera import Camera, camera_producer
from tierflow.streams.capture import SceneSource
from tierflow.streams.metrics import METRICS
from tierflow.streams.stages import build_stage
from tierflow.topics.clients import consumer_config, producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, encode_headers, producer_headers
from tierflow.topics.records import Assignment, DropPolicy, FrameRecord, Outcome
from tierflow.topics.stages import StageName

pytestmark = pytest.mark.kafka

F1_FLOOR_512 = 0.7
FPS = 4.0


def _settings(base: Settings, tmp_path: Path) -> Settings:
    return base.model_copy(
        update={
            "dataplane": base.dataplane.model_copy(
                update={"output_dir": tmp_path / "annotated", "deadline_s": 30.0}
            ),
            "detector": base.detector.model_copy(update={"threads": 2}),
        }
    )


async def test_three_cameras_every_frame_accounted_and_new_quality_discovered(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    settings = _settings(kafka_topics, tmp_path)
    contract = Contract.of(settings)
    ids = [f"cam-{i}" for i in range(3)]
    collector = MetricsCollector(contract, set(ids))
    await collector.start()
    follower = AssignmentFollower(contract).start()
    producer = camera_producer(contract, "test-cameras", settings.camera.queue_kbytes)
    cameras = [
        Camera(contract, cid, SceneSource(seed=i, size=1024), producer, follower, FPS, 512)
        for i, cid in enumerate(ids)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in cameras]
    control = Producer(producer_config(contract, client_id="test-control"))

    async with contextlib.AsyncExitStack() as stack:
        for service in (
            build_stage(settings, StageName.DETECT, 512),
            build_stage(settings, StageName.DRAW),
            build_stage(settings, StageName.RESIZE),
        ):
            await stack.enter_async_context(service.run())
        for thread in threads:
            thread.start()
        tallies = collector.tallies
        await until(
            lambda: all(tallies.get(c, None) and tallies[c].processed >= 6 for c in ids),
            90,
            "six processed frames per camera at 512",
        )

        # cam-1 is told to capture at 320, which no detector serves yet.
        publish_assignment(
            control, contract, Assignment(source="cam-1", quality=320, epoch=1, reason="test")
        )
        await until(
            lambda: tallies["cam-1"].deadlettered.get("no-consumer", 0) >= 2,
            60,
            "frames of quality 320 to go to deadletter as no-consumer",
        )
        assert cameras[1].stats.quality == 320 and cameras[1].stats.switches == 1

        # A detector for 320 started at run time gets the traffic without restarts.
        await stack.enter_async_context(build_stage(settings, StageName.DETECT, 320).run())
        await until(
            lambda: (
                320 in tallies["cam-1"].by_quality
                and tallies["cam-1"].by_quality[320].processed >= 12
            ),
            90,
            "frames of quality 320 processed by the new detector",
        )
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(producer.flush, 30)
        expected = {c.source_id: c.stats.produced for c in cameras}
        assert await collector.wait_for(expected, 60), {
            c: (tallies[c].accounted, n) for c, n in expected.items()
        }
    await collector.stop()
    follower.stop()

    for cam in cameras:
        tally = tallies[cam.source_id]
        assert cam.stats.produced > 0
        assert not cam.stats.dropped, cam.stats.dropped
        # exactly one outcome per produced frame, nothing twice, nothing missing
        assert tally.accounted == cam.stats.produced
        assert tally.duplicates == 0
        assert tally.sequences() == set(cam.stats.produced_sequences)
        assert set(tally.deadlettered) <= {"no-consumer"}
        assert set(tally.dropped) <= {"superseded", "deadline"}

    # Annotated files exist for processed frames, with boxes drawn in the label colour.
    out = settings.dataplane.output_dir
    files = sorted(out.glob("cam-*/*.jpg"))
    assert len(files) == sum(tallies[c].processed for c in ids)
    colour = np.array(label_colour("face"))
    boxed = sum(
        int(np.any(np.all(np.abs(_read(f).astype(int) - colour) < 40, axis=-1))) for f in files[::5]
    )
    assert boxed >= len(files[::5]) // 2, "most annotated frames should show a face box"

    f1_512 = _f1(tallies, 512)
    f1_320 = _f1(tallies, 320)
    assert f1_512 >= F1_FLOOR_512, f1_512
    assert f1_320 < f1_512, (f1_320, f1_512)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def headers_of(message: Message) -> dict[str, bytes]:
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {k: v for k, v in pairs if isinstance(v, bytes)}


def _f1(tallies: dict[str, SourceTally], quality: int) -> float:
    tp = sum(t.by_quality[quality].tp for t in tallies.values() if quality in t.by_quality)
    fp = sum(t.by_quality[quality].fp for t in tallies.values() if quality in t.by_quality)
    fn = sum(t.by_quality[quality].fn for t in tallies.values() if quality in t.by_quality)
    return float(2 * tp / max(1, 2 * tp + fp + fn))


async def test_malformed_frames_go_to_deadletter_with_the_reason(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    settings = _settings(kafka_topics, tmp_path)
    contract = Contract.of(settings)
    names = contract.names
    collector = MetricsCollector(contract, {"bad"})
    await collector.start()
    producer = Producer(producer_config(contract, client_id="test-bad"))
    good_meta = FrameMeta("bad", 0, time.time_ns(), 512)
    truncated = b"\xff\xd8" + bytes(200)  # a JPEG start without its end
    producer.produce(
        names.raw(512),
        key=b"bad",
        value=truncated,
        headers=producer_headers(encode_headers(good_meta)),
    )
    producer.produce(names.raw(512), key=b"bad", value=b"whatever", headers=[("tf-source", b"bad")])
    producer.flush(10)
    async with contextlib.AsyncExitStack() as stack:
        # Detector first: resize routes by what the registry holds when it starts.
        for service in (
            build_stage(settings, StageName.DETECT, 512),
            build_stage(settings, StageName.DRAW),
            build_stage(settings, StageName.RESIZE),
        ):
            await stack.enter_async_context(service.run())
        assert await collector.wait_for({"bad": 2}, 60)
    await collector.stop()
    tally = collector.tallies["bad"]
    assert tally.deadlettered == {"truncated-image": 1, "missing-header": 1}

    consumer = Consumer(consumer_config(contract, group_id=uuid.uuid4().hex, client_id="dl"))
    consumer.assign([TopicPartition(names.deadletter, 0, OFFSET_BEGINNING)])
    letters: list[Message] = []
    while len(letters) < 2:
        message = consumer.poll(10)
        assert message is not None, "deadletter records missing"
        letters.append(message)
    consumer.close()
    by_reason = {headers_of(m)["tf-dl-reason"]: m for m in letters}
    truncated_letter = by_reason[b"truncated-image"]
    headers = headers_of(truncated_letter)
    assert truncated_letter.value() == truncated  # the original bytes, untouched
    assert headers["tf-dl-stage"] == b"detect"
    assert headers["tf-dl-topic"] == names.ready(512).encode()
    assert headers["tf-seq"] == b"0"
    missing = headers_of(by_reason[b"missing-header"])
    assert missing["tf-dl-stage"] == b"resize"
    assert missing["tf-dl-topic"] == names.raw(512).encode()
    assert b"tf-seq" in missing["tf-dl-error"]


async def test_frames_behind_the_lag_bound_are_dropped_at_resize_and_undrawn_at_draw(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    settings = _settings(kafka_topics, tmp_path)
    settings = settings.model_copy(
        update={"dataplane": settings.dataplane.model_copy(update={"max_lag_s": 1.0})}
    )
    contract = Contract.of(settings)
    names, codec = contract.names, contract.codec
    collector = MetricsCollector(contract, {"late"})
    await collector.start()
    producer = Producer(producer_config(contract, client_id="test-late"))
    now = time.time_ns()
    image = np.zeros((512, 512, 3), np.uint8)
    # sent by its camera 3 s ago (well inside the 30 s deadline), so 3 s in front of resize
    stale = FrameMeta("late", 0, now, 512, stamps={"camera.out": now - 3_000_000_000})
    value, headers = codec.encode(image, stale)
    producer.produce(names.raw(512), key=b"late", value=value, headers=producer_headers(headers))
    # detected 3 s ago: draw records it but does not draw it
    found = Detections.from_lists([[10, 10, 40, 40]], ["face"], (512, 512))
    detected = FrameMeta("late", 1, now, 512, stamps={"detect.out": now - 3_000_000_000}).detected(
        found, "haar:face", ("face",)
    )
    value, headers = codec.encode(image, replace(detected, truth=found))
    producer.produce(
        names.detections(512), key=b"late", value=value, headers=producer_headers(headers)
    )
    producer.flush(10)
    records: list[FrameRecord] = []
    collector.on_record = records.append
    async with contextlib.AsyncExitStack() as stack:
        for service in (
            build_stage(settings, StageName.DETECT, 512),
            build_stage(settings, StageName.DRAW),
            build_stage(settings, StageName.RESIZE),
        ):
            await stack.enter_async_context(service.run())
        assert await collector.wait_for({"late": 2}, 60)
    await collector.stop()
    by_sequence = {r.sequence: r for r in records}
    assert (by_sequence[0].outcome, by_sequence[0].policy) == (Outcome.DROPPED, DropPolicy.LAG)
    assert by_sequence[0].stage == "resize"
    undrawn = by_sequence[1]
    assert (undrawn.outcome, undrawn.drawn, undrawn.f1) == (Outcome.PROCESSED, False, 1.0)
    assert undrawn.found is not None and len(undrawn.found.boxes) == 1
    assert not (tmp_path / "annotated" / "late").exists()  # nothing was stored for it


def _send_detected(
    contract: Contract,
    producer: Producer,
    source: str,
    frames: list[tuple[int, int]],
    age_ms: int = 0,
) -> None:
    """Publish detected 512 px frames ``(sequence, capture_ns)`` for draw, ``age_ms`` old."""
    image = np.zeros((512, 512, 3), np.uint8)
    found = Detections.from_lists([[10, 10, 40, 40]], ["face"], (512, 512))
    for sequence, capture_ns in frames:
        meta = FrameMeta(source, sequence, capture_ns, 512).detected(found, "haar:face", ("face",))
        value, headers = contract.codec.encode(image, meta)
        producer.produce(
            contract.names.detections(512),
            key=source.encode(),
            value=value,
            headers=producer_headers(headers),
            timestamp=int(time.time() * 1000) - age_ms,
        )
    producer.flush(10)


async def test_a_redelivered_frame_gets_no_second_outcome(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    """A detector that crashed after forwarding, before committing, sends a frame again."""
    settings = _settings(kafka_topics, tmp_path)
    contract = Contract.of(settings)
    collector = MetricsCollector(contract, {"again"})
    await collector.start()
    producer = Producer(producer_config(contract, client_id="test-again"))
    captured_ns = time.time_ns()
    # Frame 0 twice (the redelivery: the same message), then frame 1.
    frames = [(0, captured_ns), (0, captured_ns), (1, captured_ns + 1)]
    _send_detected(contract, producer, "again", frames)
    records: list[FrameRecord] = []
    collector.on_record = records.append
    async with build_stage(settings, StageName.DRAW).run():
        assert await collector.wait_for({"again": 2}, 60)
    await collector.stop()
    # One key, one partition, in order: frame 1's record comes after any repeat of frame 0.
    assert [r.sequence for r in records] == [0, 1]
    assert {r.outcome for r in records} == {Outcome.PROCESSED}


async def test_a_restarted_stage_gives_no_second_outcome_to_a_frame_finished_before(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    """kill -9 after draw wrote frame 0's outcome, before it committed: frame 0 comes again."""
    settings = _settings(kafka_topics, tmp_path)
    contract = Contract.of(settings)
    names = contract.names
    collector = MetricsCollector(contract, {"reborn"})
    await collector.start()
    records: list[FrameRecord] = []
    collector.on_record = records.append
    producer = Producer(producer_config(contract, client_id="test-reborn"))
    # What the previous incarnation wrote before it died.
    captured_ns = time.time_ns()
    first = FrameRecord(
        source="reborn", sequence=0, quality=512, capture_ns=captured_ns,
        outcome=Outcome.PROCESSED, stage="draw", latency_s=0.1,
    )  # fmt: skip
    producer.produce(names.metrics_frames, key=b"reborn", value=first.to_bytes())
    # Frame 0 redelivered to the new process; a camera restarted under the same id, whose
    # frame 0 is another frame (captured later); then frame 1.
    frames = [(0, captured_ns), (0, captured_ns + 1), (1, time.time_ns())]
    # Their records are 120 s old when consumed: the lag gauge must come back to 0.
    _send_detected(contract, producer, "reborn", frames, age_ms=120_000)
    stage = build_stage(settings, StageName.DRAW)
    async with stage.run():
        await until(lambda: len(records) >= 3, 60, "three outcome records")
        await until(lambda: stage.outcomes.repeats == 1, 30, "frame 0 taken for a repeat")

        def lag_s() -> list[float]:
            topic = names.detections(512)
            samples = next(iter(METRICS.lag_seconds.collect())).samples
            return [x.value for x in samples if x.labels["topic"] == topic]

        # Caught up, the lag is 0 s, not the age of the last record consumed (120 s).
        await until(lambda: lag_s() != [] and max(lag_s()) == 0.0, 30, "a lag of 0 s")
    await collector.stop()
    assert [(r.sequence, r.capture_ns - captured_ns) for r in records[:2]] == [(0, 0), (0, 1)]
    assert [r.sequence for r in records] == [0, 0, 1]
    assert records[0].latency_s == 0.1  # the record written before the restart, not a new one
