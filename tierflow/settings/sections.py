"""The data plane's sections of the settings (:class:`~tierflow.settings.Settings`).

The broker, topics, frames, workers, detector, data plane and cameras.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tierflow.homes import cache_home, state_home

MiB = 1024 * 1024
PositiveInt = Annotated[int, Field(gt=0)]
Port = Annotated[int, Field(gt=0, lt=65536)]
# Listen addresses that mean "every interface": a server binds them, a client cannot dial them.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - a set to compare with


class Section(BaseModel):
    """A section of :class:`~tierflow.settings.Settings`: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalBrokerSettings(Section):
    """The local KRaft broker (or cluster of them) tierflow starts when no cluster is given."""

    host: str = "127.0.0.1"
    port: Port = 9092
    controller_port: Port = 9093
    brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description=(
            "Nodes of the local cluster (each broker+controller; node i listens on port + 2i "
            "and controller_port + 2i); also the default replication factor, at most 3."
        ),
    )
    jar_cache: Path = Field(
        default_factory=lambda: cache_home() / "kafka",
        description="Where the broker's jars are cached (outside the repository).",
    )
    state_dir: Path = Field(
        default_factory=lambda: state_home() / "kafka",
        description="Log directories, pid file and broker log.",
    )
    heap: str = Field(default="512m", description="JVM -Xmx of the broker.")
    start_timeout_s: float = Field(default=90.0, gt=0, description="Seconds to wait for metadata.")
    stop_timeout_s: float = Field(default=30.0, gt=0, description="Seconds before SIGKILL.")


class TopicSettings(Section):
    """Topic names, sizes and retention (see ``topics.catalogue``)."""

    prefix: str = Field(
        default="",
        description="Prepended as '<prefix>.' to every topic so experiments can share a cluster.",
    )
    qualities: tuple[PositiveInt, ...] = Field(
        default=(320, 416, 512),
        description="Frame qualities (square side in pixels) that get frames.* topics.",
    )
    replication_factor: PositiveInt | None = Field(
        default=None, description="Replicas per partition; by default min(3, broker.brokers)."
    )
    min_insync_replicas: PositiveInt | None = Field(
        default=None,
        description="Topic min.insync.replicas; by default 2 at 3+ replicas, else the broker's.",
    )
    frame_partitions: PositiveInt = 6
    metrics_partitions: PositiveInt = 3
    control_partitions: PositiveInt = 1
    deadletter_partitions: PositiveInt = 1
    frame_retention_s: float = Field(default=3600.0, gt=0)
    frame_retention_bytes: int = Field(
        default=1024 * MiB, description="Per partition; -1 for no size limit."
    )
    metrics_retention_s: float = Field(default=7 * 86400.0, gt=0)
    deadletter_retention_s: float = Field(default=7 * 86400.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        bad = sorted(set(value) - allowed)
        if bad or value.endswith(".") or len(value) > 150:
            msg = (
                f"topic prefix {value!r} must be at most 150 characters of [a-zA-Z0-9._-] "
                f"not ending in '.'; bad characters: {bad}"
            )
            raise ValueError(msg)
        return value

    @field_validator("qualities")
    @classmethod
    def _qualities_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            msg = "at least one quality is needed"
            raise ValueError(msg)
        if len(set(value)) != len(value):
            msg = f"qualities must be unique, got {list(value)}"
            raise ValueError(msg)
        return tuple(sorted(value))


class FrameSettings(Section):
    """How frames are encoded and how large one message may be."""

    codec: Literal["jpeg", "png", "raw"] = "jpeg"
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    max_message_bytes: int = Field(
        default=8 * MiB,
        ge=64 * 1024,
        description=(
            "Largest frame message (value plus headers). Broker, topic, producer and consumer "
            "limits are all derived from this one number (topics.limits)."
        ),
    )


class WorkerSettings(Section):
    """Faust workers: state, group membership and failover."""

    data_dir: Path = Field(
        default_factory=lambda: state_home() / "workers",
        description="Faust's per-app data directory (tables, recovery state).",
    )
    session_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A crashed worker's partitions move after this many seconds.",
    )
    heartbeat_s: float = Field(
        default=0.3,
        gt=0,
        description=(
            "Group heartbeat interval, s: members learn of a rebalance (a migration's join and"
            " leave) on their next heartbeat; 0.3 s cut a migration's gap from 1.86 to 1.28 s."
        ),
    )
    commit_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Acknowledged offsets are committed this often, s (faust's default 2.8).",
    )
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="A worker still stopping after this long exits anyway."
    )
    fetch_max_wait_s: float = Field(
        default=0.05,
        ge=0.001,
        le=10,
        description=(
            "Longest the broker holds a worker's fetch for partitions with no new records, s."
            " A worker has one fetch in flight per broker; faust's 1.5 s parked it on idle"
            " partitions while busy ones waited (null detector, 5 x 25 fps: 42 vs 124 fps)."
        ),
    )
    instance_id: str | None = Field(
        default=None,
        description=(
            "Static group membership (KIP-345): a restarted worker with the same id takes"
            " its partitions back at once instead of after session_timeout_s."
        ),
    )
    restart_backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before a crashed worker's second restart (the first is at once), s.",
    )
    hot_spare: bool = Field(
        default=True,
        description=(
            "Keep one interpreter with tierflow imported ready to replace a crashed worker"
            " (about a second less downtime; one idle process)."
        ),
    )
    restart_backoff_max_s: float = Field(
        default=30.0, ge=0, description="Longest wait between restarts (doubling), s."
    )
    offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a new consumer group starts: earliest loses no frame.",
    )


