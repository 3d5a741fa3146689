from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.inference_server import NAMES, SIDE, Anchor, save, yolo_model
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.detectors.base import Detector, DetectorError
from tierflow.operators.vision.detectors.onnx import OnnxDetector

Found = tuple[str, tuple[float, ...], float]

BLACK_IMAGE: list[Found] = [
    ("person", (8, 8, 32, 32), 0.9),
    ("car", (10, 10, 34, 34), 0.7),
    ("car", (8, 40, 28, 60), 0.6),
]
"""The synthetic model's detections on a black image: the second person (IoU 0.72 with the
first) is suppressed, the car on the same spot kept, the 0.1 dog and the 0.2 x 0.9 person
filtered by the 0.25 threshold."""

BRIGHT_DOG: Found = ("dog", (40, 8, 60, 28), 0.85)
"""Added on a white image: its score is 0.1 + 0.75 x the image mean."""


def _found(d: Detections) -> list[Found]:
    return [
        (str(label), tuple(float(v) for v in np.round(box, 3)), round(float(c), 3))
        for label, box, c in zip(d.labels, d.xyxy, d.confidence, strict=True)
    ]


def _image(value: int, width: int = SIDE, height: int = SIDE) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


@pytest.fixture
def open_detector(tmp_path: Path) -> Iterator[type[OnnxDetector]]:
    """OnnxDetector, closed at the end of the test whatever happens."""
    opened: list[OnnxDetector] = []

    class Closing(OnnxDetector):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            opened.append(self)

    yield Closing
    for detector in opened:
        detector.close()


@pytest.mark.parametrize("layout", ["v8", "v5", "v8-transposed"])
def test_known_boxes_come_out_of_every_layout(
    tmp_path: Path, open_detector: type[OnnxDetector], layout: str
) -> None:
    detector = open_detector(save(yolo_model(layout=layout), tmp_path / "m.onnx"))
    assert isinstance(detector, Detector)
    (dark,) = detector.detect([_image(0)])
    assert _found(dark) == BLACK_IMAGE
    assert dark.image_size == (SIDE, SIDE)


def test_each_image_of_a_batch_is_run_on_its_own_pixels(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    detector = open_detector(save(yolo_model(), tmp_path / "m.onnx"))
    dark, bright, dark_again = detector.detect([_image(0), _image(255), _image(0)])
    assert _found(dark) == _found(dark_again) == BLACK_IMAGE
    assert _found(bright) == [BLACK_IMAGE[0], BRIGHT_DOG, *BLACK_IMAGE[1:]]


def test_model_shape_metadata_and_names_are_read(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    detector = open_detector(save(yolo_model(), tmp_path / "yolo_synth.onnx"))
    assert detector.input_size == SIDE
    assert detector.labels == NAMES
    assert detector.name == "onnx:yolo_synth"


def test_user_labels_override_metadata(tmp_path: Path, open_detector: type[OnnxDetector]) -> None:
    detector = open_detector(save(yolo_model(), tmp_path / "m.onnx"), labels=["a", "b", "c"])
    (dark,) = detector.detect([_image(0)])
    assert dark.labels.tolist() == ["a", "b", "b"]


def test_a_model_without_names_needs_labels_for_its_class_count(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    path = save(yolo_model(names=None), tmp_path / "m.onnx")
    with pytest.raises(DetectorError, match="fits no YOLO layout for 80 classes"):
        open_detector(path)  # COCO's 80 names by default, the model has 3 classes
    assert open_detector(path, labels=NAMES).labels == NAMES


def test_boxes_come_back_in_pixels_of_the_image_given(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    detector = open_detector(save(yolo_model(), tmp_path / "m.onnx"), conf_threshold=0.5)
    double, wide = detector.detect([_image(0, 128, 128), _image(0, 128, 64)])
    assert double.image_size == (128, 128) and wide.image_size == (128, 64)
    assert _found(double) == [
        ("person", (16, 16, 64, 64), 0.9),
        ("car", (20, 20, 68, 68), 0.7),
        ("car", (16, 80, 56, 120), 0.6),
    ]
    # 128x64 is shrunk to 64x32 and centred 16 pixels down: y = (y_model - 16) * 2, clipped.
    assert _found(wide)[0] == ("person", (16, 0, 64, 32), 0.9)
    assert _found(wide)[2] == ("car", (16, 48, 56, 64), 0.6)


def test_thresholds_and_max_detections_are_applied(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    path = save(yolo_model(layout="v5"), tmp_path / "m.onnx")
    (strict,) = open_detector(path, conf_threshold=0.65).detect([_image(0)])
    assert _found(strict) == BLACK_IMAGE[:2]
    (loose,) = open_detector(path, conf_threshold=0.15).detect([_image(0)])
    assert ("person", (40, 40, 60, 60), 0.18) in _found(loose)  # objectness 0.2 x score 0.9
    (capped,) = open_detector(path, max_detections=1).detect([_image(0)])
    assert _found(capped) == BLACK_IMAGE[:1]
    (no_nms,) = open_detector(path, iou_threshold=0.8).detect([_image(0)])
    assert ("person", (10, 10, 34, 34), 0.8) in _found(no_nms)  # IoU 0.72 no longer suppresses


def test_a_fixed_batch_of_one_runs_images_one_by_one(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    single = open_detector(save(yolo_model(batch=1), tmp_path / "b1.onnx"))
    dynamic = open_detector(save(yolo_model(), tmp_path / "dyn.onnx"))
    images = [_image(0), _image(255), _image(128)]
    one_by_one, together = single.detect(images), dynamic.detect(images)
    assert [_found(d) for d in one_by_one] == [_found(d) for d in together]
    assert BRIGHT_DOG in _found(one_by_one[1]) and BRIGHT_DOG not in _found(one_by_one[0])


def test_a_fixed_batch_of_four_is_padded(tmp_path: Path, open_detector: type[OnnxDetector]) -> None:
    detector = open_detector(save(yolo_model(batch=4), tmp_path / "b4.onnx"))
    results = detector.detect([_image(255)] * 5)
    assert [_found(d) for d in results] == [[BLACK_IMAGE[0], BRIGHT_DOG, *BLACK_IMAGE[1:]]] * 5


def test_dynamic_input_size_comes_from_metadata_or_the_caller(
    tmp_path: Path, open_detector: type[OnnxDetector]
) -> None:
    assert open_detector(save(yolo_model(side=None), tmp_path / "a.onnx")).input_size == SIDE
    bare = save(yolo_model(side=None, names=None), tmp_path / "b.onnx")
    with pytest.raises(DetectorError, match="dynamic size; pass input_size"):
        open_detector(bare, labels=NAMES)
    detector = open_detector(bare, labels=NAMES, input_size=32)
    assert detector.input_size == 32
    (small,) = detector.detect([_image(0, 32, 32)])
    assert len(small) == 3  # the model's boxes, clipped to the 32-pixel image


def test_no_images_give_no_results(tmp_path: Path, open_detector: type[OnnxDetector]) -> None:
    assert open_detector(save(yolo_model(), tmp_path / "m.onnx")).detect([]) == []


def test_missing_file_is_a_detector_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"nothing\.onnx does not exist"):
        OnnxDetector(tmp_path / "nothing.onnx")


def test_unreadable_model_is_a_detector_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(DetectorError, match="cannot load ONNX model"):
        OnnxDetector(path)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"input_shape": ["batch", 3, 64, 32]}, "only square inputs"),
        ({"input_shape": ["batch", 1, 64, 64]}, r"expected an image input \(N, 3, S, S\)"),
        ({"input_shape": ["batch", 3, 64, 64, 1]}, r"expected an image input \(N, 3, S, S\)"),
        ({"anchors": [Anchor((0, 0, 1, 1), (0.5, 0.5, 0.5, 0.5))] * 5}, "fits no YOLO layout"),
    ],
    ids=["non-square", "one-channel", "rank-5", "four-classes-for-three-names"],
)
def test_unexpected_model_shapes_are_refused(
    tmp_path: Path, kwargs: dict[str, object], error: str
) -> None:
    path = save(yolo_model(**kwargs), tmp_path / "bad.onnx")  # type: ignore[arg-type]
    with pytest.raises(DetectorError, match=error):
        OnnxDetector(path)


def test_input_size_contradicting_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="input_size=32 but the model takes 64x64"):
        OnnxDetector(save(yolo_model(), tmp_path / "m.onnx"), input_size=32)


