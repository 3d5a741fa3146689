"""The frame envelope: image bytes in the Kafka value, metadata in Kafka headers.

:class:`FrameMeta` is everything about a frame but its pixels, typed: identity, capture
time, quality, epoch, encoding, per-stage stamps and CPU times, and the JSON-carried
ground truth and detections. Header names are those of :mod:`tierflow.topics.headers`;
:func:`decode_meta` reads them all once, so a stage decodes a frame's headers once and
hands the :class:`FrameMeta` on. Headers this module does not know are carried through
unchanged in ``FrameMeta.extra``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import (
    RAW_DTYPES,
    ContentType,
    Image,
    check_encoded,
    decode_image,
    encode_image,
)
from tierflow.operators.vision.detections import Detections
from tierflow.settings import FrameSettings
from tierflow.topics.header_values import (
    SIDE_LIMIT,
    dtype_value,
    flag_value,
    int_value,
    origin_value,
    shape_value,
    text_value,
)
from tierflow.topics.headers import (
    H_BUSY_PREFIX,
    H_CAPTURE,
    H_CONTENT_TYPE,
    H_DETECTIONS,
    H_DETECTOR,
    H_DTYPE,
    H_EPOCH,
    H_ORIGIN,
    H_QUALITY,
    H_REFERENCE,
    H_SEQ,
    H_SHAPE,
    H_SOURCE,
    H_STAMP_PREFIX,
    H_TRUTH,
)
from tierflow.topics.limits import MessageLimits

_KNOWN = {
    H_SOURCE, H_SEQ, H_CAPTURE, H_QUALITY, H_EPOCH, H_CONTENT_TYPE, H_SHAPE, H_DTYPE, H_TRUTH,
    H_DETECTIONS, H_DETECTOR, H_ORIGIN, H_REFERENCE,
}  # fmt: skip

RAW_ITEMSIZE = {dtype: np.dtype(dtype).itemsize for dtype in RAW_DTYPES}
"""Bytes per element of each raw dtype."""

READING = {"reading": True}
"""Validation context of JSON read from a topic or header: it gets the checks a writer's
own values are spared (finite boxes and scores), so a NaN from a detector fails where it
is read, as bad input, not inside the stage that wrote it."""

Headers = list[tuple[str, bytes]]
HeadersIn = Mapping[str, object] | Sequence[tuple[str, object]] | None
"""Headers as clients hand them over: confluent-kafka and aiokafka give a list of pairs,
faust's ``event.headers`` a dict; confluent gives None for a record without headers. The
values are checked at run time (bytes, or None for a null header)."""


class DetectionsJson(BaseModel):
    """``tf-truth`` / ``tf-detections`` as JSON: boxes ``[x1, y1, x2, y2]`` in pixels of ``size``.

    ``size`` is (width, height) of the image the boxes refer to; ``classes`` lists every
    label the detector can report (accuracy is measured over these).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    size: tuple[
        Annotated[int, Field(gt=0, lt=SIDE_LIMIT)], Annotated[int, Field(gt=0, lt=SIDE_LIMIT)]
    ]
    boxes: list[tuple[float, float, float, float]] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _finite_when_read(self, info: ValidationInfo) -> DetectionsJson:
        if info.context is not None and info.context.get("reading"):
            numbers = [*(x for box in self.boxes for x in box), *self.scores]
            if not all(math.isfinite(x) for x in numbers):
                msg = "boxes and scores must be finite numbers"
                raise ValueError(msg)
        return self

    @classmethod
    def of(cls, detections: Detections, classes: tuple[str, ...] | None = None) -> DetectionsJson:
        """The JSON form of ``detections`` (coordinates rounded to 0.1 pixel)."""
        boxes = [
            (round(float(a), 1), round(float(b), 1), round(float(c), 1), round(float(d), 1))
            for a, b, c, d in detections.xyxy
        ]
        return cls(
            size=detections.image_size,
            boxes=boxes,
            scores=[round(float(s), 4) for s in detections.confidence],
            labels=[str(label) for label in detections.labels],
            classes=list(classes) if classes is not None else None,
        )

    @classmethod
    def parse(cls, name: str, raw: bytes) -> DetectionsJson:
        """Validate header ``name``'s value; BAD_HEADER naming the header and the field.

        Strict: a ``true`` or ``"10"`` is no number here. Coordinates and scores must be
        finite (JSON's NaN and Infinity, or 1e400, are refused).
        """
        try:
            parsed = cls.model_validate_json(raw, strict=True, context=READING)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
            )
            msg = f"header {name!r} is not detections JSON: {fields}"
            raise FrameFormatError(FrameProblem.BAD_HEADER, msg) from None
        n = len(parsed.boxes)
        if len(parsed.scores) != n or len(parsed.labels) != n:
            msg = (
                f"header {name!r} has {n} boxes, {len(parsed.scores)} scores and "
                f"{len(parsed.labels)} labels"
            )
            raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
        return parsed

    def detections(self) -> Detections:
        """Back to :class:`Detections` (the columns were checked to agree by :meth:`parse`)."""
        return Detections.from_lists(self.boxes, self.labels, self.size, self.scores)

    def to_bytes(self) -> bytes:
        """Compact JSON, the header value."""
        return self.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True)
