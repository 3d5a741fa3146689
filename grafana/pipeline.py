"""The ``tierflow-pipeline`` dashboard: throughput, outcomes, latency and Kafka lag.

Frames in and out per stage, end-to-end and per-stage latency p50/p99, drops by policy,
batch sizes, consumer lag in seconds and records.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from tierflow.grafana.panels import (
    COUNT,
    FPS,
    FRAMES,
    SECONDS,
    Query,
    board,
    graph,
    single_stat,
    thresholds,
)
from tierflow.grafana.promql import aggregate, mean, or_zero, quantile, selector, sum_rate
from tierflow.grafana.shared import DEADLINE_S, NOT_PRODUCED, PROCESSED, PRODUCED, SLO_P99_S


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
                Query(
                    sum_rate("tierflow_undrawn_frames_total"),
                    "processed, not drawn (draw behind its lag bound)",
                ),
                Query(
                    or_zero(sum_rate("tierflow_repeat_outcomes_total", ("stage",)), "stage"),
                    "redelivered, outcome kept: {{stage}}",
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
            "End-to-end latency p50 / p99 by source",
            "Capture to annotated frame of processed frames, per camera. Past "
            "dataplane.metrics_max_sources sources a process counts the rest as 'other'.",
            SECONDS,
            [
                Query(
                    quantile(0.5, "tierflow_source_end_to_end_seconds", ("source",)),
                    "p50 {{source}}",
                ),
                Query(
                    quantile(0.99, "tierflow_source_end_to_end_seconds", ("source",)),
                    "p99 {{source}}",
                ),
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
            "Wait in front of each stage p99",
            "Seconds frames sat in the topic before a stage took them: the lag each stage "
            "bounds (dataplane.max_lag_s).",
            SECONDS,
            [Query(quantile(0.99, "tierflow_stage_wait_seconds", ("stage",)), "p99 {{stage}}")],
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
        aggregate(
            "max", ("group", "topic", "partition"), selector("tierflow_consumer_lag_messages")
        ),
    )
    kafka = [
        graph(
            "Consumer lag (seconds)",
            "Age of the record each consumer group is working on, oldest partition per topic.",
            SECONDS,
            [
                Query(
                    aggregate("max", ("group", "topic"), selector("tierflow_consumer_lag_seconds")),
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
