"""draw_frame: a frame with no detections is forwarded as it came; one with boxes is drawn."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.frames import noise
from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import ContentType, decode_image
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.draw import BoxAnnotator
from tierflow.settings import Settings, load_settings
from tierflow.streams.service import Service
from tierflow.streams.stages.draw import STAGE, draw_frame, frame_path
from tierflow.topics.envelope import FrameMeta, decode_meta


def _service(tmp_path: Path, store: bool) -> Service:
    settings: Settings = load_settings(
        workers={"data_dir": tmp_path / "workers"},
        dataplane={"output_dir": tmp_path / "out", "store_frames": store},
    )
    return Service(settings, STAGE)


def _frame(service: Service, content: ContentType, found: Detections) -> tuple[bytes, FrameMeta]:
    now = time.time_ns()
    meta = FrameMeta("cam-0", 7, now, 128, content_type=content, stamps={"draw.in": now})
    value, headers = service.contract.codec.encode(noise(128, 128, 3), meta)
    return value, replace(decode_meta(headers), stamps={"draw.in": now}, detections=found)


def _one_box() -> Detections:
    return Detections(
        np.asarray([[10.0, 10.0, 60.0, 60.0]]), np.asarray([0.9]), np.asarray(["face"]), (128, 128)
    )


@pytest.mark.parametrize("store", [True, False])
def test_a_frame_without_detections_is_forwarded_byte_for_byte(tmp_path: Path, store: bool) -> None:
    service = _service(tmp_path, store)
    value, meta = _frame(service, ContentType.JPEG, Detections.empty((128, 128)))
    drawn = draw_frame(service, BoxAnnotator(), value, meta)
    assert drawn.value == value
    assert f"{STAGE}.out" in decode_meta(drawn.headers).stamps
    stored = frame_path(tmp_path / "out", meta)
    assert stored.exists() is store
    if store:
        assert stored.read_bytes() == value


def test_a_frame_with_a_box_is_decoded_drawn_and_stored(tmp_path: Path) -> None:
    service = _service(tmp_path, store=True)
    value, meta = _frame(service, ContentType.JPEG, _one_box())
    drawn = draw_frame(service, BoxAnnotator(), value, meta)
    assert drawn.value != value
    before = decode_image(value, ContentType.JPEG).astype(int)
    after = decode_image(drawn.value, ContentType.JPEG).astype(int)
    # the box's edge changed; far from it only the JPEG round trip differs
    assert np.abs(after[10, 10:60] - before[10, 10:60]).mean() > 40
    assert frame_path(tmp_path / "out", meta).read_bytes() == drawn.value


def test_an_empty_png_frame_is_still_stored_as_jpeg(tmp_path: Path) -> None:
    service = _service(tmp_path, store=True)
    value, meta = _frame(service, ContentType.PNG, Detections.empty((128, 128)))
    drawn = draw_frame(service, BoxAnnotator(), value, meta)
    stored = frame_path(tmp_path / "out", meta).read_bytes()
    assert stored[:2] == b"\xff\xd8"  # JPEG, not the PNG bytes
    assert decode_image(drawn.value, ContentType.PNG).shape == (128, 128, 3)


@pytest.mark.parametrize(
    ("value", "problem"),
    [(b"not a jpeg", FrameProblem.UNDECODABLE_IMAGE), (b"\xff\xd8\xff\xe0 cut", None)],
)
def test_bytes_that_are_not_a_whole_image_are_refused_even_without_boxes(
    tmp_path: Path, value: bytes, problem: FrameProblem | None
) -> None:
    service = _service(tmp_path, store=True)
    _, meta = _frame(service, ContentType.JPEG, Detections.empty((128, 128)))
    with pytest.raises(FrameFormatError) as caught:
        draw_frame(service, BoxAnnotator(), value, meta)
    assert caught.value.problem is (problem or FrameProblem.TRUNCATED_IMAGE)
    assert not frame_path(tmp_path / "out", meta).exists()


@pytest.mark.parametrize("content", [ContentType.PNG, ContentType.RAW])
def test_an_empty_frame_not_stored_is_forwarded_in_its_own_encoding(
    tmp_path: Path, content: ContentType
) -> None:
    service = _service(tmp_path, store=False)
    value, meta = _frame(service, content, Detections.empty((128, 128)))
    drawn = draw_frame(service, BoxAnnotator(), value, meta)
    assert drawn.value == value
    out = decode_meta(drawn.headers)
    assert out.content_type is content
    image = service.contract.codec.decode_pixels(drawn.value, out)
    assert image.shape == (128, 128, 3)
