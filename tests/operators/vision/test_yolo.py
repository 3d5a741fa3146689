from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tests.inference_server import DEMO_ANCHORS, NAMES, SIDE, Anchor, yolo_tables
from tierflow.operators.vision.detections import Detections, box_iou
from tierflow.operators.vision.detectors.base import DetectorError
from tierflow.operators.vision.detectors.yolo import (
    COCO_NAMES,
    Letterbox,
    YoloDecoder,
    YoloLayout,
    batch_slices,
    image_size_from_metadata,
    letterbox,
    names_from_metadata,
    nms,
    pad_batch,
    preprocess,
    resolve_layout,
)

Found = tuple[str, tuple[float, ...], float]

BLACK_IMAGE: list[Found] = [
    ("person", (8, 8, 32, 32), 0.9),
    ("car", (10, 10, 34, 34), 0.7),
    ("car", (8, 40, 28, 60), 0.6),
]
"""What DEMO_ANCHORS decode to on a black image (conf 0.25, IoU 0.45)."""


def _output(
    layout: str, brightness: float = 0.0, anchors: tuple[Anchor, ...] = DEMO_ANCHORS
) -> npt.NDArray[np.float32]:
    base, gain = yolo_tables(anchors, layout)
    return (base + gain * np.float32(brightness)).astype(np.float32)


def _as_tuples(d: Detections) -> list[Found]:
    return [
        (str(label), tuple(float(v) for v in np.round(box, 3)), round(float(c), 3))
        for label, box, c in zip(d.labels, d.xyxy, d.confidence, strict=True)
    ]


def test_coco_names_are_the_80_classes_in_id_order() -> None:
    assert len(COCO_NAMES) == 80 and len(set(COCO_NAMES)) == 80
    assert COCO_NAMES[:3] == ("person", "bicycle", "car") and COCO_NAMES[-1] == "toothbrush"


def test_preprocess_packs_rgb_nchw_in_unit_range() -> None:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[5, 7] = (10, 20, 255)  # BGR
    batch, boxes = preprocess([image, image], SIDE)
    assert batch.shape == (2, 3, SIDE, SIDE) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1, :, 5, 7], [1.0, 20 / 255, 10 / 255], rtol=1e-6)
    assert batch.max() == 1.0 and batch.min() == 0.0
    assert boxes == [Letterbox((SIDE, SIDE))] * 2


def test_preprocess_accepts_grey_and_bgra_images() -> None:
    grey = np.full((SIDE, SIDE), 51, np.uint8)
    bgra = np.full((SIDE, SIDE, 4), 51, np.uint8)
    batch, _ = preprocess([grey, bgra], SIDE)
    np.testing.assert_allclose(batch, 0.2, rtol=1e-6)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((SIDE, SIDE, 3), np.float32),
        np.zeros((SIDE, SIDE, 2), np.uint8),
        np.zeros((0, SIDE, 3), np.uint8),
        "not an image",
    ],
    ids=["float", "two-channels", "empty", "string"],
)
def test_preprocess_rejects_what_is_not_a_uint8_image(image: object) -> None:
    with pytest.raises(DetectorError, match="image 0"):
        preprocess([image], SIDE)  # type: ignore[list-item]


def test_preprocess_of_no_images_is_an_empty_batch() -> None:
    batch, boxes = preprocess([], SIDE)
    assert batch.shape == (0, 3, SIDE, SIDE) and boxes == []


def test_letterbox_keeps_aspect_ratio_centres_and_maps_boxes_back() -> None:
    wide = np.zeros((64, 128, 3), np.uint8)  # width 128, height 64
    square, box = letterbox(wide, SIDE)
    assert square.shape == (SIDE, SIDE, 3)
    assert box == Letterbox((128, 64), (0.5, 0.5), (0, 16))
    assert (square[:16] == 114).all() and (square[48:] == 114).all() and (square[16:48] == 0).all()
    back = box.to_image(np.array([[8, 24, 32, 40], [0, 0, 64, 64]], np.float32))
    np.testing.assert_allclose(back, [[16, 16, 64, 48], [0, 0, 128, 64]])  # clipped to the image


@pytest.mark.parametrize(
    ("shape", "classes", "expected"),
    [
        ((1, 84, 8400), 80, YoloLayout.V8),
        ((2, 8400, 85), 80, YoloLayout.V5),
        ((1, 8400, 84), 80, YoloLayout.V8_TRANSPOSED),
        # v8 with 8 anchors or v5 with 7: the reading with more anchors wins
        ((1, 7, 8), 3, YoloLayout.V8),
    ],
)
def test_layout_is_recognised_from_the_output_shape(
    shape: tuple[int, int, int], classes: int, expected: YoloLayout
) -> None:
    assert resolve_layout(shape, classes) is expected


@pytest.mark.parametrize(
    ("shape", "classes", "layout", "error"),
    [
        ((1, 10, 10), 3, YoloLayout.AUTO, "fits no YOLO layout for 3 classes"),
        ((1, 7, 7), 3, YoloLayout.AUTO, "ambiguous"),
        ((1, 8400, 85), 80, YoloLayout.V8, "not a v8 layout"),
        ((84, 8400), 80, YoloLayout.AUTO, "3 dimensions"),
    ],
)
def test_layout_errors_name_the_shape(
    shape: tuple[int, ...], classes: int, layout: YoloLayout, error: str
) -> None:
    with pytest.raises(DetectorError, match=error):
        resolve_layout(shape, classes, layout)


