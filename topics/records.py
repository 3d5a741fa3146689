"""JSON records of the non-frame topics, validated both ways.

=========================  ==============================================================
``metrics.frames``         :class:`FrameRecord`, one per frame that entered the pipeline
``detections.json``        :class:`DetectionRecord`, one per analysed frame (for consumers)
``control.registry``       :class:`ServiceAnnouncement`, heartbeats of every service
``control.nodes``          :class:`NodeAnnouncement`, heartbeats of every machine
``control.placement``      :class:`PlacementRecord`, where a service instance runs
``control.assignments``    :class:`Assignment`, the quality each source must capture at
=========================  ==============================================================

(The JSON of the ``tf-truth`` and ``tf-detections`` headers belongs to the frame envelope,
:class:`tierflow.topics.envelope.DetectionsJson`.)

Records are pydantic models so a malformed record fails with the field named, never with a
KeyError deep inside an agent. Times are nanoseconds since the Unix epoch unless a field
name ends in ``_s`` (seconds).

Parsing is strict about types (``true`` or ``"512"`` is no integer) and refuses numbers
that parse but mean nothing: every float is finite (JSON's ``NaN``/``Infinity``, ``1e400``),
and counts, sizes, shares and times have the bounds their readers rely on. Assignment
epochs have no upper bound here: a follower bounds them by its clock
(:class:`~tierflow.topics.tables.LatestTable`'s ``ceiling``).
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tierflow.errors import TierflowError
from tierflow.operators.vision.resize import Letterbox
from tierflow.topics.envelope import READING, DetectionsJson, FrameMeta
from tierflow.topics.header_values import INT_LIMIT
from tierflow.topics.stages import PIPELINE, StageName


class RecordError(TierflowError):
    """A record on a control or metrics topic (or a JSON header) is malformed."""


class Record(BaseModel):
    """Base of every JSON record: frozen, unknown fields ignored (newer writers), finite floats."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    def to_bytes(self) -> bytes:
        """Compact JSON, the Kafka value."""
        return self.model_dump_json(exclude_none=True).encode()


R = TypeVar("R", bound=Record)


def parse_record(kind: type[R], data: bytes | None) -> R:
    """Validate ``data`` as a ``kind`` record.

    Raises:
        RecordError: naming the record type and the fields at fault.
    """
    if data is None:
        msg = f"{kind.__name__}: the value is empty (a tombstone?)"
        raise RecordError(msg)
    try:
        return kind.model_validate_json(data, strict=True, context=READING)
    except ValidationError as exc:
        msg = f"malformed {kind.__name__}: {_fields(exc)}"
        raise RecordError(msg) from exc


def _fields(exc: ValidationError, most: int = 5) -> str:
    """The first ``most`` fields at fault and why (a garbage record can fail hundreds)."""
    errors = exc.errors()
    named = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors[:most]
    )
    return named + (f"; and {len(errors) - most} more" if len(errors) > most else "")


def parse_frame_records(data: bytes | None) -> list[FrameRecord]:
    """The frame records of one ``metrics.frames`` value: a JSON object, or an array (a batch).

    Cameras gather the records of the frames they sample out into one message; stages send
    one per frame. Each element is validated as :class:`FrameRecord`.

    Raises:
        RecordError: naming the record (and its index in a batch) and the fields at fault.
    """
    if isinstance(data, bytes | bytearray) and data.lstrip()[:1] == b"[":
        try:
            return _FRAME_BATCH.validate_json(data, strict=True, context=READING)
        except ValidationError as exc:
            msg = f"malformed batch of FrameRecord: {_fields(exc)}"
            raise RecordError(msg) from exc
    return [parse_record(FrameRecord, data)]


def frame_records_bytes(records: Sequence[FrameRecord]) -> bytes:
    """One ``metrics.frames`` value holding ``records`` (a JSON array)."""
    return b"[" + b",".join(record.to_bytes() for record in records) + b"]"


