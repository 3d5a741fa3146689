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
import math
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import RAW_DTYPES, ContentType
from tierflow.streams.discovery import LiveTable, RegistryView
from tierflow.topics import headers as H
from tierflow.topics.envelope import DetectionsJson, FrameCodec, FrameMeta, decode_meta
from tierflow.topics.envelope import encode_headers as encode
from tierflow.topics.records import (
    Assignment,
    FrameRecord,
    Heartbeat,
    NodeAnnouncement,
    PlacementRecord,
    Record,
    RecordError,
    ServiceAnnouncement,
    parse_frame_records,
    parse_record,
)
from tierflow.topics.tables import LatestTable

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


# ---------------------------------------------------------------------------- records

KINDS: list[type[Record]] = [
    Assignment,
    ServiceAnnouncement,
    NodeAnnouncement,
    PlacementRecord,
    Heartbeat,
    FrameRecord,
]


def _plausible(annotation: object) -> st.SearchStrategy[Any]:
    """Mostly right-typed values for a field, so parsing gets past the type checks."""
    text = str(annotation)
    if "dict" in text:
        return st.dictionaries(st.text(max_size=6), st.one_of(numbers, st.floats()), max_size=3)
    if "int" in text:
        return numbers
    if "float" in text:
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), numbers)
    if "bool" in text:
        return st.booleans()
    if "StageName" in text:
        return st.sampled_from(["camera", "resize", "detect", "draw", "control", "paint"])
    if "Literal" in text:
        return st.sampled_from(["edge", "fog", "cloud", "moon"])
    if "Outcome" in text or "DropPolicy" in text:
        return st.sampled_from(["processed", "dropped", "deadline", "lag", "x"])
    if "DetectionsJson" in text:
        return detections_dicts()
    return st.text(max_size=8)


_HEARTBEAT = {"heartbeat_ns": 1_795_000_000_000_000_000, "ttl_s": 4.0}
VALID: dict[type[Record], dict[str, Any]] = {
    Assignment: {"source": "cam-1", "quality": 512, "fps": 5.0, "epoch": 3},
    ServiceAnnouncement: {
        "service_id": "detect-1", "stage": "detect", "quality": 512, "input_size": 640,
        "topic": "frames.512", "capacity_fps": 30.0, "threads": 2, "metrics_port": 9100,
        "group": "g", **_HEARTBEAT,
    },
    NodeAnnouncement: {
        "node": "n1", "tier": "edge", "cores": 8.0, "memory_mb": 16000.0, "used_cores": 1.5,
        "storage_mb": 1e5, **_HEARTBEAT,
    },
    PlacementRecord: {
        "instance": "detect#0", "task": "detect", "node": "n1", "tier": "fog", "share": 0.5,
        "epoch": 2, "policy": "avec",
    },
    Heartbeat: _HEARTBEAT,
    FrameRecord: {
        "source": "cam-1", "sequence": 4, "quality": 512, "capture_ns": 1_795_000_000_000,
        "outcome": "processed", "stage": "draw", "latency_s": 0.2, "tp": 1, "fp": 0, "fn": 0,
        "f1": 1.0, "stamps": {"resize.in": 5}, "frame_bytes": 1000,
        "truth": {"size": [640, 480], "boxes": [[1, 2, 3, 4]], "scores": [1], "labels": ["a"]},
    },
}  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, kind: type[Record]) -> dict[str, Any]:
    """A valid ``kind`` record with a few fields replaced by plausible values or garbage."""
    record = dict(VALID[kind])
    fields = sorted(kind.model_fields)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(fields))
        annotation = kind.model_fields[name].annotation
        if draw(st.integers(0, 5)) == 0:
            record.pop(name, None)
        else:
            record[name] = draw(st.one_of(_plausible(annotation), json_values))
    return record


