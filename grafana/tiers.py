"""The ``tierflow-tiers`` dashboard: CPU, memory, cores and links per node and tier.

CPU and memory per node, tier and service, node cores, link usage (frame bits per second
each stage sends on), node heartbeat age.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from tierflow.grafana.panels import (
    BITS_PER_SECOND,
    BYTES,
    CORES,
    COUNT,
    FPS,
    PER_MINUTE,
    RATIO,
    SECONDS,
    Query,
    board,
    graph,
    single_stat,
    thresholds,
)
from tierflow.grafana.promql import TIERFLOW_JOB, aggregate, own_labels, rate, selector, sum_rate
from tierflow.grafana.shared import HEARTBEAT_S, MAX_UTILISATION, REGISTRY_TTL_S

NODE_LABELS = ("node", "tier")


def _node_gauge(metric: str) -> str:
    """A per-node gauge the control agent exports, one series per node (see own_labels)."""
    return aggregate("max", ("tier", "node"), own_labels(metric, NODE_LABELS))


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
        graph(
            "Worker restarts",
            "Workers a node agent started again after they exited on their own "
            "(a crash; the first restart is at once, then with a doubling backoff).",
            PER_MINUTE,
            [
                Query(
                    f"60 * {sum_rate('tierflow_worker_restarts_total', ('worker',))}", "{{worker}}"
                )
            ],
            min_value=0,
        ),
    ]
    return board(
        "tierflow-tiers",
        "tierflow: tiers and nodes",
        "CPU, memory and cores per node and tier, link usage per stage, heartbeats, restarts.",
        [
            ("Now", now),
            ("CPU", cpu_panels),
            ("Memory", memory_panels),
            ("Links, heartbeats and restarts", links),
        ],
    )
