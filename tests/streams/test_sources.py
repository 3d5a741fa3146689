"""The sources file of ``tierflow up --sources`` and the sources it opens."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tierflow.errors import ConfigError
from tierflow.operators.vision.detections import Detections
from tierflow.streams.capture import FolderSource, framed
from tierflow.streams.sources import check_sources, from_uris, id_from_uri, load_sources
from tierflow.topics.envelope import FrameMeta
from tierflow.topics.records import DetectionRecord


def images(folder: Path, n: int = 3, size: tuple[int, int] = (640, 360)) -> Path:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), np.full((size[1], size[0], 3), 90, np.uint8))
    return folder


def test_a_sources_file_resolves_paths_and_fills_ids(tmp_path: Path) -> None:
    images(tmp_path / "shop")
    (tmp_path / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n")
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[sources]]\nuri = "shop"\ntruth = "gt.txt"\nqualities = [416]\n'
        '[[sources]]\nid = "gen"\nuri = "scene:3"\nfps = 10\n'
    )
    shop, gen = load_sources(path)
    assert shop.id == "shop" and shop.uri == str(tmp_path / "shop")
    assert shop.truth == tmp_path / "gt.txt" and shop.qualities == (416,)
    assert (gen.id, gen.uri, gen.fps, gen.truth) == ("gen", "scene:3", 10, None)
    check_sources([shop, gen], (320, 416, 512), 1024)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "sources: Field required"),
        ('[[sources]]\nid = "a b"\nuri = "scene:1"\n', r"sources\[0\] \(id 'a b'\)\.id"),
        ('[[sources]]\nuri = "scene:1"\nfps = -1\n', r"sources\[0\] \(id 'scene-1'\)\.fps"),
        ('[[sources]]\nuri = "scene:1"\ncolour = 1\n', "colour: Extra inputs"),
        ('[[sources]]\nuri = "scene:1"\n[[sources]]\nuri = "scene:1"\n', "repeated: scene-1"),
        ("[[sources]\n", "is not TOML"),
    ],
)
def test_a_bad_sources_file_names_the_source_and_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_sources(path)


def test_sources_are_checked_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n")
    missing, truth_on_scene, no_topic = from_uris([str(tmp_path / "nope.mp4"), "scene:1", "x"])
    with pytest.raises(ConfigError, match="'nope': camera source"):
        check_sources([missing], (512,), 256)
    scene = truth_on_scene.model_copy(update={"truth": tmp_path / "gt.txt"})
    with pytest.raises(ConfigError, match="cannot take a truth file"):
        check_sources([scene], (512,), 256)
    odd = no_topic.model_copy(update={"uri": "scene:2", "qualities": (300,)})
    with pytest.raises(ConfigError, match=r"qualities \[300\] have no topics"):
        check_sources([odd], (512,), 256)


def test_ids_from_uris_are_safe_and_unique() -> None:
    assert id_from_uri("/data/Lobby Cam.mp4") == "Lobby-Cam"
    assert id_from_uri("rtsp://10.0.0.5:554/live") == "rtsp-10.0.0.5-554-live"
    ids = [s.id for s in from_uris(["a/x.mp4", "b/x.mp4", "scene:1"])]
    assert ids == ["x", "x-2", "scene-1"]


def test_a_folder_with_coco_truth_gives_letterboxed_truth(tmp_path: Path) -> None:
    folder = images(tmp_path / "imgs", n=2)
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({
        "images": [{"id": 7, "file_name": "000001.jpg", "width": 640, "height": 360}],
        "annotations": [{"image_id": 7, "category_id": 1, "bbox": [100, 50, 60, 80]}],
        "categories": [{"id": 1, "name": "person"}],
    }))  # fmt: skip
    spec = from_uris([str(folder)])[0].model_copy(update={"truth": coco})
    source = spec.open(1024)
    assert isinstance(source, FolderSource)
    first = source.read(0, 0.0)
    assert first is not None and first.truth is None  # 000000.jpg is not in the file
    second = source.read(1, 0.2)
    assert second is not None and second.truth is not None
    image, truth, origin = framed(second, 320)
    assert image.shape == (320, 320, 3) and origin == (640, 360)
    assert truth is not None
    # scale 0.5, 70 px band on top: (100, 50, 160, 130) -> (50, 95, 80, 135)
    np.testing.assert_allclose(truth.xyxy[0], [50, 95, 80, 135])
    skipped = source.skip(1, 0.2, 416)
    assert skipped is not None and skipped.truth is not None
    assert skipped.truth.image_size == (416, 416)


def test_a_detection_record_has_boxes_in_the_source_pixels() -> None:
    found = Detections.from_lists([[50, 95, 80, 135]], ["person"], (320, 320), [0.8])
    meta = FrameMeta("shop", 4, 10**18, 320, origin=(640, 360)).detected(
        found.scaled_to((160, 160)), "onnx:yolo", ("person",)
    )
    record = DetectionRecord.of(meta, now_ns=10**18 + 25 * 10**7)
    assert record.image_size == (640, 360) and record.labels == ["person"]
    np.testing.assert_allclose(record.boxes[0], [100, 50, 160, 130])
    assert record.scores == [0.8] and record.latency_s == pytest.approx(0.25)