class Outcome(enum.StrEnum):
    """How a captured frame ended: every frame ends in exactly one of these."""

    PROCESSED = "processed"
    """Analysed by a detector and drawn (or, behind the lag bound, recorded undrawn)."""
    SAMPLED = "sampled"
    """Not sent: the camera skipped it to capture at its assigned frame rate (not a drop)."""
    DROPPED = "dropped"
    """Dropped on purpose by a named :class:`DropPolicy`."""
    DEADLETTER = "deadletter"
    """Malformed, unroutable or failed; the original bytes went to ``deadletter``."""


class DropPolicy(enum.StrEnum):
    """Named policies that may drop a frame on purpose."""

    DEADLINE = "deadline"
    """Older than ``dataplane.deadline_s`` when a stage picked it up."""
    SUPERSEDED = "superseded"
    """A newer frame of the same source was waiting for the same detector."""
    LAG = "lag"
    """It waited in front of a stage longer than ``dataplane.max_lag_s``."""


class FrameRecord(Record):
    """One per frame on ``metrics.frames``: where it went and how long each step took.

    ``stamps`` holds the envelope's per-stage timestamps (``resize.in``, ``detect.out``...),
    from which stage and transfer times follow; ``latency_s`` is capture to outcome.
    """

    source: str
    sequence: int = Field(ge=-1)
    """From 0; -1 for a frame whose headers were unreadable."""
    quality: int = Field(ge=0)
    """0 for a frame whose headers were unreadable."""
    epoch: int = Field(default=0, ge=0)
    capture_ns: int = Field(ge=0)
    outcome: Outcome
    stage: str
    policy: DropPolicy | None = None
    reason: str | None = None
    latency_s: float
    stamps: dict[str, int] = Field(default_factory=dict)
    detector: str | None = None
    detections: int | None = Field(default=None, ge=0)
    tp: int | None = Field(default=None, ge=0)
    fp: int | None = Field(default=None, ge=0)
    fn: int | None = Field(default=None, ge=0)
    f1: float | None = Field(default=None, ge=0, le=1)
    stage_s: dict[str, float] = Field(default_factory=dict)
    """Seconds inside each stage: ``<stage>.out - <stage>.in`` (queueing included)."""
    transfer_s: dict[str, float] = Field(default_factory=dict)
    """Seconds between stages, keyed by the receiving stage: ``<next>.in - <prev>.out``."""
    busy_s: dict[str, float] = Field(default_factory=dict)
    """CPU seconds each stage spent on the frame: its cost, queueing excluded."""
    frame_bytes: int | None = Field(default=None, ge=0)
    """Size of the encoded frame the detector received, bytes (eq. 2's S)."""
    truth: DetectionsJson | None = None
    """The frame's true objects (generated scenes), so any reader can score carry-forward."""
    found: DetectionsJson | None = None
    """What the detector found (processed frames), boxes in pixels of its input."""
    drawn: bool | None = None
    """Processed frames: False when draw skipped the annotated copy to keep its lag bound."""
    reference: bool | None = None
    """True for a reference copy (a golden source's frame at the strongest quality): not a
    frame of its own; its ``found`` is the truth of the frame with the same sequence."""

    @classmethod
    def of(
        cls,
        meta: FrameMeta | None,
        outcome: Outcome,
        stage: str,
        *,
        source: str = "?",
        now_ns: int | None = None,
        **fields: Any,
    ) -> FrameRecord:
        """The record of a frame ending now at ``stage``.

        Args:
            meta: the frame's metadata; None when its headers were unreadable (the record
                then carries ``source`` and sequence -1).
            outcome: how the frame ended.
            stage: the stage where it ended.
            source: the Kafka key, used only without ``meta``.
            now_ns: the time of the outcome (default: now).
            **fields: policy, reason, detector, detections, tp, fp, fn, f1.
        """
        if meta is None:
            return cls(
                source=source, sequence=-1, quality=0, capture_ns=0, outcome=outcome,
                stage=stage, latency_s=0.0, **fields,
            )  # fmt: skip
        now_ns = now_ns or time.time_ns()
        stamps = dict(meta.stamps)
        return cls(
            source=meta.source,
            sequence=meta.sequence,
            quality=meta.quality,
            epoch=meta.epoch,
            capture_ns=meta.capture_ns,
            outcome=outcome,
            stage=stage,
            latency_s=(now_ns - meta.capture_ns) / 1e9,
            stamps=stamps,
            stage_s=stage_times_s(stamps),
            transfer_s=transfer_times_s(stamps),
            busy_s={k: v / 1e9 for k, v in meta.busy_ns.items()},
            truth=DetectionsJson.of(meta.truth) if meta.truth is not None else None,
            reference=True if meta.reference else None,
            **fields,
        )