def test_closed_detector_refuses_to_detect(tmp_path: Path) -> None:
    detector = OnnxDetector(save(yolo_model(), tmp_path / "m.onnx"))
    detector.close()
    with pytest.raises(DetectorError, match="closed"):
        detector.detect([_image(0)])


def yolov4_model(side: int = 64) -> onnx.ModelProto:
    """A YOLOv4-shaped model (pytorch-YOLOv4's export): boxes (N, A, 1, 4), confs (N, A, 3).

    Anchor 0 is a box from 25 % to 50 % of the input with class 1 at 0.9; anchor 1 is
    below any threshold. The outputs ignore the image (its mean times zero is added).
    """
    boxes = np.array([[[[0.25, 0.25, 0.5, 0.5]], [[0.0, 0.0, 0.1, 0.1]]]], np.float32)
    confs = np.array([[[0.05, 0.9, 0.0], [0.01, 0.02, 0.03]]], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["boxes_base", "nothing"], ["boxes"]),
            helper.make_node("Add", ["confs_base", "nothing"], ["confs"]),
        ],
        "yolov4_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, side, side])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 2, 1, 4]),
            helper.make_tensor_value_info("confs", TensorProto.FLOAT, [1, 2, 3]),
        ],
        initializer=[
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(boxes, "boxes_base"),
            numpy_helper.from_array(confs, "confs_base"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def test_a_yolov4_export_with_two_outputs_is_decoded(tmp_path: Path) -> None:
    model = save(yolov4_model(), tmp_path / "yolov4.onnx")
    detector = OnnxDetector(model, labels=["cat", "person", "car"])
    (found,) = detector.detect([np.zeros((128, 128, 3), np.uint8)])
    assert found.labels.tolist() == ["person"]
    np.testing.assert_allclose(found.confidence, [0.9], rtol=1e-6)
    # 25 %-50 % of the 64 px input is 32-64 px of the 128 px image.
    np.testing.assert_allclose(found.xyxy, [[32, 32, 64, 64]], atol=0.5)


def test_layout_v4_on_a_one_output_model_is_refused(tmp_path: Path) -> None:
    model = save(yolo_model(side=64), tmp_path / "v8.onnx")
    with pytest.raises(DetectorError, match="layout v4 needs outputs"):
        OnnxDetector(model, layout="yolov4")