def test_an_explicit_layout_settles_an_ambiguous_shape() -> None:
    assert resolve_layout((1, 7, 7), 3, YoloLayout.V8_TRANSPOSED) is YoloLayout.V8_TRANSPOSED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yolo11", YoloLayout.V8),
        ("YOLOv5", YoloLayout.V5),
        ("v8-transposed", YoloLayout.V8_TRANSPOSED),
    ],
)
def test_layout_names_and_aliases_parse(text: str, expected: YoloLayout) -> None:
    assert YoloLayout.parse(text) is expected


def test_unknown_layout_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown YOLO layout 'v7'"):
        YoloLayout.parse("v7")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{0: 'person', 1: 'car'}", ("person", "car")),
        ("{1: 'car', 0: 'person'}", ("person", "car")),
        ("['person', 'car']", ("person", "car")),
    ],
)
def test_names_come_from_ultralytics_metadata(raw: str, expected: tuple[str, ...]) -> None:
    assert names_from_metadata({"names": raw}) == expected


def test_metadata_without_names_gives_none() -> None:
    assert names_from_metadata({"stride": "32"}) is None


@pytest.mark.parametrize(
    "raw",
    ["{0: 'person', 2: 'car'}", "__import__('os').system('false')", "{0: 1}", "[]", "{0: 'a'"],
)
def test_malformed_names_metadata_is_refused_without_evaluating_it(raw: str) -> None:
    with pytest.raises(DetectorError, match="metadata 'names'"):
        names_from_metadata({"names": raw})


@pytest.mark.parametrize(
    ("meta", "expected"),
    [({"imgsz": "[640, 640]"}, 640), ({"imgsz": "416"}, 416), ({"imgsz": "[640, 384]"}, None)],
)
def test_image_size_comes_from_imgsz_when_square(
    meta: dict[str, str], expected: int | None
) -> None:
    assert image_size_from_metadata(meta) == expected


def test_nms_is_class_aware_and_capped() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0], np.intp)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] > 0.45
    assert nms(boxes, scores, classes, 0.45, 10).tolist() == [0, 2, 3]
    assert nms(boxes, scores, classes, 0.45, 2).tolist() == [0, 2]
    assert nms(boxes, scores, classes, 0.9, 10).tolist() == [0, 1, 2, 3]  # IoU 0.68 stays


@pytest.mark.parametrize("layout", ["v8", "v5", "v8-transposed"])
def test_every_layout_decodes_to_the_same_known_detections(layout: str) -> None:
    decoder = YoloDecoder(NAMES)
    (dark,) = decoder.decode(_output(layout), [Letterbox((SIDE, SIDE))])
    assert _as_tuples(dark) == BLACK_IMAGE
    assert dark.image_size == (SIDE, SIDE)


def test_objectness_multiplies_v5_class_scores() -> None:
    (low,) = YoloDecoder(NAMES, conf_threshold=0.15).decode(_output("v5"), [Letterbox((64, 64))])
    assert ("person", (40.0, 40.0, 60.0, 60.0), 0.18) in _as_tuples(low)


def test_confidence_threshold_and_max_detections_filter() -> None:
    box = [Letterbox((SIDE, SIDE))]
    (strict,) = YoloDecoder(NAMES, conf_threshold=0.65).decode(_output("v8"), box)
    assert [label for label, _, _ in _as_tuples(strict)] == ["person", "car"]
    (capped,) = YoloDecoder(NAMES, max_detections=1).decode(_output("v8"), box)
    assert _as_tuples(capped) == BLACK_IMAGE[:1]
    (none,) = YoloDecoder(NAMES, conf_threshold=0.95).decode(_output("v8"), box)
    assert len(none) == 0 and none.image_size == (SIDE, SIDE)


def test_boxes_map_back_through_each_images_letterbox() -> None:
    output = np.concatenate([_output("v8"), _output("v8", brightness=1.0)])
    boxes = [Letterbox((128, 128), (0.5, 0.5)), Letterbox((SIDE, SIDE))]
    big, bright = YoloDecoder(NAMES).decode(output, boxes)
    assert big.image_size == (128, 128)
    np.testing.assert_allclose(big.xyxy[0], [16, 16, 64, 64])
    assert ("dog", (40.0, 8.0, 60.0, 28.0), 0.85) in _as_tuples(bright)
    assert "dog" not in big.labels


def test_decode_refuses_an_output_of_another_batch_size() -> None:
    with pytest.raises(DetectorError, match="N=2"):
        YoloDecoder(NAMES).decode(_output("v8"), [Letterbox((64, 64))] * 2)


def test_default_labels_are_coco_and_settings_are_checked() -> None:
    assert YoloDecoder().labels == COCO_NAMES
    with pytest.raises(ValueError, match=r"conf_threshold.*max_detections"):
        YoloDecoder(conf_threshold=1.5, max_detections=0)


def test_batches_are_cut_and_padded_for_fixed_batch_models() -> None:
    assert batch_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert batch_slices(3, None) == [slice(0, 3)]
    assert batch_slices(0, 4) == []
    padded = pad_batch(np.ones((1, 3, 4, 4), np.float32), 4)
    assert padded.shape == (4, 3, 4, 4) and padded[0].all() and not padded[1:].any()