class FrameMeta:
    """Everything about a frame except its pixels.

    Attributes:
        source: camera id; also the Kafka key, so frames of a source stay ordered.
        sequence: frame number at the source, from 0.
        capture_ns: capture time, nanoseconds since the Unix epoch.
        quality: capture quality (pixels of the square side, e.g. 512).
        epoch: the assignment epoch the camera followed when it captured the frame.
        content_type: encoding of the value.
        stamps: per-stage event -> time in ns since the Unix epoch.
        busy_ns: per stage, CPU ns spent on this frame (queueing and waiting for the CPU
            excluded); a batch's CPU time is shared by its frames.
        shape: (height, width[, channels]) in pixels of a raw array frame; None otherwise.
        dtype: numpy dtype name of a raw array frame; None otherwise.
        origin: (width, height) of the source's own frames, whose letterbox this frame is
            (None: the frame is the source's image, square); boxes go back to the source's
            pixels with ``Letterbox.of(origin, side)``.
        reference: a reference copy of the frame (``truth = "golden"`` sources): sent at the
            strongest quality so that its detections score the frame itself; not a frame
            of its own (no outcome is expected for it).
        truth: the true objects, boxes in pixels of the frame, when the source knows them.
        detections: what the detector found, boxes in pixels of its input (after detect).
        classes: every label the detector can report (F1 is measured over these).
        detector: the detector's name, e.g. ``haar:face`` (after detect).
        extra: headers of other tools, carried through unchanged.
    """

    source: str
    sequence: int
    capture_ns: int
    quality: int
    epoch: int = 0
    content_type: ContentType = ContentType.JPEG
    stamps: Mapping[str, int] = field(default_factory=dict)
    busy_ns: Mapping[str, int] = field(default_factory=dict)
    # Compared by the frame they describe: the raw layout follows the pixels, and
    # Detections are arrays (no value equality).
    shape: tuple[int, ...] | None = field(default=None, compare=False)
    dtype: str | None = field(default=None, compare=False)
    origin: tuple[int, int] | None = None
    reference: bool = False
    truth: Detections | None = field(default=None, compare=False)
    detections: Detections | None = field(default=None, compare=False)
    classes: tuple[str, ...] | None = None
    detector: str | None = None
    extra: Mapping[str, bytes] = field(default_factory=dict)

    def stamped(self, event: str, time_ns: int) -> FrameMeta:
        """A copy with ``event`` (e.g. ``resize.out``) stamped at ``time_ns``."""
        return replace(self, stamps={**self.stamps, event: time_ns})

    def worked(self, stage: str, busy_ns: int) -> FrameMeta:
        """A copy recording that ``stage`` worked ``busy_ns`` on this frame."""
        return replace(self, busy_ns={**self.busy_ns, stage: max(0, busy_ns)})

    def detected(
        self, detections: Detections, detector: str, classes: tuple[str, ...]
    ) -> FrameMeta:
        """A copy carrying what ``detector`` (able to report ``classes``) found."""
        return replace(self, detections=detections, detector=detector, classes=classes)


@dataclass(frozen=True)
class Frame:
    """A decoded frame: pixels and metadata."""

    image: Image
    meta: FrameMeta


