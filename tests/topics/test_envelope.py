from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import ContentType
from tierflow.operators.vision.detections import Detections
from tierflow.settings import Settings, load_settings
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, decode_meta, encode_headers

META = FrameMeta(
    source="cam-7",
    sequence=41,
    capture_ns=1_795_000_000_123_456_789,
    quality=512,
    epoch=3,
    origin=(1920, 1080),
    stamps={"resize.in": 5, "resize.out": 9},
    busy_ns={"detect": 41_000_000},
    extra={"traceparent": b"00-abc-01"},
)


def _image(side: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (side, side, 3), dtype=np.uint8)


def test_headers_round_trip_every_field() -> None:
    assert decode_meta(encode_headers(META)) == META


@pytest.mark.parametrize("bad", [b"1920", b"1920x", b"0x10", b"-5x10", b"10x10x10", b"a x b"])
def test_a_malformed_origin_is_a_bad_header(bad: bytes) -> None:
    headers = [(k, bad if k == "tf-origin" else v) for k, v in encode_headers(META)]
    with pytest.raises(FrameFormatError, match="tf-origin") as caught:
        decode_meta(headers)
    assert caught.value.problem is FrameProblem.BAD_HEADER


def test_headers_from_a_faust_style_dict_decode_the_same() -> None:
    assert decode_meta(dict(encode_headers(META))) == META


def test_headers_are_ascii_text_for_kcat() -> None:
    headers = dict(encode_headers(META))
    assert headers["tf-capture-ns"] == b"1795000000123456789"
    assert headers["content-type"] == b"image/jpeg"
    assert headers["tf-t.resize.out"] == b"9"


@pytest.mark.parametrize("content", list(ContentType))
def test_codec_round_trips_each_content_type(settings: Settings, content: ContentType) -> None:
    codec = Contract.of(settings).codec
    meta = FrameMeta("cam", 0, 1, 512, content_type=content)
    image = _image()
    value, headers = codec.encode(image, meta)
    frame = codec.decode(value, headers)
    assert frame.meta == meta
    assert frame.image.shape == image.shape
    if content is not ContentType.JPEG:
        np.testing.assert_array_equal(frame.image, image)


def test_codec_follows_the_configured_quality(settings: Settings) -> None:
    low = Contract.of(load_settings(frames={"jpeg_quality": 20})).codec
    high = Contract.of(settings).codec
    meta = FrameMeta("cam", 0, 1, 512)
    assert len(low.encode(_image(), meta)[0]) < len(high.encode(_image(), meta)[0])


@pytest.mark.parametrize(
    ("mutate", "problem", "named"),
    [
        (lambda h: h.pop("tf-source"), FrameProblem.MISSING_HEADER, "tf-source"),
        (lambda h: h.pop("tf-seq"), FrameProblem.MISSING_HEADER, "tf-seq"),
        (lambda h: h.update({"tf-seq": b"forty"}), FrameProblem.BAD_HEADER, "tf-seq"),
        (lambda h: h.update({"tf-seq": b"-1"}), FrameProblem.BAD_HEADER, "tf-seq"),
        (lambda h: h.update({"tf-quality": b"0"}), FrameProblem.BAD_HEADER, "tf-quality"),
        (lambda h: h.update({"tf-source": b"\xff\xfe"}), FrameProblem.BAD_HEADER, "tf-source"),
        (lambda h: h.update({"tf-source": b""}), FrameProblem.BAD_HEADER, "tf-source"),
        (
            lambda h: h.update({"content-type": b"text/plain"}),
            FrameProblem.UNSUPPORTED_CONTENT,
            "text/plain",
        ),
        (
            lambda h: h.update({"tf-t.resize.in": b"soon"}),
            FrameProblem.BAD_HEADER,
            "tf-t.resize.in",
        ),
        (lambda h: h.update({"tf-epoch": "3"}), FrameProblem.WRONG_TYPE, "tf-epoch"),
    ],
)
def test_bad_headers_raise_one_error_naming_the_header(
    mutate: object, problem: FrameProblem, named: str
) -> None:
    headers = dict(encode_headers(META))
    mutate(headers)  # type: ignore[operator]
    with pytest.raises(FrameFormatError) as err:
        decode_meta(headers)
    assert err.value.problem is problem
    assert named in str(err.value)