def record_json(kind: type[Record]) -> st.SearchStrategy[bytes]:
    """A ``kind`` record's JSON: a valid one mutated, any of its fields plausible or garbage,
    any JSON, any bytes, cut short or nested deep."""
    fields = {
        name: st.one_of(_plausible(info.annotation), json_values)
        for name, info in kind.model_fields.items()
    }
    shaped = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(
        mutated(kind).map(_dumps),
        mutated(kind).map(_dumps),
        shaped.map(_dumps),
        json_values.map(_dumps),
        st.binary(max_size=60),
        shaped.map(_dumps).map(lambda raw: raw[: len(raw) // 2]),  # cut short
        st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    )


def _floats(value: object) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _floats(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _floats(inner)


def _check_record(record: Record) -> None:
    """The bounds readers of each record rely on."""
    assert all(math.isfinite(f) for f in _floats(record.model_dump()))
    if isinstance(record, Heartbeat):
        assert 0 <= record.heartbeat_ns < INT64
        assert record.ttl_s > 0
    if isinstance(record, ServiceAnnouncement):
        assert record.quality is None or record.quality > 0
        assert record.input_size is None or record.input_size > 0
        assert record.threads >= 1
        assert record.capacity_fps is None or record.capacity_fps >= 0
        assert record.metrics_port is None or 0 < record.metrics_port < 65536
    if isinstance(record, NodeAnnouncement):
        assert record.cores > 0
        assert min(record.memory_mb, record.accelerator_memory_mb, record.storage_mb) >= 0
        assert min(record.latency_ms, record.bandwidth_mbps, record.used_memory_mb) >= 0
    if isinstance(record, PlacementRecord):
        assert 0 < record.share <= 1
        assert record.epoch >= 0
    if isinstance(record, Assignment):
        assert record.quality > 0
        assert record.epoch >= 0  # no upper bound here: the camera bounds it by its clock
        assert record.fps is None or record.fps > 0
    if isinstance(record, FrameRecord):
        assert record.sequence >= -1
        assert record.quality >= 0 and record.epoch >= 0 and record.capture_ns >= 0
        counts = (record.detections, record.tp, record.fp, record.fn, record.frame_bytes)
        assert all(c is None or c >= 0 for c in counts)
        assert record.f1 is None or 0 <= record.f1 <= 1


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@FUZZ
@given(data=st.data())
def test_parse_record_raises_only_record_error(kind: type[Record], data: st.DataObject) -> None:
    raw = data.draw(st.one_of(record_json(kind), st.none()))
    try:
        record = parse_record(kind, raw)
    except RecordError:
        return
    _check_record(record)
    assert parse_record(kind, record.to_bytes()) == record  # what parses writes back


@FUZZ
@given(
    st.one_of(
        record_json(FrameRecord),
        st.lists(record_json(FrameRecord), max_size=3).map(lambda rs: b"[" + b",".join(rs) + b"]"),
        st.binary(max_size=30).map(lambda b: b" [" + b),
    )
)
def test_parse_frame_records_raises_only_record_error(raw: bytes) -> None:
    try:
        records = parse_frame_records(raw)
    except RecordError:
        return
    for record in records:
        _check_record(record)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (Assignment, {"source": "c", "quality": 0, "epoch": 0}),
        (Assignment, {"source": "c", "quality": 512, "epoch": -1}),
        (Assignment, {"source": "c", "quality": 512, "epoch": 0, "fps": "NaN"}),
        (Assignment, {"source": "c", "quality": 512, "epoch": 0, "fps": 1e400}),
        (Assignment, {"source": "c", "quality": True, "epoch": 0}),
        (Assignment, {"source": "c", "quality": "512", "epoch": 0}),
        (Assignment, {"source": 7, "quality": 512, "epoch": 0}),
        (Heartbeat, {"heartbeat_ns": -1, "ttl_s": 1}),
        (Heartbeat, {"heartbeat_ns": INT64, "ttl_s": 1}),
        (Heartbeat, {"heartbeat_ns": 1, "ttl_s": float("inf")}),
        (Heartbeat, {"heartbeat_ns": 1, "ttl_s": float("nan")}),
        (PlacementRecord, {"instance": "t#0", "task": "t", "node": "n", "tier": "edge",
                           "share": float("nan"), "epoch": 0, "policy": "p"}),
        (NodeAnnouncement, {"node": "n", "tier": "edge", "cores": float("inf"), "memory_mb": 1,
                            "heartbeat_ns": 1, "ttl_s": 1}),
        (NodeAnnouncement, {"node": "n", "tier": "edge", "cores": 4, "memory_mb": 1,
                            "storage_mb": -1, "heartbeat_ns": 1, "ttl_s": 1}),
        (ServiceAnnouncement, {"service_id": "s", "stage": "detect", "topic": "t",
                               "quality": 0, "heartbeat_ns": 1, "ttl_s": 1}),
        (ServiceAnnouncement, {"service_id": "s", "stage": "detect", "topic": "t",
                               "threads": 0, "heartbeat_ns": 1, "ttl_s": 1}),
        (ServiceAnnouncement, {"service_id": "s", "stage": "detect", "topic": "t",
                               "metrics_port": 70000, "heartbeat_ns": 1, "ttl_s": 1}),
        (ServiceAnnouncement, {"service_id": "s", "stage": "detect", "topic": "t",
                               "capacity_fps": float("nan"), "heartbeat_ns": 1, "ttl_s": 1}),
        (FrameRecord, {"source": "c", "sequence": 0, "quality": 512, "capture_ns": 0,
                       "outcome": "processed", "stage": "draw", "latency_s": 0.1, "f1": 2}),
        (FrameRecord, {"source": "c", "sequence": 0, "quality": 512, "capture_ns": 0,
                       "outcome": "processed", "stage": "draw", "latency_s": float("nan")}),
        (FrameRecord, {"source": "c", "sequence": -2, "quality": 512, "capture_ns": 0,
                       "outcome": "processed", "stage": "draw", "latency_s": 0.1}),
        (FrameRecord, {"source": "c", "sequence": 0, "quality": 512, "capture_ns": 0,
                       "outcome": "processed", "stage": "draw", "latency_s": 0.1,
                       "truth": {"size": [1, 1], "boxes": [[float("nan"), 0, 1, 1]]}}),
    ],
)  # fmt: skip
def test_records_that_parse_but_make_no_sense_are_refused(
    kind: type[Record], fields: dict[str, Any]
) -> None:
    with pytest.raises(RecordError):
        parse_record(kind, json.dumps(fields).encode())


def test_a_huge_assignment_epoch_still_parses() -> None:
    """Bounding epochs is the camera's (by its clock): the record itself takes any epoch."""
    raw = json.dumps({"source": "c", "quality": 512, "epoch": 9 * 10**18}).encode()
    assert parse_record(Assignment, raw).epoch == 9 * 10**18


# ---------------------------------------------------------------------------- followers

keys = st.one_of(st.none(), st.binary(max_size=8), st.sampled_from([b"cam-1", b"\xff"]))


@pytest.mark.parametrize("kind", KINDS[:5], ids=lambda k: k.__name__)
@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_tables_ignore_what_they_cannot_parse(kind: type[Record], data: st.DataObject) -> None:
    table: LatestTable[Any]
    if issubclass(kind, Heartbeat):
        table = RegistryView() if kind is ServiceAnnouncement else LiveTable(kind)
    else:
        table = LatestTable(kind, lambda r: int(r.epoch), lambda: 10**12)
    messages = data.draw(st.lists(st.tuples(keys, st.none() | record_json(kind)), max_size=6))
    for key, value in messages:
        table.handle(key, value)
    for record in table.values():
        _check_record(record)
    if isinstance(table, RegistryView):
        now = data.draw(st.integers(0, INT64))
        table.live(now)
        table.live_qualities(now)
        table.detector_for(512, now)
        table.consumers = {"g": {"t"}}
        table.live(now)
    elif isinstance(table, LiveTable):
        table.live(data.draw(st.integers(0, INT64)))
