"""Fuzzing the parsers of everything a stranger can write to a topic (issue 11, part 10).

Frame headers and values (:func:`decode_meta`, :meth:`FrameCodec.decode`) and every record
of a control or metrics topic (:func:`parse_record`, :func:`parse_frame_records`, the
tables that follow them) are fed arbitrary bytes, arbitrary header lists and JSON-shaped
garbage. The only exception allowed out is the typed one (``FrameFormatError``,
``RecordError``), and what does parse must make sense: the bounds each test checks on a
parsed value are the ones the readers rely on.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import RAW_DTYPES, ContentType
from tierflow.topics import headers as H
from tierflow.topics.envelope import DetectionsJson, FrameCodec, FrameMeta, decode_meta
from tierflow.topics.envelope import encode_headers as encode

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
INT64 = 2**63

# ---------------------------------------------------------------------------- strategies

HEADER_NAMES = sorted(
    value for name, value in vars(H).items() if name.startswith("H_") and isinstance(value, str)
)
names = st.one_of(
    st.sampled_from(HEADER_NAMES),
    st.sampled_from([H.H_STAMP_PREFIX, H.H_BUSY_PREFIX]).flatmap(
        lambda prefix: st.text(max_size=12).map(lambda rest: prefix + rest)
    ),
    st.text(max_size=20),
)

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 1, INT64 - 1, INT64, 2**64, -(2**63), 10**18 * 9]),
    st.just(4299).map(lambda digits: 10**digits),  # the most digits int() reads
)
number_text = st.one_of(
    numbers.map(str),
    numbers.map(lambda n: f" {n} "),
    numbers.map(lambda n: f"{n:_}"),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "-", "+1", "0x10", "1e3", "١٢", "00", "-0", "9" * 5000]),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def _dumps(value: object) -> bytes:
    """JSON with NaN/Infinity literals (what a careless writer sends), or garbage if it won't."""
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:  # an integer beyond Python's str conversion limit
        return b'{"x": ' + b"9" * 5000 + b"}"


def detections_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Detections as JSON objects, mostly well-formed, with garbage in any field."""
    box = st.lists(st.one_of(st.floats(), numbers, json_values), min_size=0, max_size=5)
    return st.fixed_dictionaries(
        {},
        optional={
            "size": st.one_of(
                st.tuples(numbers, numbers).map(list), json_values, st.just([640, 480])
            ),
            "boxes": st.one_of(st.lists(box, max_size=3), json_values),
            "scores": st.one_of(st.lists(st.floats(), max_size=3), json_values),
            "labels": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
            "classes": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
        },
    )


def detections_json() -> st.SearchStrategy[bytes]:
    """Detections JSON: mostly-right objects, any JSON, or any bytes."""
    return st.one_of(
        detections_dicts().map(_dumps), json_values.map(_dumps), st.binary(max_size=40)
    )


values = st.one_of(
    st.binary(max_size=40),
    number_text.map(lambda text: text.encode()),
    st.sampled_from([c.value.encode() for c in ContentType]),
    st.sampled_from([d.encode() for d in (*RAW_DTYPES, "object", "int64", "<U3", "garbage")]),
    st.lists(numbers, min_size=0, max_size=4).map(lambda ns: ",".join(map(str, ns)).encode()),
    st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"cam\x00", b".."]),
    detections_json(),
    st.none(),
)

shapes = st.one_of(
    st.lists(st.integers(-2, 9), min_size=1, max_size=4),
    st.sampled_from([[2**32, 2**32], [2**62, 4], [2**31, 2**31, 4], [2**64, 1], [3, 3, 2]]),
).map(lambda sides: ",".join(map(str, sides)).encode())
pairs = st.tuples(names, values)
base_meta = st.builds(
    FrameMeta,
    source=st.sampled_from(["cam-1", "c"]),
    sequence=st.integers(0, 10),
    capture_ns=st.integers(0, 2**62),
    quality=st.sampled_from([128, 512]),
    epoch=st.integers(0, 5),
    content_type=st.sampled_from(list(ContentType)),
)


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, bytes | None]]:
    """A valid frame's headers with some replaced, dropped or added, or arbitrary pairs."""
    if draw(st.booleans()):
        return draw(st.lists(pairs, max_size=12))
    headers: list[tuple[str, bytes | None]] = list(encode(draw(base_meta)))
    if draw(st.booleans()):  # a raw frame's layout headers, mostly plausible
        headers = [(k, v) for k, v in headers if k not in (H.H_SHAPE, H.H_DTYPE)]
        headers.append((H.H_SHAPE, draw(shapes | values)))
        headers.append((H.H_DTYPE, draw(st.sampled_from([b"uint8", b"float32"]) | values)))
    for _ in range(draw(st.integers(0, 4))):
        name, value = draw(pairs)
        where = draw(st.sampled_from(["replace", "drop", "add"]))
        kept = [(k, v) for k, v in headers if k != name]
        if where == "replace":
            headers = [*kept, (name, value)]
        elif where == "drop":
            headers = kept
        else:
            headers.append((name, value))
    return headers


