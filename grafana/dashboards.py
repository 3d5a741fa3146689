"""tierflow's Grafana dashboards, generated from code with grafana-foundation-sdk.

Three dashboards over the metrics of :mod:`streams.metrics` (plus prometheus-client's
``process_*`` series), all reading the Prometheus data source provisioned with uid
``tierflow-prometheus``:

* ``tierflow-pipeline`` — frames in and out per stage, end-to-end and per-stage latency
  p50/p99, drops by policy, batch sizes, consumer lag in seconds and records;
* ``tierflow-control`` — quality per camera, F1 against a_min, the plan's utility and
  estimates, solver time, decisions, assignment epochs, live services (DESIGN.md, control
  plane; eq. 5-6 of the paper for utility and the accuracy floor);
* ``tierflow-tiers`` — CPU and memory per node, tier and service, node cores, link usage
  (frame bits per second each stage sends on), node heartbeat age.

``python -m tierflow.grafana`` writes them to ``grafana/dashboards/*.json``
(:func:`write_dashboards`); a test keeps the committed files equal to what this module
generates.
:func:`panel_queries` lists every expression, with Grafana's variables made concrete, for
a test that evaluates them against a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard, prometheus

from tierflow.grafana.panels import (
    BITS_PER_SECOND,
    BYTES,
    CORES,
    COUNT,
    FPS,
    FRAMES,
    PER_MINUTE,
    PIXELS,
    RATIO,
    SECONDS,
    TIME_SINCE,
    UNITLESS,
    Query,
    board,
    graph,
    single_stat,
    thresholds,
)
from tierflow.grafana.promql import (
    TIERFLOW_JOB,
    aggregate,
    concrete,
    mean,
    or_zero,
    own_labels,
    quantile,
    rate,
    selector,
    sum_rate,
)
from tierflow.settings import ControlSettings, DataPlaneSettings

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
"""Where the generated JSON files live (the provisioning's file provider reads a copy)."""

DEFAULT_RATE_INTERVAL = "30s"
"""What :func:`panel_queries` puts for ``$__rate_interval``: 15 scrapes at 2 s."""

CONTROL_INTERVAL = "30s"
"""Minimum query step of panels over counters that move once per control slot (10 s by
default): ``$__rate_interval`` then spans about three decisions instead of often none."""

PROCESSED = 'outcome="processed"'
PRODUCED = 'outcome="produced"'
NOT_PRODUCED = 'outcome!="produced"'  # a camera's drop policies
NODE_LABELS = ("node", "tier")


def _default(model: type[ControlSettings | DataPlaneSettings], field: str) -> float:
    """A setting's default: thresholds follow the code's defaults, not one machine's env."""
    return float(model.model_fields[field].default)


SLO_P99_S = _default(ControlSettings, "slo_p99_s")
DEADLINE_S = _default(DataPlaneSettings, "deadline_s")
MAX_UTILISATION = _default(ControlSettings, "max_utilisation")
HEARTBEAT_S = _default(DataPlaneSettings, "heartbeat_s")
REGISTRY_TTL_S = _default(DataPlaneSettings, "registry_ttl_s")


def _node_gauge(metric: str) -> str:
    """A per-node gauge the control agent exports, one series per node (see own_labels)."""
    return aggregate("max", ("tier", "node"), own_labels(metric, NODE_LABELS))


def pipeline() -> dashboard.Dashboard:
    """Pipeline overview: throughput, outcomes, latency and Kafka lag."""
    camera_fps = sum_rate("tierflow_camera_frames_total", matchers=PRODUCED)
    not_processed = sum_rate("tierflow_frames_total", matchers='outcome!="processed"')
    camera_drops = sum_rate("tierflow_camera_frames_total", matchers=NOT_PRODUCED)
    e2e = "tierflow_end_to_end_seconds"
    latency_colours = thresholds((None, "green"), (SLO_P99_S, "orange"), (DEADLINE_S, "red"))
    now = [
        single_stat(
            "Camera frames produced",
            "Frames the cameras delivered to Kafka.",
            FPS,
            Query(camera_fps, "cameras"),
        ),
        single_stat(
            "Frames processed",
            "Frames that left draw annotated.",
            FPS,
            Query(sum_rate("tierflow_frames_total", matchers=PROCESSED), "processed"),
        ),
        single_stat(
            "End-to-end p99",
            "Capture to annotated frame, all qualities. Orange from the control agent's SLO, "
            "red from the drop deadline.",
            SECONDS,
            Query(quantile(0.99, e2e, matchers=PROCESSED), "p99"),
            colours=latency_colours,
        ),
        single_stat(
            "Frames lost",
            "Frames dropped by a policy or dead-lettered, in the pipeline or at the cameras. "
            "Orange, not red: dropping stale frames under load is the policy working.",
            FPS,
            Query(f"({not_processed} or vector(0)) + ({camera_drops} or vector(0))", "lost"),
            colours=thresholds((None, "green"), (0.001, "orange")),
        ),
    ]
    throughput = [
        graph(
            "Frames in per stage",
            "Frames entering each stage, and what the cameras produce.",
            FPS,
            [
                Query(sum_rate("tierflow_stage_frames_total", ("stage",)), "{{stage}}"),
                Query(camera_fps, "cameras (produced)", reference=True),
            ],
        ),
        graph(
            "Frames out by outcome",
            "Every frame ends once: processed, dropped by a named policy, or dead-lettered.",
            FPS,
            [Query(sum_rate("tierflow_frames_total", ("outcome",)), "{{outcome}}")],
        ),
        graph(
            "Drops by policy, and deadletters",
            "Deliberate drops by policy in the pipeline and at the cameras, and malformed "
            "input. A flat 'none' series means nothing was lost.",
            FPS,
            [
                Query(
                    or_zero(
                        sum_rate("tierflow_frames_total", ("reason",), 'outcome="dropped"'),
                        "reason",
                    ),
                    "dropped: {{reason}}",
                ),
                Query(
                    or_zero(
                        sum_rate("tierflow_camera_frames_total", ("outcome",), NOT_PRODUCED),
                        "outcome",
                    ),
                    "camera: {{outcome}}",
                ),
                Query(
                    or_zero(
                        sum_rate("tierflow_frames_total", ("stage",), 'outcome="deadletter"'),
                        "stage",
                    ),
                    "deadletter: {{stage}}",
                ),
            ],
        ),
        graph(
            "Camera frames by source",
            "Per camera: frames produced, and frames the camera dropped (by policy).",
            FPS,
            [
                Query(
                    sum_rate("tierflow_camera_frames_total", ("source", "outcome")),
                    "{{source}} {{outcome}}",
                ),
            ],
        ),
    ]
    latency = [
        graph(
            "End-to-end latency p50 / p99 by quality",
            "Capture to annotated frame of processed frames, per capture quality.",
            SECONDS,
            [
                Query(quantile(0.5, e2e, ("quality",), PROCESSED), "p50 @{{quality}}"),
                Query(quantile(0.99, e2e, ("quality",), PROCESSED), "p99 @{{quality}}"),
            ],
            limits=latency_colours,
        ),
        graph(
            "Stage latency p50 / p99",
            "Time inside each stage, queueing included.",
            SECONDS,
            [
                Query(quantile(0.5, "tierflow_stage_seconds", ("stage",)), "p50 {{stage}}"),
                Query(quantile(0.99, "tierflow_stage_seconds", ("stage",)), "p99 {{stage}}"),
            ],
        ),
        graph(
            "CPU time per frame by stage",
            "Mean CPU seconds a stage spends on one frame (for detect: a batch's CPU time "
            "divided among its frames).",
            SECONDS,
            [Query(mean("tierflow_stage_busy_seconds", ("stage",)), "{{stage}}")],
        ),
        graph(
            "Inference batch size",
            "Frames per inference call, per detector quality.",
            FRAMES,
            [
                Query(quantile(0.5, "tierflow_batch_frames", ("quality",)), "p50 @{{quality}}"),
                Query(quantile(0.99, "tierflow_batch_frames", ("quality",)), "p99 @{{quality}}"),
                Query(mean("tierflow_batch_frames", ("quality",)), "mean @{{quality}}"),
            ],
            min_value=0,
        ),
    ]
    # A partition's lag may still be exported by its previous owner after a rebalance:
    # take the largest report per partition, then add partitions up.
    lag_records = aggregate(
        "sum",
        ("group", "topic"),
        aggregate("max", ("group", "topic", "partition"), "tierflow_consumer_lag_messages"),
    )
    kafka = [
        graph(
            "Consumer lag (seconds)",
            "Age of the record each consumer group is working on, oldest partition per topic.",
            SECONDS,
            [
                Query(
                    aggregate("max", ("group", "topic"), "tierflow_consumer_lag_seconds"),
                    "{{topic}} ({{group}})",
                ),
            ],
        ),
        graph(
            "Consumer lag (records)",
            "Records between each group's position and the high watermark, summed over partitions.",
            COUNT,
            [Query(lag_records, "{{topic}} ({{group}})")],
        ),
    ]
    return board(
        "tierflow-pipeline",
        "tierflow: pipeline overview",
        "Frames in and out, latency per stage and end to end, drops, Kafka lag.",
        [
            ("Now", now),
            ("Throughput and outcomes", throughput),
            ("Latency", latency),
            ("Kafka consumers", kafka),
        ],
    )


def _f1() -> str:
    """F1 per source and quality from the audit counters: 2·tp / (2·tp + fp + fn)."""

    def counted(kind: str) -> str:
        return sum_rate(f"tierflow_detections_{kind}_total", ("source", "quality"))

    return f"2 * {counted('tp')} / (2 * {counted('tp')} + {counted('fp')} + {counted('fn')})"


def control() -> dashboard.Dashboard:
    """Control: quality assignment, accuracy against the floor, the plan and the solver."""
    a_min = "max(tierflow_control_a_min)"
    utility = 'max(tierflow_control_estimate{quantity="utility"})'
    solver = "tierflow_solver_seconds"
    # Epochs are wall-clock milliseconds (streams/control.py), so they read as "time since";
    # a camera that never received an assignment still reports epoch 0.
    no_epoch = dashboard.ValueMap(options={"0": dashboard.ValueMappingResult(text="none yet")})
    now = [
        single_stat(
            "Accuracy floor a_min",
            "The long-term accuracy the plan must keep (eq. 6).",
            RATIO,
            Query(a_min, "a_min"),
        ),
        single_stat(
            "Planned utility",
            "U = a - Θ·T of the current plan (eq. 5).",
            UNITLESS,
            Query(utility, "utility"),
            decimals=3,
        ),
        single_stat(
            "Solver time p99",
            "HiGHS time per decision, all policies.",
            SECONDS,
            Query(quantile(0.99, solver), "p99"),
            min_interval=CONTROL_INTERVAL,
        ),
        single_stat(
            "Last assignment",
            "When the control agent last published assignments.",
            TIME_SINCE,
            Query("max(tierflow_assignment_epoch)", "epoch"),
            mappings=[no_epoch],
        ),
    ]
    quality = [
        graph(
            "Quality per camera",
            "The capture quality each camera follows.",
            PIXELS,
            [Query(aggregate("max", ("source",), "tierflow_camera_quality_pixels"), "{{source}}")],
            steps=True,
        ),
        graph(
            "F1 against a_min",
            "Measured F1 per source and quality (IoU ≥ 0.5 against ground truth), the floor "
            "a_min and the plan's estimated accuracy (dashed).",
            RATIO,
            [
                Query(_f1(), "{{source}} @{{quality}}"),
                Query(a_min, "a_min", reference=True),
                Query(
                    'max(tierflow_control_estimate{quantity="accuracy"})',
                    "plan estimate",
                    reference=True,
                ),
            ],
            min_value=0,
            max_value=1,
        ),
    ]
    plan = [
        graph(
            "Utility (plan estimate)",
            "U = a - Θ·T of each decision's plan (eq. 5).",
            UNITLESS,
            [Query(utility, "utility")],
            steps=True,
        ),
        graph(
            "Latency: plan estimate vs measured",
            "The plan's estimated latency (dashed) against measured end-to-end latency of "
            "processed frames.",
            SECONDS,
            [
                Query(
                    'max(tierflow_control_estimate{quantity="latency_seconds"})',
                    "plan estimate",
                    reference=True,
                ),
                Query(
                    quantile(0.5, "tierflow_end_to_end_seconds", matchers=PROCESSED), "measured p50"
                ),
                Query(
                    quantile(0.99, "tierflow_end_to_end_seconds", matchers=PROCESSED),
                    "measured p99",
                ),
            ],
        ),
        graph(
            "Solver time p50 / p99",
            "HiGHS time per decision, per policy.",
            SECONDS,
            [
                Query(quantile(0.5, solver, ("policy",)), "p50 {{policy}}"),
                Query(quantile(0.99, solver, ("policy",)), "p99 {{policy}}"),
            ],
            min_interval=CONTROL_INTERVAL,
        ),
        graph(
            "Decisions by status",
            "Control decisions per minute by solver status and the rule that chose the assignment.",
            PER_MINUTE,
            [
                Query(
                    f"60 * {sum_rate('tierflow_solver_decisions_total', ('status', 'rule'))}",
                    "{{status}} ({{rule}})",
                ),
            ],
            min_interval=CONTROL_INTERVAL,
        ),
    ]
    services = [
        graph(
            "Live services",
            "Services heart-beating on control.registry, as the control agent sees them, per "
            "stage and quality.",
            COUNT,
            [
                Query(
                    aggregate(
                        "max",
                        ("stage", "quality"),
                        own_labels("tierflow_registry_services", ("stage",)),
                    ),
                    "{{stage}} {{quality}}",
                ),
            ],
            steps=True,
            min_value=0,
        ),
        single_stat(
            "Assignment epoch per camera",
            "When the assignment each camera follows was published.",
            TIME_SINCE,
            Query(aggregate("max", ("source",), "tierflow_camera_epoch"), "{{source}}"),
            mappings=[no_epoch],
            span=12,
            height=8,
        ),
    ]
    return board(
        "tierflow-control",
        "tierflow: control",
        "Quality per camera, F1 against a_min, the plan's utility and estimates, "
        "solver time, decisions and live services.",
        [
            ("Now", now),
            ("Quality and accuracy", quality),
            ("Plan and solver", plan),
            ("Assignments and services", services),
        ],
    )


def tiers() -> dashboard.Dashboard:
    """Tiers and nodes: CPU, memory, node cores, link usage, heartbeats."""
    cpu = rate("process_cpu_seconds_total", TIERFLOW_JOB)
    memory = selector("process_resident_memory_bytes", TIERFLOW_JOB)
    cores = _node_gauge("tierflow_node_cores")
    used = _node_gauge("tierflow_node_used_cores")
    now = [
        single_stat(
            "Nodes", "Nodes announced on control.nodes.", COUNT, Query(f"count({cores})", "nodes")
        ),
        single_stat(
            "Node cores", "Cores of all announced nodes.", CORES, Query(f"sum({cores})", "cores")
        ),
        single_stat(
            "Node cores in use",
            "Busy cores of all nodes (load average).",
            CORES,
            Query(f"sum({used})", "in use"),
        ),
        single_stat(
            "tierflow CPU",
            "CPU used by all tierflow processes.",
            CORES,
            Query(aggregate("sum", (), cpu), "tierflow"),
        ),
    ]
    cpu_panels = [
        graph(
            "tierflow CPU per node",
            "CPU used by tierflow's processes on each node.",
            CORES,
            [Query(aggregate("sum", ("tier", "node"), cpu), "{{tier}}/{{node}}")],
        ),
        graph(
            "tierflow CPU per service",
            "CPU used by each service (all its instances).",
            CORES,
            [Query(aggregate("sum", ("service",), cpu), "{{service}}")],
        ),
        graph(
            "Node cores: announced and in use",
            "Cores each node announces (dashed) and how many are busy.",
            CORES,
            [
                Query(used, "{{tier}}/{{node}} in use"),
                Query(cores, "{{tier}}/{{node}} cores", reference=True),
            ],
            min_value=0,
        ),
        graph(
            "Node load",
            "Busy cores over cores per node; the dashed line is the placement's utilisation limit.",
            RATIO,
            [Query(f"{used} / {cores}", "{{tier}}/{{node}}")],
            min_value=0,
            limits=thresholds((None, "green"), (MAX_UTILISATION, "red")),
        ),
    ]
    memory_panels = [
        graph(
            "Resident memory per node",
            "Resident memory of tierflow's processes per node.",
            BYTES,
            [Query(aggregate("sum", ("tier", "node"), memory), "{{tier}}/{{node}}")],
        ),
        graph(
            "Resident memory per service",
            "Resident memory per service (all instances).",
            BYTES,
            [Query(aggregate("sum", ("service",), memory), "{{service}}")],
        ),
    ]
    links = [
        graph(
            "Link usage per stage",
            "Frame bits per second each stage sends on to the next "
            "(the link to the next tier when it runs elsewhere).",
            BITS_PER_SECOND,
            [
                Query(
                    f"8 * {sum_rate('tierflow_stage_bytes_total', ('tier', 'stage'))}",
                    "{{tier}} {{stage}}",
                ),
            ],
        ),
        graph(
            "Frames per tier and stage",
            "Frames entering each stage, by the tier it runs on.",
            FPS,
            [
                Query(
                    sum_rate("tierflow_stage_frames_total", ("tier", "stage")), "{{tier}} {{stage}}"
                ),
            ],
        ),
        graph(
            "Node heartbeat age",
            "Seconds since each node's last announcement. Orange "
            "after two missed heartbeats, red once the registry forgets it.",
            SECONDS,
            [Query(_node_gauge("tierflow_node_heartbeat_age_seconds"), "{{tier}}/{{node}}")],
            min_value=0,
            limits=thresholds(
                (None, "green"), (2 * HEARTBEAT_S, "orange"), (REGISTRY_TTL_S, "red")
            ),
        ),
    ]
    return board(
        "tierflow-tiers",
        "tierflow: tiers and nodes",
        "CPU, memory and cores per node and tier, link usage per stage, heartbeats.",
        [
            ("Now", now),
            ("CPU", cpu_panels),
            ("Memory", memory_panels),
            ("Links and heartbeats", links),
        ],
    )


def build_dashboards() -> list[dashboard.Dashboard]:
    """Every tierflow dashboard, built with the SDK's builders."""
    return [pipeline(), control(), tiers()]


def to_json(model: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON model: stable key order, trailing newline."""
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write each dashboard to ``out_dir/<uid>.json``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model in build_dashboards():
        path = out_dir / f"{model.uid}.json"
        path.write_text(to_json(model), encoding="utf-8")
        written.append(path)
    return written


class PanelQuery(NamedTuple):
    """One target of one panel."""

    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str


def panel_queries(rate_interval: str | None = DEFAULT_RATE_INTERVAL) -> list[PanelQuery]:
    """Every PromQL expression of every dashboard, in dashboard and panel order.

    Args:
        rate_interval: what ``$__rate_interval`` becomes, so the expressions can be sent to
            Prometheus's HTTP API as they are; ``None`` keeps Grafana's variables.
    """
    queries = []
    for model in build_dashboards():
        for panel in model.panels or []:
            if not isinstance(panel, dashboard.Panel):
                continue  # a row: no targets of its own (its panels follow it, expanded)
            for target in panel.targets or []:
                if not isinstance(target, prometheus.Dataquery):
                    continue
                expr = (
                    target.expr if rate_interval is None else concrete(target.expr, rate_interval)
                )
                queries.append(PanelQuery(str(model.uid), str(panel.title), target.ref_id, expr))
    return queries
