"""The frame envelope: image bytes in the Kafka value, metadata in Kafka headers.

Headers are ASCII text so ``kcat -J`` shows them as they are:

==================  ==========================================================
``tf-source``       source (camera) id, UTF-8
``tf-seq``          sequence number of the frame at its source
``tf-capture-ns``   capture time, nanoseconds since the Unix epoch
``tf-quality``      quality the frame was captured at (pixels of the side)
``tf-epoch``        assignment epoch the camera followed
``content-type``    ``image/jpeg``, ``image/png`` or ``application/x-tierflow-ndarray``
``tf-shape``        ``h,w[,c]`` (raw arrays only)
``tf-dtype``        numpy dtype name (raw arrays only)
``tf-t.<event>``    per-stage timestamp in ns, e.g. ``tf-t.resize.out``
``tf-busy.<stage>`` CPU ns the stage spent on this frame (its cost, without queueing)
==================  ==========================================================

Headers this module does not know are carried through unchanged in ``FrameMeta.extra``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from tierflow.errors import FrameFormatError, FrameProblem
from tierflow.operators.vision.codec import ContentType, Image, decode_image, encode_image
from tierflow.settings import Settings
from tierflow.topics.limits import MessageLimits

H_SOURCE = "tf-source"
H_SEQ = "tf-seq"
H_CAPTURE = "tf-capture-ns"
H_QUALITY = "tf-quality"
H_EPOCH = "tf-epoch"
H_CONTENT_TYPE = "content-type"
H_SHAPE = "tf-shape"
H_DTYPE = "tf-dtype"
H_STAMP_PREFIX = "tf-t."
H_BUSY_PREFIX = "tf-busy."
_KNOWN = {H_SOURCE, H_SEQ, H_CAPTURE, H_QUALITY, H_EPOCH, H_CONTENT_TYPE, H_SHAPE, H_DTYPE}

Headers = list[tuple[str, bytes]]
HeadersIn = Mapping[str, object] | Sequence[tuple[str, object]] | None
"""Headers as clients hand them over: confluent-kafka and aiokafka give a list of pairs,
faust's ``event.headers`` a dict; confluent gives None for a record without headers. The
values are checked at run time (bytes, or None for a null header)."""


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
    extra: Mapping[str, bytes] = field(default_factory=dict)

    def stamped(self, event: str, time_ns: int) -> FrameMeta:
        """A copy with ``event`` (e.g. ``resize.out``) stamped at ``time_ns``."""
        return replace(self, stamps={**self.stamps, event: time_ns})

    def worked(self, stage: str, busy_ns: int) -> FrameMeta:
        """A copy recording that ``stage`` worked ``busy_ns`` on this frame."""
        return replace(self, busy_ns={**self.busy_ns, stage: max(0, busy_ns)})


@dataclass(frozen=True)
class Frame:
    """A decoded frame: pixels and metadata."""

    image: Image
    meta: FrameMeta


def encode_headers(meta: FrameMeta, shape: Sequence[int] = (), dtype: str = "") -> Headers:
    """Kafka headers for ``meta``; ``shape`` and ``dtype`` are written for raw frames only."""
    headers: Headers = [
        (H_SOURCE, meta.source.encode()),
        (H_SEQ, str(meta.sequence).encode()),
        (H_CAPTURE, str(meta.capture_ns).encode()),
        (H_QUALITY, str(meta.quality).encode()),
        (H_EPOCH, str(meta.epoch).encode()),
        (H_CONTENT_TYPE, meta.content_type.value.encode()),
    ]
    if meta.content_type is ContentType.RAW:
        headers.append((H_SHAPE, ",".join(str(n) for n in shape).encode()))
        headers.append((H_DTYPE, dtype.encode()))
    headers.extend((H_STAMP_PREFIX + k, str(v).encode()) for k, v in meta.stamps.items())
    headers.extend((H_BUSY_PREFIX + k, str(v).encode()) for k, v in meta.busy_ns.items())
    headers.extend(meta.extra.items())
    return headers


def producer_headers(headers: Headers) -> list[tuple[str, str | bytes | None]]:
    """``headers`` typed as confluent-kafka's ``Producer.produce`` declares them."""
    return [(key, value) for key, value in headers]


def _as_dict(headers: HeadersIn) -> dict[str, bytes]:
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
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


def _text(headers: Mapping[str, bytes], name: str) -> str:
    try:
        raw = headers[name]
    except KeyError:
        msg = f"header {name!r} is missing (present: {sorted(headers) or 'none'})"
        raise FrameFormatError(FrameProblem.MISSING_HEADER, msg) from None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        msg = f"header {name!r} is not UTF-8: {raw[:32]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg) from None


