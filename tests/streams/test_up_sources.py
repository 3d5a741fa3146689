"""``tierflow up --sources`` on a user's own video and MOT truth, as a newcomer runs it.

The sample (``tierflow sources sample``) is a 768 x 512 video with its MOT file and the same
frames as an image folder with a COCO file: not square, so the frames are letterboxed; the
F1 comes from the truth files; an independent consumer reads ``detections.json`` and finds
the boxes in the sources' own pixels.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.cli import tierflow
from tierflow.operators.vision.detections import Detections, box_iou
from tierflow.streams.samples import HEIGHT, WIDTH, write_sample
from tierflow.topics.names import TopicNames
from tierflow.topics.records import DetectionRecord, parse_record

pytestmark = pytest.mark.kafka
FRAMES = 30


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
    sample = write_sample(tmp_path / "data", frames=FRAMES, fps=5.0)
    prefix = f"src-{uuid.uuid4().hex[:8]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
    }
    # The same video again, unlabelled: scored against reference copies at 512 px while
    # its own frames go at 416 (golden-configuration truth).
    with sample.sources_file.open("a") as f:
        f.write('\n[[sources]]\nid = "golden"\nuri = "lobby.avi"\nfps = 5\n')
        f.write('truth = "golden"\nqualities = [416]\n')
    out = tmp_path / "annotated"
    args = ["up", "--sources", str(sample.sources_file), "--qualities", "416", "512"]
    args.append("--no-control")
    result = tierflow(*args, "--json", "--output-dir", str(out), env=env, timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert set(summary["sources"]) == {"lobby", "shop", "golden"}
    assert summary["sources"]["lobby"]["truth"] == "MOT lobby-gt.txt"
    assert summary["sources"]["shop"]["truth"] == "COCO shop-instances.json"
    golden = summary["sources"]["golden"]
    assert golden["truth"] == "golden (strongest quality)" and golden["quality"] == 416
    copies = golden["reference_copies"]
    assert copies["quality"] == 512 and copies["delivered"] == copies["sent"] > 0
    assert 0 < golden["golden_scored"] <= copies["sent"]
    # The copies are in no count and in no folder: one stored file per processed frame.
    assert len(list((out / "golden").glob("*.jpg"))) == golden["processed"]
    for entry in summary["sources"].values():
        assert entry["captured"] == FRAMES  # the file ended the run
        assert entry["unaccounted"] == 0
        assert entry["processed"] > 0
        assert entry["f1"] is not None and entry["f1"] > 0.3, entry
    processed = sum(entry["processed"] for entry in summary["sources"].values())

    records = read_detections(kafka_bootstrap, TopicNames(prefix).detections_json, processed)
    assert len(records) == processed
    matched = 0
    for record in records:
        assert record.source in ("lobby", "shop", "golden")
        assert record.quality == (416 if record.source == "golden" else 512)
        assert record.image_size == (WIDTH, HEIGHT)
        found = Detections.from_lists(record.boxes, record.labels, record.image_size, record.scores)
        assert (found.xyxy[:, 0] >= 0).all() and (found.xyxy[:, 2] <= WIDTH).all()
        overlaps = box_iou(found.xyxy, sample.truth[record.sequence].xyxy)
        matched += int((overlaps >= 0.5).any(axis=1).sum())
    # Boxes mapped back through the letterbox land on the faces in the video's pixels.
    assert matched >= len(records) // 2, matched


def test_sources_check_names_the_first_problem_and_sample_writes_a_valid_file(
    tmp_path: Path,
) -> None:
    written = tierflow("sources", "sample", str(tmp_path / "s"), "--frames", "3")
    assert written.returncode == 0, written.stderr
    checked = tierflow("sources", "check", str(tmp_path / "s" / "sources.toml"))
    assert checked.returncode == 0, checked.stderr
    assert "lobby" in checked.stdout and "COCO shop-instances.json" in checked.stdout
    (tmp_path / "s" / "lobby-gt.txt").write_text("1,1,x\n")
    broken = tierflow("sources", "check", str(tmp_path / "s" / "sources.toml"))
    assert broken.returncode == 2
    assert "source 'lobby'" in broken.stderr and "lobby-gt.txt" in broken.stderr
