"""Every Prometheus metric tierflow exposes, defined in one place (prometheus-client).

Names follow Prometheus conventions: ``tierflow_`` prefix, base units (seconds, bytes),
``_total`` for counters. Each process (camera host, worker, control agent) serves its own
``/metrics`` (:func:`serve`); Prometheus scrapes them all, so a PromQL ``sum by (...)``
over instances aggregates the processes of a multi-process deployment. Labels stay few
and bounded: stage, quality, outcome, policy/reason, source (cameras), node.

=========================================  ==================================================
metric                                     meaning
=========================================  ==================================================
tierflow_stage_frames_total                frames that entered a stage {stage, quality}
tierflow_frames_total                      frames that ended {stage, quality, outcome, reason}
tierflow_stage_seconds                     time inside a stage, queueing included {stage, quality}
tierflow_stage_busy_seconds                CPU time a stage spent per frame {stage, quality}
tierflow_stage_wait_seconds                wait in front of a stage, since the previous one {stage}
tierflow_end_to_end_seconds                capture to outcome {quality, outcome}
tierflow_source_end_to_end_seconds         capture to annotated frame, processed frames {source}
tierflow_stage_bytes_total                 frame bytes a stage sent on {stage}
tierflow_batch_frames                      frames per inference call {quality}
tierflow_undrawn_frames_total              processed frames draw recorded without drawing
tierflow_repeat_outcomes_total             second outcomes of a frame a stage did not write {stage}
tierflow_consumer_lag_messages             records behind the high watermark {group, topic, part.}
tierflow_consumer_lag_seconds              age of the record being consumed {group, topic, part.}
tierflow_detections_tp_total               true positives {source, quality}; also _fp_, _fn_
tierflow_camera_frames_total               camera frames {source, outcome}: produced, or a drop
tierflow_camera_quality_pixels             current quality of a camera {source}
tierflow_camera_epoch                      assignment epoch a camera follows {source}
tierflow_assignment_epoch                  newest epoch the control agent published
tierflow_solver_seconds                    solver time per decision {policy}
tierflow_solver_decisions_total            decisions {status, rule}
tierflow_control_estimate                  the plan's estimate {quantity}
tierflow_control_a_min                     the accuracy floor
tierflow_registry_services                 live services the control agent sees {stage, quality}
tierflow_node_cores                        cores of a node {node, tier}; also _used_cores
tierflow_node_heartbeat_age_seconds        seconds since a node's last heartbeat {node, tier}
=========================================  ==================================================

The ``source`` label of the per-frame series (``source_end_to_end_seconds``, ``detections_*``,
``camera_frames_total``) takes at most ``dataplane.metrics_max_sources`` distinct values per
process (:func:`source_label`); later sources share :data:`OTHER_SOURCE`. The per-camera
gauges (quality, epoch) keep one series per camera the process runs.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from tierflow.infra.prometheus.targets import address
from tierflow.settings import DataPlaneSettings
from tierflow.topics.envelope import FrameMeta
from tierflow.topics.records import FrameRecord, Outcome

log = logging.getLogger(__name__)

# Seconds: from 5 ms (one resize) to 30 s (a deadline-bound backlog).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)
SOLVER_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics(NamedTuple):
    """The metric objects; use :data:`METRICS`."""

    stage_frames: Counter
    frames: Counter
    stage_seconds: Histogram
    busy_seconds: Histogram
    stage_wait: Histogram
    end_to_end: Histogram
    source_end_to_end: Histogram
    stage_bytes: Counter
    batch_frames: Histogram
    undrawn: Counter
    repeat_outcomes: Counter
    lag_messages: Gauge
    lag_seconds: Gauge
    tp: Counter
    fp: Counter
    fn: Counter
    camera_frames: Counter
    camera_quality: Gauge
    camera_epoch: Gauge
    assignment_epoch: Gauge
    solver_seconds: Histogram
    decisions: Counter
    control_estimate: Gauge
    a_min: Gauge
    registry_services: Gauge
    node_cores: Gauge
    node_used_cores: Gauge
    node_heartbeat_age: Gauge
    worker_restarts: Counter


def _create(prefix: str = "tierflow") -> Metrics:
    def name(base: str) -> str:
        return f"{prefix}_{base}"

    return Metrics(
        stage_frames=Counter(
            name("stage_frames"), "Frames that entered a stage.", ["stage", "quality"]
        ),
        frames=Counter(
            name("frames"),
            "Frames that ended, by the stage where they ended and how.",
            ["stage", "quality", "outcome", "reason"],
        ),
        stage_seconds=Histogram(
            name("stage_seconds"),
            "Seconds inside a stage, queueing included.",
            ["stage", "quality"],
            buckets=LATENCY_BUCKETS_S,
        ),
        busy_seconds=Histogram(
            name("stage_busy_seconds"),
            "CPU seconds a stage spent on one frame.",
            ["stage", "quality"],
            buckets=LATENCY_BUCKETS_S,
        ),
        stage_wait=Histogram(
            name("stage_wait_seconds"),
            "Seconds a frame waited in front of a stage since the previous stage sent it.",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
        ),
        end_to_end=Histogram(
            name("end_to_end_seconds"),
            "Seconds from capture to the frame's outcome.",
            ["quality", "outcome"],
            buckets=LATENCY_BUCKETS_S,
        ),
        source_end_to_end=Histogram(
            name("source_end_to_end_seconds"),
            "Seconds from capture to the annotated frame, per source (processed frames).",
            ["source"],
            buckets=LATENCY_BUCKETS_S,
        ),
        stage_bytes=Counter(name("stage_bytes"), "Frame bytes a stage sent on.", ["stage"]),
        batch_frames=Histogram(
            name("batch_frames"), "Frames per inference call.", ["quality"], buckets=BATCH_BUCKETS
        ),
        undrawn=Counter(
            name("undrawn_frames"),
            "Processed frames draw recorded without an annotated copy (behind its lag bound).",
        ),
        repeat_outcomes=Counter(
            name("repeat_outcomes"),
            "Redelivered frames whose outcome this stage process had written already.",
            ["stage"],
        ),
        lag_messages=Gauge(
            name("consumer_lag_messages"),
            "Records between the consumer and the high watermark.",
            ["group", "topic", "partition"],
        ),
        lag_seconds=Gauge(
            name("consumer_lag_seconds"),
            "Age in seconds of the record being consumed.",
            ["group", "topic", "partition"],
        ),
        tp=Counter(
            name("detections_tp"), "True positives against ground truth.", ["source", "quality"]
        ),
        fp=Counter(
            name("detections_fp"), "False positives against ground truth.", ["source", "quality"]
        ),
        fn=Counter(name("detections_fn"), "Missed true objects.", ["source", "quality"]),
        camera_frames=Counter(
            name("camera_frames"),
            "Camera frames: produced (acknowledged) or dropped by policy.",
            ["source", "outcome"],
        ),
        camera_quality=Gauge(
            name("camera_quality_pixels"), "Quality a camera captures at.", ["source"]
        ),
        camera_epoch=Gauge(name("camera_epoch"), "Assignment epoch a camera follows.", ["source"]),
        assignment_epoch=Gauge(
            name("assignment_epoch"), "Newest epoch the control agent published."
        ),
        solver_seconds=Histogram(
            name("solver_seconds"),
            "Seconds the solver took per decision.",
            ["policy"],
            buckets=SOLVER_BUCKETS_S,
        ),
        decisions=Counter(
            name("solver_decisions"),
            "Control decisions by solver status and rule.",
            ["status", "rule"],
        ),
        control_estimate=Gauge(
            name("control_estimate"),
            "The plan's estimate: latency_seconds, accuracy, utility.",
            ["quantity"],
        ),
        a_min=Gauge(name("control_a_min"), "Accuracy floor of the control agent (eq. 6)."),
        registry_services=Gauge(
            name("registry_services"),
            "Live services seen on control.registry.",
            ["stage", "quality"],
        ),
        node_cores=Gauge(name("node_cores"), "Cores of a node.", ["node", "tier"]),
        node_used_cores=Gauge(
            name("node_used_cores"), "Busy cores of a node (load average).", ["node", "tier"]
        ),
        node_heartbeat_age=Gauge(
            name("node_heartbeat_age_seconds"),
            "Seconds since a node's last heartbeat.",
            ["node", "tier"],
        ),
        worker_restarts=Counter(
            name("worker_restarts"),
            "Worker processes that exited unexpectedly and were started again.",
            ["worker"],
        ),
    )


METRICS = _create()
"""The process's metrics (prometheus-client keeps one default registry per process)."""