def _int(headers: Mapping[str, bytes], name: str, minimum: int = 0) -> int:
    text = _text(headers, name)
    try:
        value = int(text)
    except ValueError:
        msg = f"header {name!r} must be an integer, got {text[:32]!r}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg) from None
    if value < minimum:
        msg = f"header {name!r} must be >= {minimum}, got {value}"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    return value


def decode_meta(headers: HeadersIn) -> FrameMeta:
    """Read a frame's metadata from its headers without touching the pixels.

    Raises:
        FrameFormatError: MISSING_HEADER, BAD_HEADER, WRONG_TYPE or UNSUPPORTED_CONTENT.
    """
    h = _as_dict(headers)
    source = _text(h, H_SOURCE)
    if not source:
        msg = f"header {H_SOURCE!r} is empty"
        raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
    stamps: dict[str, int] = {}
    busy: dict[str, int] = {}
    extra: dict[str, bytes] = {}
    for key in h:
        if key.startswith(H_STAMP_PREFIX):
            stamps[key[len(H_STAMP_PREFIX) :]] = _int(h, key)
        elif key.startswith(H_BUSY_PREFIX):
            busy[key[len(H_BUSY_PREFIX) :]] = _int(h, key)
        elif key not in _KNOWN:
            extra[key] = h[key]
    return FrameMeta(
        source=source,
        sequence=_int(h, H_SEQ),
        capture_ns=_int(h, H_CAPTURE),
        quality=_int(h, H_QUALITY, minimum=1),
        epoch=_int(h, H_EPOCH),
        content_type=ContentType.parse(_text(h, H_CONTENT_TYPE)),
        stamps=stamps,
        busy_ns=busy,
        extra=extra,
    )


def _size(value: bytes, headers: Headers) -> int:
    return len(value) + sum(len(k) + len(v) for k, v in headers)


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
    def from_settings(cls, settings: Settings) -> FrameCodec:
        """The codec of ``settings.frames``."""
        f = settings.frames
        content = {"jpeg": ContentType.JPEG, "png": ContentType.PNG, "raw": ContentType.RAW}
        return cls(
            content_type=content[f.codec],
            jpeg_quality=f.jpeg_quality,
            max_bytes=MessageLimits.from_settings(settings).frame_bytes,
        )

    def encode(self, image: Image, meta: FrameMeta) -> tuple[bytes, Headers]:
        """Encode ``image`` with ``meta`` into a Kafka value and headers.

        The encoding is ``meta.content_type``; build the meta with ``self.content_type``
        to follow the settings.

        Raises:
            FrameFormatError: WRONG_TYPE for an array the encoding cannot hold, TOO_LARGE
                when value plus headers exceed ``max_bytes``.
        """
        value = encode_image(image, meta.content_type, self.jpeg_quality)
        headers = encode_headers(meta, image.shape, image.dtype.name)
        self.check_size(value, headers)
        return value, headers

    def check_size(self, value: bytes, headers: Headers) -> None:
        """Raise TOO_LARGE when a message would exceed ``max_bytes``."""
        size = _size(value, headers)
        if size > self.max_bytes:
            msg = (
                f"frame message of {size} bytes exceeds the limit of {self.max_bytes} bytes "
                "(frames.max_message_bytes)"
            )
            raise FrameFormatError(FrameProblem.TOO_LARGE, msg)

    def decode(self, value: object, headers: HeadersIn) -> Frame:
        """Decode a Kafka value and headers into a :class:`Frame`.

        Raises:
            FrameFormatError: naming the problem (missing header, truncated image, ...).
        """
        if not isinstance(value, bytes | bytearray):
            msg = f"frame value must be bytes, got {type(value).__name__}"
            raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
        h = _as_dict(headers)
        meta = decode_meta(h)
        self.check_size(bytes(value), list(h.items()))
        shape: list[int] | None = None
        dtype: str | None = None
        if meta.content_type is ContentType.RAW:
            shape_text = _text(h, H_SHAPE)
            try:
                shape = [int(n) for n in shape_text.split(",")]
            except ValueError:
                msg = f"header {H_SHAPE!r} must be comma-separated integers, got {shape_text!r}"
                raise FrameFormatError(FrameProblem.BAD_HEADER, msg) from None
            dtype = _text(h, H_DTYPE)
        image = decode_image(bytes(value), meta.content_type, shape, dtype)
        return Frame(image=image, meta=meta)
