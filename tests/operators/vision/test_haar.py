from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from skimage import data

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections, box_iou
from tierflow.operators.vision.detectors.base import Detector, DetectorError
from tierflow.operators.vision.detectors.haar import CASCADES, Cascade, HaarDetector
from tierflow.operators.vision.scene import Scene, SceneConfig


@pytest.fixture(scope="module")
def astronaut() -> Image:
    rgb: Image = data.astronaut()  # type: ignore[no-untyped-call]  # untyped in skimage
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def test_is_a_detector_reporting_faces_by_default() -> None:
    detector = HaarDetector(512)
    assert isinstance(detector, Detector)
    assert detector.labels == ("face",)
    assert detector.name == "haar:face"


def test_finds_the_astronaut_face(astronaut: Image) -> None:
    (found,) = HaarDetector(512).detect([astronaut])
    faces = found.with_labels(["face"])
    expected = np.array([[177, 66, 272, 161]], np.float32)
    assert len(faces) >= 1
    assert box_iou(faces.xyxy, expected).max() >= 0.5
    assert np.all((faces.confidence > 0) & (faces.confidence <= 1))
    assert found.image_size == (512, 512)


def test_finds_nothing_in_a_blank_image() -> None:
    blank = np.full((320, 320, 3), 127, np.uint8)
    detector = HaarDetector(320, ("face", "upper_body", "full_body"))
    assert detector.labels == ("face", "person")
    assert [len(d) for d in detector.detect([blank, blank])] == [0, 0]


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((320, 320, 3), np.uint8),
        np.zeros((512, 512), np.uint8),
        np.zeros((512, 512, 4), np.uint8),
        np.zeros((512, 512, 3), np.float32),
    ],
    ids=["wrong-size", "grey", "four-channels", "float"],
)
def test_wrong_input_raises(image: Image) -> None:
    good = np.zeros((512, 512, 3), np.uint8)
    with pytest.raises(DetectorError, match="image 1 must be uint8"):
        HaarDetector(512).detect([good, image])


def test_unknown_cascade_and_bad_parameters_raise() -> None:
    with pytest.raises(DetectorError, match="cascades must be"):
        HaarDetector(512, ("cat",))
    with pytest.raises(DetectorError, match="scale_factor"):
        HaarDetector(512, scale_factor=1.0)


def test_cascade_file_that_does_not_load_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CASCADES, "face", Cascade("haarcascade_missing.xml", "face"))
    with pytest.raises(DetectorError, match=r"cannot load cascade 'haarcascade_missing\.xml'"):
        HaarDetector(512)


def _key(d: Detections) -> list[tuple[float, ...]]:
    return [(*box.tolist(), float(c)) for box, c in zip(d.xyxy, d.confidence, strict=True)]


def test_concurrent_calls_give_the_sequential_results() -> None:
    detector = HaarDetector(320)
    scene = Scene(SceneConfig(seed=1))
    frames = [scene.render_at(t_s, 320)[0] for t_s in (0.0, 3.0, 6.0, 9.0)]
    expected = [_key(d) for d in detector.detect(frames)]
    assert sum(map(len, expected)) > 0
    start = threading.Barrier(4)

    def run(rounds: int) -> list[list[tuple[float, ...]]]:
        start.wait()  # all four threads inside detect at the same time
        out: list[list[tuple[float, ...]]] = []
        for _ in range(rounds):
            out.extend(_key(d) for d in detector.detect(frames))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [3] * 4))
    for result in results:
        assert result == expected * 3
