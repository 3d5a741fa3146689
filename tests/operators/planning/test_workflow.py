"""The workflow description: the paper's default use case and validation that names fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tierflow.errors import TierflowError
from tierflow.operators.planning.workflow import (
    NodeMetrics,
    Resources,
    Stage,
    TaskType,
    Tier,
    WorkflowError,
    default_workflow,
    load_workflow,
    loads_workflow,
)

MINIMAL = """
[workflow]
name = "mini"

[sources]
tier = "edge"

[[tasks]]
name = "pre"
stage = "pre-processing"
type = "pre-processing"
requires = { cores = 1, memory_mb = 100 }

[[tasks]]
name = "model"
stage = "analysis"
type = "model"
model = "yolo"
quality = 416
after = ["pre"]
requires = { cores = 2, memory_mb = 1000 }

[[tiers]]
name = "edge"
nodes = 2
cores = 1
memory_mb = 2048

[[tiers]]
name = "cloud"
nodes = 1
cores = 8
memory_mb = 65536

[[links]]
between = ["edge", "edge"]
delay_ms = 1
bandwidth_mbps = 1000

[[links]]
between = ["edge", "cloud"]
delay_ms = 10
bandwidth_mbps = 100
"""


def test_default_workflow_is_the_papers_use_case() -> None:
    workflow = default_workflow()
    assert [task.name for task in workflow.tasks] == ["resize", "detect-416", "detect-512", "draw"]
    resize, d416, d512, draw = workflow.tasks
    assert (resize.stage, resize.type, resize.instances) == (
        Stage.PRE,
        TaskType.PRE_PROCESSING,
        11,
    )
    assert (d416.model, d416.quality, d512.model, d512.quality) == ("yolov4", 416, "yolov4", 512)
    assert draw.type is TaskType.STORAGE and draw.after == ("detect-416", "detect-512")
    assert (workflow.sources.count, workflow.sources.fps, workflow.sources.quality) == (19, 25, 512)
    assert workflow.min_share == 0.5


def test_default_workflow_carries_table_one() -> None:
    tiers = {spec.tier: spec for spec in default_workflow().tiers}
    assert {tier: spec.nodes for tier, spec in tiers.items()} == {
        Tier.EDGE: 11,
        Tier.FOG: 2,
        Tier.CLOUD: 1,
    }
    assert tiers[Tier.EDGE].capacity == Resources(1, 2048, 0, 2000)
    assert tiers[Tier.FOG].capacity == Resources(4, 32768, 0, 20000)
    assert tiers[Tier.CLOUD].capacity == Resources(8, 65536, 0, 500000)


@pytest.mark.parametrize(
    ("a", "b", "delay_ms", "bandwidth_mbps"),
    [
        (Tier.EDGE, Tier.EDGE, 1, 1000),
        (Tier.FOG, Tier.FOG, 1, 1000),
        (Tier.CLOUD, Tier.CLOUD, 1, 10000),
        (Tier.EDGE, Tier.FOG, 4, 30),
        (Tier.CLOUD, Tier.FOG, 5, 10000),
    ],
)
def test_default_workflow_carries_table_two(
    a: Tier, b: Tier, delay_ms: float, bandwidth_mbps: float
) -> None:
    link = default_workflow().link(a, b)
    assert link is not None
    assert (link.delay_ms, link.bandwidth_mbps) == (delay_ms, bandwidth_mbps)


def test_edge_to_cloud_transfer_is_relayed_through_the_fog_as_in_eq_2() -> None:
    workflow = default_workflow()
    assert workflow.link(Tier.EDGE, Tier.CLOUD) is None
    mbit = workflow.frame_mbit(512)
    assert mbit == pytest.approx(2.1 * 512 * 512 / 1e6)
    expected = (4 + 1000 * mbit / 30) + (5 + 1000 * mbit / 10000)
    assert workflow.transfer_ms(Tier.EDGE, Tier.CLOUD, mbit) == pytest.approx(expected)
    assert workflow.transfer_ms(Tier.CLOUD, Tier.EDGE, mbit) == pytest.approx(expected)


def test_input_quality_follows_models_and_sources() -> None:
    workflow = default_workflow()
    assert workflow.input_quality(workflow.task("resize")) == 512
    assert workflow.input_quality(workflow.task("detect-416")) == 416
    assert workflow.input_quality(workflow.task("draw")) == 512
    assert workflow.successors("resize") == ("detect-416", "detect-512")


def test_nodes_expand_the_tiers_with_metrics_seen_from_the_sources() -> None:
    nodes = default_workflow().nodes()
    assert len(nodes) == 14
    by_tier = {node.tier: node for node in nodes}
    assert (by_tier[Tier.EDGE].latency_ms, by_tier[Tier.EDGE].bandwidth_mbps) == (1, 1000)
    assert (by_tier[Tier.FOG].latency_ms, by_tier[Tier.FOG].bandwidth_mbps) == (4, 30)
    # Edge -> Cloud: both hops' delays; the 30 Mbit/s Edge-Fog link is the bottleneck.
    assert (by_tier[Tier.CLOUD].latency_ms, by_tier[Tier.CLOUD].bandwidth_mbps) == (9, 30)
    assert [node.node for node in nodes if node.tier is Tier.FOG] == ["fog-0", "fog-1"]


def test_node_free_resources_subtract_what_is_used() -> None:
    node = NodeMetrics("n", Tier.FOG, cores=4, memory_mb=1000, used=Resources(1.5, 200))
    assert node.free.cores == 2.5 and node.free.memory_mb == 800


def test_workflow_objects_are_frozen() -> None:
    workflow = default_workflow()
    with pytest.raises(dataclasses.FrozenInstanceError):
        workflow.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        workflow.tasks[0].instances = 3  # type: ignore[misc]


def test_minimal_workflow_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mini.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    workflow = load_workflow(path)
    assert workflow.name == "mini" and len(workflow.tasks) == 2
    assert workflow.bits_per_pixel == 2.1 and workflow.min_share == 0.5
    # Edge and Cloud are linked directly here: no Fog relay.
    assert workflow.route(Tier.EDGE, Tier.CLOUD) == (workflow.link(Tier.EDGE, Tier.CLOUD),)


def test_tasks_are_put_in_topological_order() -> None:
    text = MINIMAL.replace(
        '[[tasks]]\nname = "pre"', '[[tasks]]\nname = "pre"\nafter = []', 1
    ).split("[[tasks]]")
    # Swap the two task tables: the model now comes first in the file.
    swapped = text[0] + "[[tasks]]" + text[2].split("[[tiers]]")[0] + "[[tasks]]" + text[1]
    swapped += "[[tiers]]" + text[2].split("[[tiers]]", 1)[1]
    workflow = loads_workflow(swapped)
    assert [task.name for task in workflow.tasks] == ["pre", "model"]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            "cores = 1, memory_mb = 100",
            'cores = "four", memory_mb = 100',
            "tasks[0].requires.cores",
        ),
        ("cores = 1, memory_mb = 100", "cores = 1, memory = 100", "tasks[0].requires.memory"),
        ("cores = 1, memory_mb = 100", "cores = -1, memory_mb = 100", "tasks[0].requires.cores"),
        ("cores = 1, memory_mb = 100", "cores = 0, memory_mb = 100", "tasks[0].requires.cores"),
        ('stage = "pre-processing"', 'stage = "analysis"', "tasks[0].stage"),
        ('type = "pre-processing"', 'type = "preprocessing"', "tasks[0].type"),
        ('name = "pre"\n', 'name = "pre"\ninstanses = 2\n', "tasks[0].instanses"),
        ('name = "pre"\n', 'name = "pre"\ninstances = 0\n', "tasks[0].instances"),
        ("quality = 416\n", "", "tasks[1].quality"),
        ('model = "yolo"\n', "", "tasks[1].model"),
        ('after = ["pre"]', 'after = ["pree"]', "tasks[1].after"),
        ('after = ["pre"]', 'after = "pre"', "tasks[1].after"),
        ('name = "model"', 'name = "pre"', "tasks[1].name"),
        ('name = "pre"\n', 'name = "pre"\nafter = ["model"]\n', "tasks"),
        ('name = "edge"\nnodes = 2', 'name = "mist"\nnodes = 2', "tiers[0].name"),
        ("nodes = 2", "nodes = 2.5", "tiers[0].nodes"),
        ('between = ["edge", "cloud"]', 'between = ["edge", "fog"]', "links"),
        ('between = ["edge", "cloud"]', 'between = ["edge"]', "links[1].between"),
        (
            "delay_ms = 10\nbandwidth_mbps = 100",
            "delay_ms = 10\nbandwidth_mbps = 0",
            "links[1].bandwidth_mbps",
        ),
        ('name = "mini"', 'name = "mini"\nmin_share = 1.5', "workflow.min_share"),
        ('name = "mini"', 'name = "mini"\ngamma = 2', "workflow.gamma"),
        ('tier = "edge"', 'tier = "edge"\ncount = 0', "sources.count"),
        ("[sources]", "[source]", "source"),
        ('name = "mini"', "name = 3", "workflow.name"),
        ('name = "mini"', 'name = "mini"\n[oops', "(syntax)"),
    ],
)
def test_validation_errors_name_the_field(old: str, new: str, field: str) -> None:
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(text, "mini.toml")
    assert caught.value.field == field
    assert f"mini.toml: {field}: " in str(caught.value)


def test_unknown_field_error_lists_the_expected_ones() -> None:
    text = MINIMAL.replace("cores = 1, memory_mb = 100", "cores = 1, ram_mb = 100", 1)
    with pytest.raises(WorkflowError, match=r"unknown field \(expected one of .*memory_mb"):
        loads_workflow(text)


def test_missing_tasks_array_is_named() -> None:
    text = MINIMAL.split("[[tasks]]")[0] + "[[tiers]]" + MINIMAL.split("[[tiers]]", 1)[1]
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(text)
    assert caught.value.field == "tasks"


def test_unreadable_file_is_a_workflow_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(tmp_path / "missing.toml")
    assert caught.value.field == "(file)"
    assert isinstance(caught.value, TierflowError)
