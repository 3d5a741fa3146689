"""TritonDetector against a real KServe-v2 server: MLServer running the synthetic ONNX models.

MLServer speaks the same v2 protocol as Triton over HTTP and gRPC but not Triton's binary
tensor extension, which is what makes the HTTP JSON fallback testable here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.inference_server import NAMES, SIDE, InferenceServer, free_port, mlserver, save
from tests.inference_server import yolo_model as build_model
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.detectors.base import Detector, DetectorError
from tierflow.operators.vision.detectors.onnx import OnnxDetector
from tierflow.operators.vision.detectors.triton import TransportName, TritonDetector

PROTOCOLS: list[TransportName] = ["grpc", "http"]
MODELS = {"yolo": {}, "yolo_v5": {"layout": "v5"}, "yolo_b1": {"batch": 1}}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic models by server name: v8 dynamic batch, v5, v8 with a fixed batch of 1."""
    folder = tmp_path_factory.mktemp("models")
    return {
        name: save(build_model(**kwargs), folder / f"{name}.onnx")  # type: ignore[arg-type]
        for name, kwargs in MODELS.items()
    }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
) -> Iterator[InferenceServer]:
    """One MLServer for the module (about 2 s to start), stopped at the end."""
    with mlserver(tmp_path_factory.mktemp("mlserver"), models) as running:
        yield running


@pytest.fixture
def triton(server: InferenceServer) -> Iterator[Callable[..., TritonDetector]]:
    """Factory of TritonDetectors on ``server`` by protocol, closed after the test."""
    opened: list[TritonDetector] = []

    def make(protocol: TransportName, model: str = "yolo", **kwargs: object) -> TritonDetector:
        url = server.grpc_url if protocol == "grpc" else server.http_url
        detector = TritonDetector(url, model, protocol=protocol, **kwargs)  # type: ignore[arg-type]
        opened.append(detector)
        return detector

    yield make
    for detector in opened:
        detector.close()


def _images() -> list[np.ndarray]:
    noise = np.random.default_rng(3).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return [
        np.zeros((SIDE, SIDE, 3), np.uint8),
        np.full((SIDE, SIDE, 3), 255, np.uint8),
        noise,
        np.zeros((64, 128, 3), np.uint8),  # letterboxed
    ]


def _assert_same(got: list[Detections], expected: list[Detections]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.image_size == e.image_size
        assert g.labels.tolist() == e.labels.tolist()
        np.testing.assert_allclose(g.xyxy, e.xyxy, atol=1e-4)
        np.testing.assert_allclose(g.confidence, e.confidence, atol=1e-6)


def _reference(path: Path, **kwargs: object) -> list[Detections]:
    local = OnnxDetector(path, **kwargs)  # type: ignore[arg-type]
    try:
        return local.detect(_images())
    finally:
        local.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", ["yolo", "yolo_v5", "yolo_b1"])
def test_server_gives_the_same_detections_as_onnxruntime_locally(
    triton: Callable[..., TritonDetector],
    models: dict[str, Path],
    protocol: TransportName,
    model: str,
) -> None:
    detector = triton(protocol, model, labels=NAMES)
    assert isinstance(detector, Detector)
    assert detector.input_size == SIDE and detector.name == f"triton:{model}@{protocol}"
    got = detector.detect(_images())
    _assert_same(got, _reference(models[model]))
    assert "dog" in got[1].labels and "dog" not in got[0].labels  # per-image pixels were sent
    assert len(got[0]) == 3


def test_http_sends_json_to_a_server_without_binary_tensors(
    triton: Callable[..., TritonDetector],
) -> None:
    assert triton("http", labels=NAMES).binary_data is False


def test_forcing_binary_tensors_on_mlserver_fails_clearly(
    triton: Callable[..., TritonDetector],
) -> None:
    detector = triton("http", labels=NAMES, binary_data=True)
    with pytest.raises(DetectorError, match=r"inference on a batch of shape \(1, 3, 64, 64\)"):
        detector.detect(_images()[:1])


def test_http_detector_serves_calls_from_several_threads(
    triton: Callable[..., TritonDetector], models: dict[str, Path]
) -> None:
    detector = triton("http", labels=NAMES)
    expected = _reference(models["yolo"])
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: detector.detect(_images()), range(6)))
    for got in results:
        _assert_same(got, expected)


def test_max_batch_splits_requests(
    triton: Callable[..., TritonDetector], models: dict[str, Path]
) -> None:
    got = triton("grpc", labels=NAMES, max_batch=3).detect(_images())
    _assert_same(got, _reference(models["yolo"]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_model_is_not_ready(
    triton: Callable[..., TritonDetector], protocol: TransportName
) -> None:
    with pytest.raises(DetectorError, match=r"model 'missing'.*not ready"):
        triton(protocol, "missing", labels=NAMES)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"labels": NAMES, "input_size": 32}, "input_size=32 but the model takes 64 pixels"),
        ({}, "fits no YOLO layout for 80 classes"),
        ({"labels": NAMES, "output_name": "nope"}, "no output 'nope' among"),
    ],
    ids=["input-size", "class-count", "output-name"],
)
def test_shape_mismatch_is_refused_at_connection(
    triton: Callable[..., TritonDetector],
    protocol: TransportName,
    kwargs: dict[str, object],
    error: str,
) -> None:
    with pytest.raises(DetectorError, match=error):
        triton(protocol, **kwargs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_server_is_a_detector_error(protocol: TransportName) -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(DetectorError, match=f"{protocol}://{url}.*unreachable"):
        TritonDetector(url, "yolo", protocol=protocol, labels=NAMES, timeout_s=2.0)


def test_server_going_down_makes_detect_fail(tmp_path: Path, models: dict[str, Path]) -> None:
    with mlserver(tmp_path / "short-lived", {"yolo": models["yolo"]}) as doomed:
        detectors = [
            TritonDetector(doomed.grpc_url, "yolo", protocol="grpc", labels=NAMES, timeout_s=2.0),
            TritonDetector(doomed.http_url, "yolo", protocol="http", labels=NAMES, timeout_s=2.0),
        ]
        assert all(len(d.detect(_images()[:1])[0]) == 3 for d in detectors)
    try:
        for detector in detectors:
            with pytest.raises(DetectorError, match="inference on a batch"):
                detector.detect(_images()[:1])
    finally:
        for detector in detectors:
            detector.close()


def test_closed_detector_refuses_to_detect(triton: Callable[..., TritonDetector]) -> None:
    detector = triton("grpc", labels=NAMES)
    detector.close()
    with pytest.raises(DetectorError, match="closed"):
        detector.detect(_images())