class DetectorSettings(Section):
    """Which detector backend the detect services run, and how it batches."""

    backend: Literal["haar", "onnx", "triton", "null"] = Field(
        default="haar",
        description="null finds nothing at no cost: it measures the data plane alone.",
    )
    haar_cascades: tuple[str, ...] = Field(
        default=("face",), description="Haar cascades to run (face, upper_body, full_body)."
    )
    onnx_model: Path | None = Field(default=None, description="YOLO ONNX model file.")
    triton_url: str = Field(default="127.0.0.1:8001", description="host:port of the server.")
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_model: str = "yolo"
    input_size: PositiveInt | None = Field(
        default=None,
        description="Model input side in pixels; by default the quality the detector serves.",
    )
    conf_threshold: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="YOLO backends: lowest confidence a detection is kept at, in [0, 1].",
    )
    iou_threshold: float = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="YOLO backends: NMS drops a box overlapping a better one by more (IoU).",
    )
    max_batch: PositiveInt = Field(default=8, description="Frames per inference call.")
    threads: PositiveInt = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Inference calls in flight per detect service (defaults to the cores).",
    )


class DataPlaneSettings(Section):
    """Stage behaviour: drop policies, discovery heartbeats, where annotated frames go."""

    deadline_s: float = Field(
        default=5.0, gt=0, description="Frames older than this at a stage are dropped."
    )
    max_lag_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Longest a frame may wait in front of a stage: resize and detect drop it (policy "
            "'lag'); draw records its detections without drawing it."
        ),
    )
    supersede: bool = Field(
        default=True,
        description="Drop a source's oldest waiting frame when a newer one arrives and "
        "per_source frames of it already wait (policy 'superseded').",
    )
    per_source: PositiveInt = Field(
        default=2, description="Frames of one source that may wait for the detector."
    )
    max_pending: PositiveInt = Field(
        default=64, description="Frames waiting for the detector when supersede is off."
    )
    heartbeat_s: float = Field(default=1.0, gt=0, description="Registry heartbeat period.")
    registry_ttl_s: float = Field(
        default=4.0, gt=0, description="A service without a heartbeat this long is gone."
    )
    output_dir: Path = Field(
        default=Path("out/annotated"), description="Where draw stores annotated frames."
    )
    store_frames: bool = True
    tier: Literal["edge", "fog", "cloud"] = Field(
        default="edge", description="Tier of this machine, announced on control.nodes."
    )
    node: str = Field(default_factory=lambda: os.uname().nodename)
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface each process serves /metrics on (0.0.0.0 or :: for every one).",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        lt=65536,
        description=(
            "TCP port of /metrics. 0 picks a free one, so that several processes share a "
            "host; a container sets a fixed one that its Service or scrape config names."
        ),
    )
    metrics_max_sources: PositiveInt = Field(
        default=32,
        description=(
            "Distinct source label values one process gives its per-frame series (end-to-end "
            "latency, F1 counts, camera frames); later sources share the value 'other', so a "
            "deployment with many cameras cannot grow Prometheus without bound."
        ),
    )
    metrics_advertise_host: str | None = Field(
        default=None,
        description=(
            "Host announced on control.registry for /metrics (what Prometheus connects to). "
            "None: metrics_host, or this machine's hostname when metrics_host is a wildcard, "
            "since no one can connect to 0.0.0.0."
        ),
    )
    latency_ms: float = Field(
        default=0.0, ge=0, description="Latency from the cameras to this node (declared), ms."
    )
    bandwidth_mbps: float = Field(
        default=1000.0, gt=0, description="Bandwidth from the cameras (declared), Mbit/s."
    )
    memory_mb: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Memory this node offers to placement, MB; None: what the machine has (its "
            "cgroup's limit when lower). An edge device emulated on a bigger machine sets it."
        ),
    )

    @property
    def metrics_announced_host(self) -> str:
        """The host other machines reach this process's ``/metrics`` at (no port)."""
        if self.metrics_advertise_host:
            return self.metrics_advertise_host
        if self.metrics_host in WILDCARD_HOSTS:
            return socket.gethostname()
        return self.metrics_host


class CameraSettings(Section):
    """Defaults of ``tierflow camera`` and the generated cameras of ``tierflow up``."""

    fps: float = Field(
        default=25.0, gt=0, le=1000, description="Native frame rate of a camera, frames/s."
    )
    initial_fps: float | None = Field(
        default=2.0,
        gt=0,
        description=(
            "Frames/s a camera that follows control.assignments sends until its first "
            "assignment (a slow start: it joins without flooding the detectors); None: its "
            "native rate."
        ),
    )
    quality: PositiveInt = 512
    queue_kbytes: PositiveInt = Field(
        default=65536, description="Producer queue; frames beyond it are dropped, not waited on."
    )
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Longest reconnect backoff.")
    scene_size: int = Field(default=1024, ge=256, description="Generated scene side, pixels.")
    golden_every_s: float = Field(
        default=2.0,
        gt=0,
        description="A truth = 'golden' source sends one frame this often (seconds) again at "
        "its strongest quality: the reference its frames are scored against.",
    )
    epoch_skew_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "An assignment epoch (the controller's clock, ms) more than this ahead of the "
            "camera's clock is ignored: a forged or far-future epoch cannot lock a camera."
        ),
    )