_FRAME_BATCH = TypeAdapter(list[FrameRecord])

DETECTION_RECORD_VERSION = 1


class DetectionRecord(Record):
    """One per analysed frame on ``detections.json``: what was found, in the source's pixels.

    The record for consumers downstream of tierflow (an alarm, a tracker, a database):
    boxes are ``[x1, y1, x2, y2]`` in pixels of the source's own frames (``image_size``,
    before the camera's letterbox to the quality), whatever quality the frame was analysed
    at. docs/detections.md documents the schema.
    """

    version: int = DETECTION_RECORD_VERSION
    source: str
    sequence: int = Field(ge=0)
    capture_ns: int = Field(ge=0)
    """When the camera captured the frame, ns since the Unix epoch."""
    quality: int = Field(gt=0)
    """The quality the frame was analysed at (side of the square frame, pixels)."""
    detector: str
    image_size: tuple[int, int]
    """(width, height) of the source's frames, pixels: what ``boxes`` refer to."""
    boxes: list[tuple[float, float, float, float]] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    """Detector confidences in [0, 1], one per box."""
    latency_s: float = Field(ge=0)
    """Seconds from capture to the detections being known (draw received them)."""

    @classmethod
    def of(cls, meta: FrameMeta, now_ns: int | None = None) -> DetectionRecord:
        """The record of a frame that carries detections (``meta.detections`` set).

        Raises:
            ValueError: the frame carries no detections.
        """
        if meta.detections is None:
            msg = "a detection record needs a frame with detections"
            raise ValueError(msg)
        side = meta.quality
        origin = meta.origin or (side, side)
        found = Letterbox.of(origin, side).to_origin(meta.detections)
        json = DetectionsJson.of(found)
        return cls(
            source=meta.source,
            sequence=meta.sequence,
            capture_ns=meta.capture_ns,
            quality=meta.quality,
            detector=meta.detector or "?",
            image_size=json.size,
            boxes=json.boxes,
            labels=json.labels,
            scores=json.scores,
            latency_s=max(0.0, ((now_ns or time.time_ns()) - meta.capture_ns) / 1e9),
        )


def stage_times_s(stamps: dict[str, int]) -> dict[str, float]:
    """Seconds spent in each stage (``<stage>.out - <stage>.in``) from envelope stamps (ns)."""
    return {
        stage: (stamps[f"{stage}.out"] - stamps[f"{stage}.in"]) / 1e9
        for stage in PIPELINE
        if f"{stage}.in" in stamps and f"{stage}.out" in stamps
    }


def transfer_times_s(stamps: dict[str, int]) -> dict[str, float]:
    """Seconds from each stage's ``out`` to the next stage's ``in`` (eq. 2's Trans)."""
    return {
        nxt: (stamps[f"{nxt}.in"] - stamps[f"{prev}.out"]) / 1e9
        for prev, nxt in itertools.pairwise(PIPELINE)
        if f"{prev}.out" in stamps and f"{nxt}.in" in stamps
    }


class Heartbeat(Record):
    """A record that announces something alive: valid for ``ttl_s`` after ``heartbeat_ns``.

    Attributes:
        heartbeat_ns: when this announcement was made, ns since the Unix epoch.
        ttl_s: after this long without a heartbeat the announced thing counts as gone.
    """

    heartbeat_ns: int = Field(ge=0, lt=INT_LIMIT)
    ttl_s: float = Field(gt=0)


