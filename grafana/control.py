"""The ``tierflow-control`` dashboard: quality assignment, accuracy, the plan and the solver.

Quality per camera, F1 against a_min, the plan's utility and estimates, solver time,
decisions, assignment epochs, live services (DESIGN.md, control plane; eq. 5-6 of the paper
for utility and the accuracy floor).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from tierflow.grafana.panels import (
    COUNT,
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
)
from tierflow.grafana.promql import aggregate, own_labels, quantile, selector, sum_rate
from tierflow.grafana.shared import PROCESSED

CONTROL_INTERVAL = "30s"
"""Minimum query step of panels over counters that move once per control slot (10 s by
default): ``$__rate_interval`` then spans about three decisions instead of often none."""


def _f1() -> str:
    """F1 per source and quality from the audit counters: 2·tp / (2·tp + fp + fn)."""

    def counted(kind: str) -> str:
        return sum_rate(f"tierflow_detections_{kind}_total", ("source", "quality"))

    return f"2 * {counted('tp')} / (2 * {counted('tp')} + {counted('fp')} + {counted('fn')})"


def control() -> dashboard.Dashboard:
    """Control: quality assignment, accuracy against the floor, the plan and the solver."""
    a_min = aggregate("max", (), selector("tierflow_control_a_min"))
    utility = aggregate("max", (), selector("tierflow_control_estimate", 'quantity="utility"'))
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
            Query(aggregate("max", (), selector("tierflow_assignment_epoch")), "epoch"),
            mappings=[no_epoch],
        ),
    ]
    quality = [
        graph(
            "Quality per camera",
            "The capture quality each camera follows.",
            PIXELS,
            [
                Query(
                    aggregate("max", ("source",), selector("tierflow_camera_quality_pixels")),
                    "{{source}}",
                )
            ],
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
                    aggregate(
                        "max", (), selector("tierflow_control_estimate", 'quantity="accuracy"')
                    ),
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
                    aggregate(
                        "max",
                        (),
                        selector("tierflow_control_estimate", 'quantity="latency_seconds"'),
                    ),
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
            Query(aggregate("max", ("source",), selector("tierflow_camera_epoch")), "{{source}}"),
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
