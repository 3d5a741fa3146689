"""The factory builds each configured backend, and says what is missing when it cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.inference_server import Anchor, save, yolo_model
from tierflow.operators.vision.detectors.base import DetectorError
from tierflow.operators.vision.detectors.factory import make_detector
from tierflow.operators.vision.detectors.haar import HaarDetector
from tierflow.operators.vision.detectors.onnx import OnnxDetector
from tierflow.settings import DetectorSettings


def test_haar_takes_the_quality_as_its_input_size() -> None:
    detector = make_detector(DetectorSettings(), quality=416)
    assert isinstance(detector, HaarDetector)
    assert detector.input_size == 416


def test_onnx_without_a_model_names_the_setting() -> None:
    with pytest.raises(DetectorError, match="ONNX_MODEL"):
        make_detector(DetectorSettings(backend="onnx"), quality=512)


def test_onnx_with_a_fixed_input_size_keeps_it(tmp_path: Path) -> None:
    model = save(yolo_model(side=64), tmp_path / "fixed.onnx")
    detector = make_detector(DetectorSettings(backend="onnx", onnx_model=model), quality=512)
    assert isinstance(detector, OnnxDetector)
    assert detector.input_size == 64


def test_onnx_with_a_dynamic_input_size_and_no_metadata_takes_the_quality(tmp_path: Path) -> None:
    coco = (Anchor((8, 8, 32, 32), (0.9,) + (0.0,) * 79),)  # 80 classes: COCO names apply
    model = save(yolo_model(coco, side=None, names=None), tmp_path / "dynamic.onnx")
    detector = make_detector(DetectorSettings(backend="onnx", onnx_model=model), quality=320)
    assert detector.input_size == 320


def test_a_missing_onnx_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="does not exist"):
        make_detector(DetectorSettings(backend="onnx", onnx_model=tmp_path / "no.onnx"), 512)


def test_an_unreachable_triton_server_is_reported() -> None:
    settings = DetectorSettings(backend="triton", triton_url="127.0.0.1:1", triton_protocol="grpc")
    with pytest.raises(DetectorError):
        make_detector(settings, quality=512)


def test_the_confidence_threshold_comes_from_the_settings(tmp_path: Path) -> None:
    coco = (Anchor((8, 8, 32, 32), (0.6,) + (0.0,) * 79),)
    model = save(yolo_model(coco, side=64, names=None), tmp_path / "one.onnx")
    image = np.zeros((64, 64, 3), np.uint8)
    kept = make_detector(DetectorSettings(backend="onnx", onnx_model=model, conf_threshold=0.5), 64)
    dropped = make_detector(
        DetectorSettings(backend="onnx", onnx_model=model, conf_threshold=0.7), 64
    )
    assert len(kept.detect([image])[0]) == 1
    assert len(dropped.detect([image])[0]) == 0