class ServiceAnnouncement(Heartbeat):
    """A service's heartbeat on ``control.registry``: what it consumes and where it runs.

    Attributes:
        service_id: unique per running instance (the record key).
        stage: the stage it runs (:class:`~tierflow.topics.stages.StageName`).
        quality: the frame quality it serves (detect), None when it takes every quality.
        input_size: side in pixels of the frames it wants (detect).
        topic: the topic it consumes.
        model: detector name (detect).
        tier, node: where it runs.
        capacity_fps: frames per second of busy time per inference thread, measured.
        threads: inference calls it runs at once.
        remote: its inference runs elsewhere (an inference server).
        metrics_host, metrics_port: where its process serves Prometheus ``/metrics``.
        group: its consumer group; the service is live only while that group has members
            assigned ``topic`` (see ``streams.discovery.GroupProbe``), so a stale or stray
            record cannot make a quality look served.
        frames_served: frames it analysed since it started (detect): the request count the
            thesis's Mode 1 evicts the least frequently used model by (seed 003, §4.3).
        last_frame_ns: when it last analysed a frame, ns since the Unix epoch; None before
            the first (Mode 1 evicts the least recently used model first).
    """

    service_id: str
    stage: StageName
    quality: int | None = Field(default=None, gt=0)
    input_size: int | None = Field(default=None, gt=0)
    topic: str
    model: str | None = None
    tier: str = "edge"
    node: str = "local"
    capacity_fps: float | None = Field(default=None, ge=0)
    threads: int = Field(default=1, ge=1)
    remote: bool = False
    metrics_host: str | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    group: str | None = None
    frames_served: int = Field(default=0, ge=0, lt=INT_LIMIT)
    last_frame_ns: int | None = Field(default=None, ge=0, lt=INT_LIMIT)


class NodeAnnouncement(Heartbeat):
    """A node's heartbeat on ``control.nodes``: AVEC's metrics template (seed 004, §6).

    Attributes:
        node: node id (the record key).
        tier: ``edge``, ``fog`` or ``cloud``.
        cores: CPU cores.
        memory_mb: main memory, MB.
        accelerator: accelerator platform (``cuda``), or None.
        accelerator_memory_mb: its memory, MB.
        latency_ms: latency from the data sources to the node, ms.
        bandwidth_mbps: bandwidth from the data sources to the node, Mbit/s.
        used_cores: cores busy on the machine since its previous announcement (/proc/stat).
        used_memory_mb: memory in use, MB.
        storage_mb: free disk where the node stores frames, MB.
    """

    node: str
    tier: Literal["edge", "fog", "cloud"]
    cores: float = Field(gt=0)
    memory_mb: float = Field(ge=0)
    accelerator: str | None = None
    accelerator_memory_mb: float = Field(default=0.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    bandwidth_mbps: float = Field(default=0.0, ge=0)
    used_cores: float = Field(default=0.0, ge=0)
    used_memory_mb: float = Field(default=0.0, ge=0)
    storage_mb: float = Field(default=0.0, ge=0)


class PlacementRecord(Record):
    """Where a service instance should run (``control.placement``, keyed by instance).

    Attributes:
        instance: ``<task>#<index>``.
        task: the workflow task.
        node: node id.
        tier: the node's tier.
        share: fraction of the task's cores reserved (>= 0.5 after Algorithm 4).
        epoch: the decision that placed it.
        policy: the placement policy.
        instances: how many records that decision published. A placement goes out one
            record at a time, so a reader acts on an epoch only once it holds all of them
            (None: unknown, from a writer that does not say; the epoch counts as whole).
    """

    instance: str
    task: str
    node: str
    tier: str
    share: float = Field(gt=0, le=1)
    epoch: int = Field(ge=0)
    policy: str
    instances: int | None = Field(default=None, ge=1, lt=INT_LIMIT)


class Assignment(Record):
    """The quality and frame rate a source must capture at, versioned by ``epoch``.

    ``fps`` is the frames per second it sends (None: its own rate); the frames it skips for
    it are ``sampled``. ``admitted`` False is Algorithm 1's refusal (steps 7-8): the source
    must not publish until a newer epoch admits it; ``reason`` says why.
    """

    source: str
    quality: int = Field(gt=0)
    fps: float | None = Field(default=None, gt=0)
    epoch: int = Field(ge=0)
    pipeline: str = ""
    reason: str = ""
    admitted: bool = True