not_pairs = st.one_of(
    st.lists(
        st.one_of(
            st.tuples(st.integers(), st.binary(max_size=4)),
            st.tuples(st.text(max_size=4), st.text(max_size=4)),
            st.tuples(st.text(max_size=4), st.integers()),
            st.tuples(st.text(max_size=4)),
            st.tuples(st.text(max_size=4), st.binary(max_size=4), st.binary(max_size=4)),
            st.none(),
            st.integers(),
            st.text(max_size=3),
        ),
        max_size=4,
    ),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.dictionaries(st.integers(), st.binary(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)

frame_values = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"\xff\xd8" + b"\x00" * 16 + b"\xff\xd9", b"\x89PNG\r\n\x1a\n" + b"IEND\xaeB`\x82"]
    ),
    st.integers(0, 300).map(lambda n: bytes(n)),
    st.none(),
    st.text(max_size=8),
    st.integers(),
)

# ---------------------------------------------------------------------------- frame envelope


def _check_meta(meta: FrameMeta) -> None:
    """What a decoded frame promises the stages."""
    assert meta.source
    assert 0 <= meta.sequence < INT64
    assert 0 <= meta.capture_ns < INT64
    assert 1 <= meta.quality < INT64
    assert 0 <= meta.epoch < INT64
    assert all(0 <= v < INT64 for v in (*meta.stamps.values(), *meta.busy_ns.values()))
    if meta.content_type is ContentType.RAW:
        assert meta.shape is not None and len(meta.shape) in (2, 3)
        assert all(n > 0 for n in meta.shape)
        assert meta.dtype in RAW_DTYPES
    for found in (meta.truth, meta.detections):
        if found is not None:
            assert found.image_size[0] > 0 and found.image_size[1] > 0
            assert bool(np.isfinite(found.xyxy).all() and np.isfinite(found.confidence).all())


@FUZZ
@given(header_lists())
def test_decode_meta_raises_only_frame_format_error(headers: list[tuple[str, bytes]]) -> None:
    try:
        meta = decode_meta(headers)
    except FrameFormatError:
        return
    _check_meta(meta)


@FUZZ
@given(header_lists())
def test_a_dict_of_headers_decodes_like_its_pairs(headers: list[tuple[str, bytes]]) -> None:
    as_dict = dict(headers)
    try:
        from_pairs: FrameMeta | None = decode_meta(list(as_dict.items()))
    except FrameFormatError:
        from_pairs = None
    try:
        from_dict: FrameMeta | None = decode_meta(as_dict)
    except FrameFormatError:
        from_dict = None
    assert from_dict == from_pairs


@FUZZ
@given(not_pairs)
def test_headers_that_are_not_name_bytes_pairs_are_wrong_type(headers: Any) -> None:
    with pytest.raises(FrameFormatError) as caught:
        decode_meta(headers)
    assert caught.value.problem in (FrameProblem.WRONG_TYPE, FrameProblem.MISSING_HEADER)


@FUZZ
@given(frame_values, header_lists())
def test_frame_codec_decode_raises_only_frame_format_error(
    value: Any, headers: list[tuple[str, bytes]]
) -> None:
    codec = FrameCodec(max_bytes=4096)
    try:
        frame = codec.decode(value, headers)
    except FrameFormatError:
        return
    _check_meta(frame.meta)
    assert frame.image.size > 0


@FUZZ
@given(names.filter(lambda n: n not in (H.H_TRUTH, H.H_DETECTIONS)), values)
def test_a_header_given_twice_is_bad_header(name: str, value: bytes | None) -> None:
    headers = encode(FrameMeta("cam", 1, 2, 512))
    with pytest.raises(FrameFormatError) as caught:
        decode_meta([*headers, (name, value), (name, value)])
    assert caught.value.problem in (FrameProblem.BAD_HEADER, FrameProblem.WRONG_TYPE)