def encode_headers(meta: FrameMeta) -> Headers:
    """Kafka headers for ``meta`` (shape and dtype are written for raw frames only)."""
    headers: Headers = [
        (H_SOURCE, meta.source.encode()),
        (H_SEQ, str(meta.sequence).encode()),
        (H_CAPTURE, str(meta.capture_ns).encode()),
        (H_QUALITY, str(meta.quality).encode()),
        (H_EPOCH, str(meta.epoch).encode()),
        (H_CONTENT_TYPE, meta.content_type.value.encode()),
    ]
    if meta.content_type is ContentType.RAW:
        headers.append((H_SHAPE, ",".join(str(n) for n in meta.shape or ()).encode()))
        headers.append((H_DTYPE, (meta.dtype or "").encode()))
    headers.extend((H_STAMP_PREFIX + k, str(v).encode()) for k, v in meta.stamps.items())
    headers.extend((H_BUSY_PREFIX + k, str(v).encode()) for k, v in meta.busy_ns.items())
    if meta.reference:
        headers.append((H_REFERENCE, b"1"))
    if meta.origin is not None:
        headers.append((H_ORIGIN, f"{meta.origin[0]}x{meta.origin[1]}".encode()))
    if meta.truth is not None:
        headers.append((H_TRUTH, DetectionsJson.of(meta.truth).to_bytes()))
    if meta.detections is not None:
        found = DetectionsJson.of(meta.detections, meta.classes)
        headers.append((H_DETECTIONS, found.to_bytes()))
    if meta.detector is not None:
        headers.append((H_DETECTOR, meta.detector.encode()))
    headers.extend(meta.extra.items())
    return headers


def producer_headers(headers: Headers) -> list[tuple[str, str | bytes | None]]:
    """``headers`` typed as confluent-kafka's ``Producer.produce`` declares them."""
    return [(key, value) for key, value in headers]


def header_map(headers: HeadersIn) -> dict[str, bytes]:
    """Headers as a name -> bytes dict (a null header is empty bytes).

    A name given twice is BAD_HEADER whatever the values: neither the first nor the last
    is believed. (A dict, as faust's ``event.headers``, has already lost the repeats: read
    ``event.message.headers``, the record's own list.)

    Raises:
        FrameFormatError: WRONG_TYPE for headers that are not (name, bytes) pairs,
            BAD_HEADER for a repeated name.
    """
    if headers is None:
        return {}
    pairs: object = headers.items() if isinstance(headers, Mapping) else headers
    if not isinstance(pairs, Iterable) or isinstance(pairs, str | bytes | bytearray):
        msg = f"headers must be (name, bytes) pairs, got {type(headers).__name__}"
        raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
    out: dict[str, bytes] = {}
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            msg = f"a header must be a (name, bytes) pair, got {pair!r}"
            raise FrameFormatError(FrameProblem.WRONG_TYPE, msg) from None
        if not isinstance(key, str) or not isinstance(value, bytes | bytearray | None):
            msg = f"header {key!r} must map a str to bytes, got {type(value).__name__}"
            raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
        if key in out:
            msg = f"header {key!r} appears more than once"
            raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
        out[key] = bytes(value) if value is not None else b""
    return out


def header_bytes(headers: HeadersIn) -> int:
    """Bytes of names and values of ``headers``, as a message size counts them."""
    return sum(len(k) + len(v) for k, v in header_map(headers).items())


def _detections(headers: Mapping[str, bytes], name: str) -> DetectionsJson | None:
    return DetectionsJson.parse(name, headers[name]) if name in headers else None


def decode_meta(headers: HeadersIn) -> FrameMeta:
    """Read a frame's metadata from its headers without touching the pixels.

    Raises:
        FrameFormatError: MISSING_HEADER, BAD_HEADER, WRONG_TYPE or UNSUPPORTED_CONTENT.
    """
    h = header_map(headers)
    source = text_value(h, H_SOURCE)
    if not source:
        msg = f"header {H_SOURCE!r} is empty"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    stamps: dict[str, int] = {}
    busy: dict[str, int] = {}
    extra: dict[str, bytes] = {}
    for key in h:
        if key.startswith(H_STAMP_PREFIX):
            stamps[key[len(H_STAMP_PREFIX) :]] = int_value(h, key)
        elif key.startswith(H_BUSY_PREFIX):
            busy[key[len(H_BUSY_PREFIX) :]] = int_value(h, key)
        elif key not in _KNOWN:
            extra[key] = h[key]
    # Checked in the order a reader expects the error: identity first, then encoding.
    sequence, capture_ns = int_value(h, H_SEQ), int_value(h, H_CAPTURE)
    quality, epoch = int_value(h, H_QUALITY, minimum=1), int_value(h, H_EPOCH)
    content_type = ContentType.parse(text_value(h, H_CONTENT_TYPE))
    raw = content_type is ContentType.RAW
    truth, found = _detections(h, H_TRUTH), _detections(h, H_DETECTIONS)
    return FrameMeta(
        source=source,
        sequence=sequence,
        capture_ns=capture_ns,
        quality=quality,
        epoch=epoch,
        content_type=content_type,
        stamps=stamps,
        busy_ns=busy,
        shape=shape_value(h) if raw else None,
        dtype=dtype_value(h) if raw else None,
        origin=origin_value(h),
        reference=flag_value(h, H_REFERENCE),
        truth=truth.detections() if truth is not None else None,
        detections=found.detections() if found is not None else None,
        classes=tuple(found.classes) if found is not None and found.classes is not None else None,
        detector=text_value(h, H_DETECTOR) if H_DETECTOR in h else None,
        extra=extra,
    )


