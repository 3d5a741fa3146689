"""``tierflow up --sources`` on a user's own video and MOT truth, as a newcomer runs it.

The video is not square (768 x 512: a generated scene with grey bands), so the frames are
letterboxed; the F1 comes from the MOT file; an independent consumer reads
``detections.json`` and finds the boxes in the video's own pixels.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.cli import tierflow
from tierflow.operators.vision.detections import Detections, box_iou
from tierflow.operators.vision.scene import Scene, SceneConfig
from tierflow.topics.names import TopicNames
from tierflow.topics.records import DetectionRecord, parse_record

pytestmark = pytest.mark.kafka
WIDTH, HEIGHT, BAND = 768, 512, 128
FPS = 5.0
FRAMES = 30


def write_video(folder: Path) -> dict[int, Detections]:
    """A 768 x 512 MJPG video of scene 0 with grey bands, and its MOT gt.txt (faces)."""
    scene = Scene(SceneConfig.for_size(0, HEIGHT))
    video = folder / "lobby.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    rows: list[str] = []
    truth: dict[int, Detections] = {}
    for n in range(FRAMES):
        image, found = scene.render(n / FPS)
        canvas = np.full((HEIGHT, WIDTH, 3), 114, np.uint8)
        canvas[:, BAND : BAND + HEIGHT] = image
        writer.write(canvas)
        faces = found.with_labels(["face"])
        shifted = faces.xyxy + np.array([BAND, 0, BAND, 0], np.float32)
        truth[n] = Detections(shifted, faces.confidence, faces.labels, (WIDTH, HEIGHT))
        for track, (x1, y1, x2, y2) in enumerate(shifted.tolist(), 1):
            rows.append(f"{n + 1},{track},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},1,1,1")
    writer.release()
    gt = folder / "gt.txt"
    gt.write_text("\n".join(rows) + "\n")
    return truth


def read_detections(bootstrap: str, topic: str, expected: int) -> list[DetectionRecord]:
    """Every record of ``topic``, read by a plain consumer of no tierflow group."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"downstream-{uuid.uuid4().hex[:6]}",
        "enable.auto.commit": False,
    })  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[DetectionRecord] = []
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is None:
                if len(records) >= expected:
                    break
                continue
            assert message.error() is None, message.error()
            records.append(parse_record(DetectionRecord, message.value()))
        return records
    finally:
        consumer.close()


def test_up_on_a_video_with_mot_truth_scores_it_and_publishes_detections(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    truth = write_video(tmp_path)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[sources]]\nid = "lobby"\nuri = "lobby.avi"\nfps = 5\ntruth = "gt.txt"\nlabel = "face"\n'
    )
    prefix = f"src-{uuid.uuid4().hex[:8]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
    }
    out = tmp_path / "annotated"
    args = ["up", "--sources", str(sources), "--qualities", "512", "--no-control"]
    result = tierflow(*args, "--json", "--output-dir", str(out), env=env, timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    entry = summary["sources"]["lobby"]
    assert entry["captured"] == FRAMES  # the file ended the run
    assert entry["unaccounted"] == 0
    assert entry["processed"] > 0
    assert entry["f1"] is not None and entry["f1"] > 0.3, entry

    records = read_detections(
        kafka_bootstrap, TopicNames(prefix).detections_json, entry["processed"]
    )
    assert len(records) == entry["processed"]
    matched = 0
    for record in records:
        assert record.source == "lobby" and record.quality == 512
        assert record.image_size == (WIDTH, HEIGHT)
        found = Detections.from_lists(record.boxes, record.labels, record.image_size, record.scores)
        assert (found.xyxy[:, 0] >= 0).all() and (found.xyxy[:, 2] <= WIDTH).all()
        overlaps = box_iou(found.xyxy, truth[record.sequence].xyxy)
        matched += int((overlaps >= 0.5).any(axis=1).sum())
    # Boxes mapped back through the letterbox land on the faces in the video's pixels.
    assert matched >= len(records) // 2, matched
