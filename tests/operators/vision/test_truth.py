"""COCO instances and MOT gt.txt as ground truth of a user's frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierflow.operators.vision.truth import CocoTruth, MotTruth, TruthError, load_truth


def coco(path: Path) -> Path:
    path.write_text(json.dumps({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
            {"id": 2, "file_name": "sub/b.jpg", "width": 640, "height": 480},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"image_id": 1, "category_id": 1, "bbox": [100, 100, 50, 50], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }))  # fmt: skip
    return path


def test_coco_labels_images_by_file_name_and_leaves_crowds_out(tmp_path: Path) -> None:
    truth = CocoTruth(coco(tmp_path / "instances.json"))
    a = truth.for_frame(0, "a.jpg", (640, 480))
    assert a is not None and a.labels.tolist() == ["car"]
    assert a.xyxy.tolist() == [[10, 20, 40, 60]]
    b = truth.for_frame(1, "b.jpg", (320, 240))  # listed, nothing in it; any scale
    assert b is not None and len(b) == 0 and b.image_size == (320, 240)
    assert truth.for_frame(2, "c.jpg", (640, 480)) is None  # not listed: unlabelled
    half = truth.for_frame(0, "a.jpg", (320, 240))
    assert half is not None and half.xyxy.tolist() == [[5, 10, 20, 30]]


def test_mot_keeps_pedestrians_and_drops_ignored_rows(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(
        "1,1,10,20,30,40,1,1,0.9\n"
        "1,2,50,50,10,10,0,1,1.0\n"  # conf 0: MOT's ignore flag
        "1,3,60,60,10,10,1,3,1.0\n"  # class 3: a car
        "3,1,12,22,30,40,1,1,1.0\n"
    )
    truth = MotTruth(gt)
    first = truth.for_frame(0, None, (640, 480))
    assert first is not None and first.xyxy.tolist() == [[10, 20, 40, 60]]
    assert first.labels.tolist() == ["person"]
    second = truth.for_frame(1, None, (640, 480))
    assert second is not None and len(second) == 0  # in the sequence, nobody there
    assert truth.for_frame(3, None, (640, 480)) is None  # past the last frame


def test_mot15_rows_without_a_class_count(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,30,40,1,-1,-1,-1\n")
    found = MotTruth(gt, label="face").for_frame(0, None, (100, 100))
    assert found is not None and found.labels.tolist() == ["face"]


def test_seqinfo_gives_the_sequence_length(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=X\nseqLength=5\n")
    gt = tmp_path / "gt" / "gt.txt"
    gt.write_text("1,1,10,20,30,40,1,1,1\n")
    truth = load_truth(gt)
    assert isinstance(truth, MotTruth) and truth.frames == 5
    assert truth.for_frame(4, None, (100, 100)) is not None
    assert truth.for_frame(5, None, (100, 100)) is None


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("gt.txt", "1,1,10,20\n", "needs frame,id,left,top,width,height"),
        ("gt.txt", "1,1,a,20,30,40\n", "not a number"),
        ("x.json", "{}", "not a COCO instances file"),
        ("x.json", '{"images": [], "categories": [], "annotations": [{"image_id": 9, '
         '"category_id": 1, "bbox": [1, 2, 3, 4]}]}', "annotation 0 has no valid"),
    ],
)  # fmt: skip
def test_malformed_truth_files_are_named(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TruthError, match=problem):
        load_truth(path)


def test_a_missing_truth_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="does not exist"):
        load_truth(tmp_path / "nope.txt")