def test_tf_source_given_twice_is_bad_header_whatever_the_values() -> None:
    """One rule for a repeated header: BAD_HEADER, never the first or the last."""
    headers = encode(FrameMeta("cam", 1, 2, 512))
    for twice in ([("tf-source", b"other")], [("tf-source", b"cam")]):
        with pytest.raises(FrameFormatError, match=r"tf-source.*more than once") as caught:
            decode_meta([*headers, *twice])
        assert caught.value.problem is FrameProblem.BAD_HEADER


@FUZZ
@given(detections_json())
def test_detections_json_raises_only_frame_format_error(raw: bytes) -> None:
    try:
        parsed = DetectionsJson.parse(H.H_DETECTIONS, raw)
    except FrameFormatError as exc:
        problem = exc.problem
    else:
        found = parsed.detections()
        assert len(found) == len(parsed.boxes)
        return
    assert problem is FrameProblem.BAD_HEADER


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (H.H_SEQ, b"-1"),
        (H.H_SEQ, str(INT64).encode()),
        (H.H_CAPTURE, b"9" * 40),
        (H.H_CAPTURE, b"1_000"),
        (H.H_CAPTURE, b" 12"),
        (H.H_CAPTURE, "١٢".encode()),
        (H.H_QUALITY, b"0"),
        (H.H_QUALITY, b"+512"),
        (H.H_EPOCH, b"-5"),
        (H.H_STAMP_PREFIX + "resize.in", b"-1"),
        (
            H.H_TRUTH,
            b'{"size": [10, 10], "boxes": [[0, 0, NaN, 1]], "scores": [1], "labels": ["a"]}',
        ),
        (
            H.H_TRUTH,
            b'{"size": [10, 10], "boxes": [[0, 0, 1e400, 1]], "scores": [1], "labels": ["a"]}',
        ),
        (
            H.H_DETECTIONS,
            b'{"size": [10, 10], "boxes": [[0, 0, 1, 1]], "scores": [NaN], "labels": ["a"]}',
        ),
        (H.H_DETECTIONS, b'{"size": [true, 10]}'),
        (H.H_DETECTIONS, b'{"size": ["10", 10]}'),
    ],
)
def test_values_that_parse_as_numbers_but_make_no_sense_are_bad_header(
    name: str, value: bytes
) -> None:
    headers = [(k, v) for k, v in encode(FrameMeta("cam", 1, 2, 512)) if k != name]
    with pytest.raises(FrameFormatError) as caught:
        decode_meta([*headers, (name, value)])
    assert caught.value.problem is FrameProblem.BAD_HEADER


@pytest.mark.parametrize(
    "shape", [b"-1,4", b"0,4", b"4", b"1,1,1,1", b"4,4,2", b"4294967296,4294967296", b"1,,1"]
)
def test_a_raw_shape_no_image_has_is_bad_header(shape: bytes) -> None:
    meta = FrameMeta("cam", 1, 2, 512, content_type=ContentType.RAW)
    layout = (H.H_SHAPE, H.H_DTYPE)
    headers = [(k, v) for k, v in encode(meta) if k not in layout]
    headers += [(H.H_SHAPE, shape), (H.H_DTYPE, b"uint8")]
    with pytest.raises(FrameFormatError) as caught:
        FrameCodec().decode(b"", headers)  # a wrapped int64 count of 0 used to match b""
    assert caught.value.problem is FrameProblem.BAD_HEADER


def test_a_raw_frame_whose_bytes_do_not_fill_its_shape_is_refused() -> None:
    meta = FrameMeta("cam", 1, 2, 512, content_type=ContentType.RAW)
    value, headers = FrameCodec().encode(np.zeros((4, 4), np.uint8), meta)
    assert FrameCodec().decode(value, headers).image.shape == (4, 4)
    with pytest.raises(FrameFormatError) as caught:
        FrameCodec().decode(value[:-1], headers)
    assert caught.value.problem is FrameProblem.TRUNCATED_IMAGE
    with pytest.raises(FrameFormatError) as caught:
        FrameCodec().decode(value + b"\0", headers)
    assert caught.value.problem is FrameProblem.BAD_HEADER