def test_duplicate_headers_are_rejected() -> None:
    headers = [*encode_headers(META), ("tf-seq", b"1")]
    with pytest.raises(FrameFormatError) as err:
        decode_meta(headers)
    assert err.value.problem is FrameProblem.BAD_HEADER


def test_no_headers_at_all_is_missing_header() -> None:
    with pytest.raises(FrameFormatError) as err:
        decode_meta(None)
    assert err.value.problem is FrameProblem.MISSING_HEADER


def test_non_bytes_value_is_wrong_type(settings: Settings) -> None:
    codec = Contract.of(settings).codec
    with pytest.raises(FrameFormatError) as err:
        codec.decode("a string", encode_headers(META))
    assert err.value.problem is FrameProblem.WRONG_TYPE


def test_truncated_frame_message_names_truncation(settings: Settings) -> None:
    codec = Contract.of(settings).codec
    value, headers = codec.encode(_image(), META)
    with pytest.raises(FrameFormatError) as err:
        codec.decode(value[:-100], headers)
    assert err.value.problem is FrameProblem.TRUNCATED_IMAGE


def test_frames_over_the_limit_are_refused_both_ways() -> None:
    small = Contract.of(
        load_settings(frames={"max_message_bytes": 64 * 1024, "codec": "raw"})
    ).codec
    big = Contract.of(load_settings(frames={"codec": "raw"})).codec
    meta = FrameMeta("cam", 0, 1, 512, content_type=ContentType.RAW)
    image = _image(200)  # 120 000 bytes raw
    with pytest.raises(FrameFormatError) as err:
        small.encode(image, meta)
    assert err.value.problem is FrameProblem.TOO_LARGE
    assert "65536" in str(err.value)
    value, headers = big.encode(image, meta)
    with pytest.raises(FrameFormatError) as err:
        small.decode(value, headers)
    assert err.value.problem is FrameProblem.TOO_LARGE


def test_raw_frame_with_lying_shape_header_is_refused(settings: Settings) -> None:
    codec = Contract.of(settings).codec
    meta = FrameMeta("cam", 0, 1, 512, content_type=ContentType.RAW)
    value, headers = codec.encode(_image(), meta)
    lying = [(k, b"64,64,4" if k == "tf-shape" else v) for k, v in headers]
    with pytest.raises(FrameFormatError) as err:
        codec.decode(value, lying)
    assert err.value.problem is FrameProblem.TRUNCATED_IMAGE


def test_stamped_returns_a_new_meta() -> None:
    later = META.stamped("detect.in", 77)
    assert later.stamps["detect.in"] == 77
    assert "detect.in" not in META.stamps


def test_truth_and_detections_round_trip_as_typed_fields() -> None:
    found = Detections.from_lists(
        [[1, 2, 30, 40], [5, 5, 9, 9]], ["face", "person"], (64, 48), [0.9, 0.5]
    )
    truth = Detections.from_lists([[1, 2, 31, 41]], ["face"], (64, 48))
    meta = META.detected(found, "haar:face", ("face", "person"))
    back = decode_meta(encode_headers(replace(meta, truth=truth)))
    assert back.detector == "haar:face" and back.classes == ("face", "person")
    assert back.detections is not None and back.truth is not None
    assert back.detections.image_size == (64, 48)
    assert back.detections.labels.tolist() == ["face", "person"]
    assert back.detections.xyxy.tolist() == [[1, 2, 30, 40], [5, 5, 9, 9]]
    assert back.truth.xyxy.tolist() == [[1, 2, 31, 41]]
    assert back.extra == META.extra  # the JSON headers are fields, not foreign headers


def test_empty_detections_round_trip() -> None:
    meta = META.detected(Detections.empty((32, 32)), "haar:face", ("face",))
    back = decode_meta(encode_headers(meta)).detections
    assert back is not None and len(back) == 0 and back.image_size == (32, 32)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (b'{"size": [0, 10]}', "size"),
        (b"not json", "tf-detections"),
        (b'{"size": [10, 10], "boxes": [[0, 0, 1, 1]], "scores": [], "labels": ["a"]}',
         "1 boxes, 0 scores"),
    ],
)  # fmt: skip
def test_malformed_detections_json_is_a_bad_header(value: bytes, named: str) -> None:
    headers = {**dict(encode_headers(META)), "tf-detections": value}
    with pytest.raises(FrameFormatError, match=named) as err:
        decode_meta(headers)
    assert err.value.problem is FrameProblem.BAD_HEADER