@dataclass(frozen=True)
class FrameCodec:
    """Encodes and decodes frame messages under one size limit.

    Attributes:
        content_type: encoding used by :meth:`encode` when the meta does not say otherwise.
        jpeg_quality: 1-100.
        max_bytes: largest message (value plus headers) accepted either way, in bytes.
    """

    content_type: ContentType = ContentType.JPEG
    jpeg_quality: int = 90
    max_bytes: int = 8 * 1024 * 1024

    @classmethod
    def of(cls, f: FrameSettings, limits: MessageLimits) -> FrameCodec:
        """The codec of the frame settings ``f`` under ``limits``."""
        content = {"jpeg": ContentType.JPEG, "png": ContentType.PNG, "raw": ContentType.RAW}
        return cls(content[f.codec], f.jpeg_quality, limits.frame_bytes)

    def encode(self, image: Image, meta: FrameMeta) -> tuple[bytes, Headers]:
        """Encode ``image`` with ``meta`` into a Kafka value and headers.

        The encoding is ``meta.content_type``; build the meta with ``self.content_type``
        to follow the settings. A raw frame's shape and dtype are taken from ``image``.

        Raises:
            FrameFormatError: WRONG_TYPE for an array the encoding cannot hold, TOO_LARGE
                when value plus headers exceed ``max_bytes``.
        """
        value = encode_image(image, meta.content_type, self.jpeg_quality)
        if meta.content_type is ContentType.RAW:
            meta = replace(meta, shape=tuple(image.shape), dtype=image.dtype.name)
        headers = encode_headers(meta)
        self.check_size(len(value) + header_bytes(headers))
        return value, headers

    def check_size(self, size: int) -> None:
        """Raise TOO_LARGE when a message of ``size`` bytes would exceed ``max_bytes``."""
        if size > self.max_bytes:
            msg = (
                f"frame message of {size} bytes exceeds the limit of {self.max_bytes} bytes "
                "(frames.max_message_bytes)"
            )
            raise FrameFormatError(FrameProblem.TOO_LARGE, msg)

    def decode_pixels(self, value: object, meta: FrameMeta) -> Image:
        """Decode a Kafka value whose headers were already read into ``meta``.

        Raises:
            FrameFormatError: WRONG_TYPE, TOO_LARGE, TRUNCATED_IMAGE, UNDECODABLE_IMAGE...
        """
        data = self._checked(value, meta)
        return decode_image(data, meta.content_type, meta.shape, meta.dtype)

    def check_pixels(self, value: object, meta: FrameMeta) -> None:
        """:meth:`decode_pixels`'s checks without the decode (a frame forwarded as it is).

        Raises:
            FrameFormatError: WRONG_TYPE, TOO_LARGE, TRUNCATED_IMAGE, UNDECODABLE_IMAGE...
        """
        data = self._checked(value, meta)
        check_encoded(data, meta.content_type, meta.shape, meta.dtype)

    def _checked(self, value: object, meta: FrameMeta) -> bytes:
        if not isinstance(value, bytes | bytearray):
            msg = f"frame value must be bytes, got {type(value).__name__}"
            raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
        self.check_size(len(value))
        itemsize = RAW_ITEMSIZE.get(meta.dtype or "")
        if meta.content_type is ContentType.RAW and meta.shape and itemsize is not None:
            # Counted here in Python ints: numpy's int64 product wraps for huge shapes, and a
            # wrapped count that matches the value makes reshape raise a bare ValueError.
            expected = math.prod(meta.shape) * itemsize
            if len(value) != expected:
                problem = (
                    FrameProblem.TRUNCATED_IMAGE
                    if len(value) < expected
                    else FrameProblem.BAD_HEADER
                )
                msg = (
                    f"raw {meta.dtype} frame of shape {meta.shape} needs {expected} bytes, "
                    f"got {len(value)}"
                )
                raise FrameFormatError(problem, msg)
        return bytes(value)

    def decode(self, value: object, headers: HeadersIn) -> Frame:
        """Decode a Kafka value and headers into a :class:`Frame` (tools and tests).

        Raises:
            FrameFormatError: naming the problem (missing header, truncated image, ...).
        """
        meta = decode_meta(headers)
        if isinstance(value, bytes | bytearray):
            self.check_size(len(value) + header_bytes(headers))
        return Frame(image=self.decode_pixels(value, meta), meta=meta)