_served: dict[str, int] = {}
_lock = threading.Lock()


def serve(host: str = "127.0.0.1", port: int = 0) -> int:
    """Serve ``/metrics`` for this process (once); returns the TCP port.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one (worker processes announce theirs on the
            registry). A process serves once: later calls return the first port.
    """
    with _lock:
        if host in _served:
            return _served[host]
        server, _thread = start_http_server(port, addr=host)
        bound = int(server.server_address[1])
        _served[host] = bound
        log.info("metrics at http://%s/metrics", address(host, bound))
        return bound


class Endpoint(NamedTuple):
    """Where other machines reach a process's ``/metrics``.

    Attributes:
        host: the announced host name or address (never a wildcard such as 0.0.0.0).
        port: the TCP port the server is bound to.
    """

    host: str
    port: int

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 literal in brackets: a Prometheus target."""
        return address(self.host, self.port)


def serve_announced(dataplane: DataPlaneSettings) -> Endpoint:
    """Serve ``/metrics`` as the settings say and return the endpoint to announce.

    Every process that announces where it is scraped (stage services on control.registry,
    the camera host's own target) goes through here, so that the listen address
    (``metrics_host``, ``metrics_port``) and the announced one (``metrics_advertise_host``)
    are resolved in one place.
    """
    source_label.limit = dataplane.metrics_max_sources
    port = serve(dataplane.metrics_host, dataplane.metrics_port)
    return Endpoint(dataplane.metrics_announced_host, port)


def observe_stage(stage: str, meta: FrameMeta, bytes_out: int) -> None:
    """A frame left ``stage``: its time inside and its CPU time there, and the bytes sent on."""
    quality = str(meta.quality)
    t_in, t_out = meta.stamps.get(f"{stage}.in"), meta.stamps.get(f"{stage}.out")
    if t_in is not None and t_out is not None:
        METRICS.stage_seconds.labels(stage, quality).observe(max(0, t_out - t_in) / 1e9)
    if stage in meta.busy_ns:
        METRICS.busy_seconds.labels(stage, quality).observe(meta.busy_ns[stage] / 1e9)
    METRICS.stage_bytes.labels(stage).inc(bytes_out)


OTHER_SOURCE = "other"
"""The ``source`` label value of every source past the process's first ``limit``."""


class SourceLabels:
    """The ``source`` label values of one process: the first ``limit`` sources, then "other".

    Prometheus keeps one series per label combination, and a histogram costs one per bucket:
    an unbounded source label would grow with every camera ever seen. Thread-safe (camera
    delivery callbacks run on librdkafka's thread).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, source: str) -> str:
        """``source`` itself while fewer than ``limit`` sources were seen, else ``other``."""
        if source in self._seen:
            return source
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(source)
                return source
        return OTHER_SOURCE


source_label = SourceLabels(DataPlaneSettings.model_fields["metrics_max_sources"].default)
"""This process's bounded source labels; :func:`serve_announced` sets its limit."""


def observe_camera(source: str, outcome: str, count: int = 1) -> None:
    """``count`` camera frames of ``source`` ended as ``outcome`` (produced, sampled, a drop)."""
    METRICS.camera_frames.labels(source_label(source), outcome).inc(count)


def observe_outcome(record: FrameRecord) -> None:
    """A frame ended: count it by stage, quality, outcome and reason, and its latency."""
    quality = str(record.quality)
    reason = record.policy.value if record.policy else record.reason or ""
    METRICS.frames.labels(record.stage, quality, record.outcome.value, reason).inc()
    if record.sequence >= 0:
        METRICS.end_to_end.labels(quality, record.outcome.value).observe(record.latency_s)
    if record.sequence >= 0 and record.outcome is Outcome.PROCESSED:
        METRICS.source_end_to_end.labels(source_label(record.source)).observe(record.latency_s)
    if record.tp is not None:
        source = source_label(record.source)
        METRICS.tp.labels(source, quality).inc(record.tp)
        METRICS.fp.labels(source, quality).inc(record.fp or 0)
        METRICS.fn.labels(source, quality).inc(record.fn or 0)
