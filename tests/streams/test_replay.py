"""Replay on a real broker: deterministic, ordered per source, and obedient to assignments."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from tests.waiting import eventually
from tierflow.settings import Settings
from tierflow.streams.assignments import AssignmentFollower, publish_assignment
from tierflow.streams.capture import SceneSource
from tierflow.streams.recording import Recording, RecordingError, content_hash, record_cameras
from tierflow.streams.replay import record_topics, replay
from tierflow.topics.admin import create_catalogue
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import decode_meta, header_map
from tierflow.topics.headers import H_TRUTH
from tierflow.topics.records import Assignment, Outcome, parse_frame_records
from tierflow.topics.snapshot import read_to_end

pytestmark = pytest.mark.kafka
FRAMES = 8


@pytest.fixture
def recording(tmp_path: Path, kafka_settings: Settings) -> Iterator[Recording]:
    sources = {f"cam-{i}": SceneSource(7 + i, 512) for i in range(2)}
    record_cameras(tmp_path / "rec", Contract.of(kafka_settings), sources, FRAMES, 10.0, 512)
    with Recording(tmp_path / "rec") as opened:
        yield opened


def _on(settings: Settings, prefix: str) -> Contract:
    own = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"prefix": prefix})}
    )
    contract = Contract.of(own)
    create_catalogue(contract)
    return contract


def _sent(contract: Contract) -> list[tuple[str, int, int, str, bytes]]:
    """Every frame on the prefix's raw topics: source, sequence, quality, value hash, truth."""
    frames: list[tuple[str, int, int, str, bytes]] = []

    def handle(message: Message) -> None:
        meta = decode_meta(message.headers())
        truth = header_map(message.headers()).get(H_TRUTH, b"")
        digest = hashlib.sha256(message.value() or b"").hexdigest()
        frames.append((meta.source, meta.sequence, meta.quality, digest, truth))

    read_to_end(contract, [contract.names.raw(q) for q in contract.qualities], handle)
    return frames


def _replay(
    contract: Contract, recording: Recording, follower: AssignmentFollower | None
) -> dict[str, object]:
    return replay(
        contract,
        recording,
        speed=None,
        loop=False,
        follower=follower,
        queue_kbytes=65536,
        stop=threading.Event(),
    )


def test_two_replays_send_the_same_frames_in_order(
    kafka_settings: Settings, recording: Recording
) -> None:
    a = _on(kafka_settings, kafka_settings.topics.prefix + "-a")
    b = _on(kafka_settings, kafka_settings.topics.prefix + "-b")
    _replay(a, recording, None)
    _replay(b, recording, None)
    sent_a, sent_b = _sent(a), _sent(b)
    assert len(sent_a) == 2 * FRAMES
    assert sorted(sent_a) == sorted(sent_b)  # same frames, by content hash
    for source in ("cam-0", "cam-1"):  # and per source in recorded order (one partition each)
        assert [s for src, s, *_ in sent_a if src == source] == list(range(FRAMES))
    recorded = {
        (f.source, f.sequence): hashlib.sha256(recording.value(f)).hexdigest()
        for f in recording.frames
    }
    assert all(recorded[(src, seq)] == digest for src, seq, _, digest, _ in sent_a)  # forwarded
    assert all(truth for *_, truth in sent_a)


def test_replay_follows_assignments_quality_and_frame_rate(
    kafka_settings: Settings, recording: Recording
) -> None:
    contract = _on(kafka_settings, kafka_settings.topics.prefix + "-assigned")
    producer = Producer(producer_config(contract, "test-assign"))
    publish_assignment(
        producer, contract, Assignment(source="cam-0", quality=320, fps=5.0, epoch=1)
    )
    follower = AssignmentFollower(contract).start()
    try:
        eventually(lambda: follower.get("cam-0"), lambda a: a is not None)
        summary = _replay(contract, recording, follower)
    finally:
        follower.stop()
    sent = _sent(contract)
    cam0 = [f for f in sent if f[0] == "cam-0"]
    assert {q for _, _, q, _, _ in cam0} == {320}
    assert len(cam0) == FRAMES // 2  # 5 of 10 fps: every other frame
    assert {q for src, _, q, _, _ in sent if src == "cam-1"} == {512}
    sources = summary["sources"]
    assert isinstance(sources, dict)
    assert sources["cam-0"]["sampled"] == FRAMES // 2
    records = []
    read_to_end(
        contract,
        [contract.names.metrics_frames],
        lambda m: records.extend(parse_frame_records(m.value())),
    )
    sampled = [r for r in records if r.outcome is Outcome.SAMPLED]
    assert len(sampled) == FRAMES // 2 and all(r.truth is not None for r in sampled)


def test_recording_a_prefix_gives_back_the_replayed_frames(
    kafka_settings: Settings, recording: Recording, tmp_path: Path
) -> None:
    contract = _on(kafka_settings, kafka_settings.topics.prefix + "-rec")
    _replay(contract, recording, None)
    manifest = record_topics(contract, tmp_path / "again", duration_s=None, from_beginning=True)
    assert manifest["frames"] == 2 * FRAMES
    assert manifest["origin"] == f"topics:{contract.names.prefix}"
    with Recording(tmp_path / "again") as again:
        values = sorted(again.value(f) for f in again.frames)
    assert values == sorted(recording.value(f) for f in recording.frames)
    only = record_topics(
        contract,
        tmp_path / "one",
        duration_s=None,
        sources=frozenset({"cam-1"}),
        from_beginning=True,
    )
    assert set(only["sources"]) == {"cam-1"}


def test_raw_frames_replay_with_their_shape_and_a_bad_one_is_counted(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    frames = kafka_settings.frames.model_copy(update={"codec": "raw"})
    raw = kafka_settings.model_copy(update={"frames": frames})
    source = {"cam-raw": SceneSource(3, 320)}
    record_cameras(tmp_path / "raw", Contract.of(raw), source, 3, 10.0, 320)
    index = tmp_path / "raw" / "index.jsonl"
    lines = index.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["headers"]["tf-shape"] = base64.b64encode(b"9,9,9").decode()  # not its size
    lines[1] = json.dumps(broken, separators=(",", ":"), sort_keys=True)
    index.write_text("\n".join(lines) + "\n")
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    manifest["sha256"] = content_hash(tmp_path / "raw")  # a hand-edited, re-hashed recording
    (tmp_path / "raw" / "manifest.json").write_text(json.dumps(manifest))
    contract = _on(raw, raw.topics.prefix + "-raw")
    with Recording(tmp_path / "raw") as recording:
        summary = _replay(contract, recording, None)
    sources = summary["sources"]
    assert isinstance(sources, dict)
    assert sources["cam-raw"]["produced"] == 2
    assert sources["cam-raw"]["dropped"] == {"decode-error": 1}  # counted, and the rest went on
    shapes = []
    read_to_end(
        contract,
        [contract.names.raw(320)],
        lambda m: shapes.append(decode_meta(m.headers()).shape),  # readable: shape is there
    )
    assert shapes == [(320, 320, 3), (320, 320, 3)]


def test_recording_a_prefix_without_frame_topics_is_an_error(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(RecordingError, match=r"no frames\.raw topics"):
        record_topics(Contract.of(kafka_settings), tmp_path / "r", duration_s=1.0)
    assert not (tmp_path / "r").exists()
