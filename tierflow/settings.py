"""The one typed settings object of tierflow.

Values come, highest precedence first, from keyword arguments, environment variables
(``TIERFLOW_`` prefix, ``__`` between nested names, e.g. ``TIERFLOW_TOPICS__PREFIX=exp1``),
a TOML file (``--config`` or ``TIERFLOW_CONFIG``), then the defaults below.
``KAFKA_BOOTSTRAP_SERVERS`` is honoured without the prefix because it is the name every
Kafka tool and CI system already uses. A ``TIERFLOW_`` variable that names no section is
refused rather than ignored.

Nothing else in tierflow reads the environment or hard-codes a tunable.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tierflow.errors import ConfigError
from tierflow.homes import cache_home, state_home
from tierflow.infra.tiers.config import TierSettings
from tierflow.topics.security import KafkaSettings

MiB = 1024 * 1024
CONFIG_ENV = "TIERFLOW_CONFIG"
# The file given to load_settings(); a context variable rather than a mutated environment.
_config_file: ContextVar[Path | None] = ContextVar("tierflow_config_file", default=None)

PositiveInt = Annotated[int, Field(gt=0)]
Port = Annotated[int, Field(gt=0, lt=65536)]
# Listen addresses that mean "every interface": a server binds them, a client cannot dial them.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - a set to compare with


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalBrokerSettings(_Section):
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


class TopicSettings(_Section):
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


class FrameSettings(_Section):
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


class WorkerSettings(_Section):
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


class DetectorSettings(_Section):
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


class DataPlaneSettings(_Section):
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


class CameraSettings(_Section):
    """Defaults of ``tierflow camera`` and the generated cameras of ``tierflow up``."""

    fps: float = Field(default=25.0, gt=0, description="Native frame rate of a camera.")
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


class ControlSettings(_Section):
    """The control agent: time slots, the accuracy floor, solver and anti-flapping rules."""

    slot_s: float = Field(default=10.0, gt=0, description="Seconds between decisions.")
    window_s: float = Field(
        default=20.0, gt=0, description="Seconds of per-frame records the models look at."
    )
    a_min: float = Field(default=0.5, ge=0, le=1, description="Accuracy floor (eq. 6).")
    accuracy_credit: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description=(
            "Most one slot's accuracy floor may fall below a_min while earlier slots' surplus "
            "is banked (eq. 6 holds a_min for the mean over slots); 0: never below a_min."
        ),
    )
    objective: Literal["latency", "utility"] = Field(
        default="utility",
        description=(
            "utility: maximise eq. 5's a - Theta*T; latency: Algorithm 1 as written (fastest "
            "assignment meeting a_min, with the 10 ms / 20 % preference rule)."
        ),
    )
    theta_per_s: float = Field(
        default=0.2,
        ge=0,
        description=(
            "Theta of eq. 5: accuracy worth one second of latency (0.2: 0.02 of F1 per "
            "0.1 s). Latency is bounded by slo_p99_s; within it, accuracy over every "
            "captured frame is what is maximised."
        ),
    )
    latency_mean: Literal["sources", "frames"] = Field(
        default="frames",
        description=(
            "Which mean eq. 3's latency is: sources, as the paper writes it (the mean over "
            "sources of each source's mean frame latency); frames, the mean over analysed "
            "frames (each source weighted by its frame rate). They agree at one frame rate; "
            "over sources with unlike rates the milp program is a fixed point, not proven."
        ),
    )
    policy: str = Field(default="milp", description="Quality policy: milp, exact, all-max.")
    placement_policy: str = Field(
        default="auto",
        description=(
            "Placement policy (tierflow plan --help lists them); auto: the seed's algorithms"
            " where Fog or Cloud nodes exist, else the thesis's request program."
        ),
    )
    time_limit_s: float = Field(default=1.0, gt=0, description="Solver budget per decision.")
    min_dwell_slots: int = Field(
        default=2, ge=1, description="Slots a source keeps a quality before it may change."
    )
    slo_p99_s: float = Field(
        default=1.0, gt=0, description="A window p99 latency above this triggers a decision."
    )
    max_utilisation: float = Field(default=0.85, gt=0, lt=1)
    fps_ladder: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(25.0, 15.0, 10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0),
        description=(
            "Frame rates a camera may be told to send at besides its own; the frames it "
            "skips are 'sampled'. Empty: quality is the only knob (the seed paper)."
        ),
    )
    workflow: Path | None = Field(
        default=None,
        description=(
            "Workflow TOML to place; unset: this deployment's own pipeline (resize, a detect"
            " per quality, draw). The paper's use case ships as default_workflow.toml."
        ),
    )
    detect_qualities: tuple[PositiveInt, ...] | None = Field(
        default=None,
        description="Qualities the placed pipeline runs a detector for (unset: every quality).",
    )
    provision: Literal["catalogue", "demand"] = Field(
        default="catalogue",
        description=(
            "catalogue: a detector for every quality of the pipeline; demand: the thesis's "
            "back end, a detector for the qualities frames arrive at (placed by the request "
            "program, evicted by placement_mode's rule)."
        ),
    )
    placement_mode: int = Field(
        default=1,
        ge=1,
        le=2,
        description=(
            "With provision = demand, the thesis's back-end mode: 1 keeps idle detectors "
            "loaded and evicts the least recently (then least frequently) used one when "
            "memory runs out; 2 plans on total memory and unloads every idle detector."
        ),
    )
    demand_s: float = Field(
        default=20.0,
        gt=0,
        description="With provision = demand, seconds a quality stays in demand after its "
        "last frame arrived.",
    )
    evict_idle_s: float | None = Field(
        default=None,
        gt=0,
        description="Mode 1: also unload a detector idle this many seconds (None: never).",
    )

    @model_validator(mode="after")
    def _demand_needs_the_request_program(self) -> ControlSettings:
        if self.provision == "demand" and self.placement_policy not in ("auto", "requests"):
            msg = (
                "control.provision = demand runs the thesis's request program; "
                f"placement_policy must be auto or requests, not {self.placement_policy!r}"
            )
            raise ValueError(msg)
        return self


class PrometheusSettings(_Section):
    """The Prometheus server ``tierflow up --prometheus`` starts (Debian's package)."""

    binary: str = Field(default="prometheus", description="Executable name or path.")
    host: str = "127.0.0.1"
    port: Port = 9090
    scrape_interval_s: float = Field(default=2.0, gt=0, description="Seconds between scrapes.")
    retention: str = Field(default="2d", description="How long samples are kept.")
    state_dir: Path = Field(
        default_factory=lambda: state_home() / "prometheus",
        description="Configuration, targets and samples.",
    )
    start_timeout_s: float = Field(default=60.0, gt=0)
    url: str | None = Field(
        default=None,
        description=(
            "URL Grafana's data source reaches this Prometheus at (tierflow grafana "
            "provision). None: http://host:port, 127.0.0.1 when host is a wildcard."
        ),
    )

    @property
    def reach_url(self) -> str:
        """The URL clients use: ``url``, or one built from ``host`` and ``port``."""
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class Settings(BaseSettings):
    """Every tunable of tierflow, in one frozen object."""

    model_config = SettingsConfigDict(
        env_prefix="TIERFLOW_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
        description="An existing Kafka cluster; when unset, tierflow starts its local broker.",
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a command waits for the Kafka cluster to answer before it gives up with "
            "one line naming the address (exit 2)."
        ),
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: LocalBrokerSettings = Field(default_factory=LocalBrokerSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    frames: FrameSettings = Field(default_factory=FrameSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    dataplane: DataPlaneSettings = Field(default_factory=DataPlaneSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    tiers: TierSettings = Field(default_factory=TierSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the TOML file named by TIERFLOW_CONFIG."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def uses_local_broker(self) -> bool:
        """True when no external cluster is configured and tierflow runs its own broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        """The ``host:port[,host:port]`` list every client connects to."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        # Every node of a local cluster, so a client still bootstraps when node 1 is down.
        b = self.broker
        return ",".join(f"{b.host}:{b.port + 2 * i}" for i in range(b.brokers))


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    """Refuse a ``TIERFLOW_`` variable that names no setting (pydantic would ignore it).

    Misspelled keys inside a section are refused by the sections themselves (extra
    "forbid"); a misspelled section (``TIERFLOW_CAMRA__FPS``) matches no field at all.

    Raises:
        ConfigError: naming the variable, and the sections it may have meant.
    """
    prefix = Settings.model_config.get("env_prefix", "")
    known = {name for name in Settings.model_fields if name != "bootstrap_servers"}
    for variable in sorted(environ):
        if not variable.upper().startswith(prefix) or variable.upper() == CONFIG_ENV:
            continue
        section = variable[len(prefix) :].lower().split("__", 1)[0]
        if section in known:
            continue
        if section == "bootstrap_servers":
            msg = f"{variable} is not read: the cluster is KAFKA_BOOTSTRAP_SERVERS"
        else:
            close = difflib.get_close_matches(section, sorted(known), n=1)
            hint = f"did you mean {prefix}{close[0].upper()}? " if close else ""
            msg = (
                f"{variable} names no setting: {section!r} is not a section; {hint}"
                f"sections: {', '.join(sorted(known))}"
            )
        raise ConfigError(msg)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the environment and an optional TOML file.

    Args:
        config_file: a TOML file; overrides ``TIERFLOW_CONFIG`` when given.
        **overrides: field values that win over every other source.

    Raises:
        ConfigError: the file is missing or a value is invalid; the message names the field.
    """
    from pydantic import ValidationError

    named = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if named is not None and not named.is_file():
        msg = f"config file {named} does not exist"
        raise ConfigError(msg)
    _refuse_unknown_sections(os.environ)
    token = _config_file.set(named)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise ConfigError(msg) from exc
    finally:
        _config_file.reset(token)
