"""The node agent's decisions: what placement asks of a node, and make-before-break."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tierflow.operators.planning.placement import place
from tierflow.operators.planning.workflow import pipeline_workflow
from tierflow.settings import Settings
from tierflow.streams.node import NodeAgent, NodeError, ServiceKey, changes, placed, whole
from tierflow.streams.placing import Placer, node_metrics
from tierflow.topics.records import NodeAnnouncement, PlacementRecord, parse_record
from tierflow.topics.stages import StageName

RESIZE = ServiceKey(StageName.RESIZE)
D416 = ServiceKey(StageName.DETECT, 416)
D512 = ServiceKey(StageName.DETECT, 512)
DRAW = ServiceKey(StageName.DRAW)


def _record(task: str, node: str, epoch: int) -> PlacementRecord:
    return PlacementRecord(
        instance=f"{task}#0", task=task, node=node, tier="edge", share=1.0, epoch=epoch, policy="t"
    )


def test_task_names_map_to_the_services_workers_run() -> None:
    assert ServiceKey.of_task("detect-416") == D416
    assert ServiceKey.of_task("resize") == RESIZE
    assert D416.name == "detect-416"
    with pytest.raises(NodeError, match="no tierflow stage"):
        ServiceKey.of_task("yolov4-416")


def test_only_the_newest_placement_counts() -> None:
    records = [_record("resize", "a", 1), _record("detect-416", "a", 2), _record("draw", "b", 2)]
    assert placed(records) == {"a": {D416}, "b": {DRAW}}


def test_a_placement_counts_only_once_all_its_records_arrived() -> None:
    """Half a placement would stop the services whose records are still on their way."""
    old = [_record(t, "a", 1) for t in ("resize", "detect-416", "draw")]
    new = [r.model_copy(update={"epoch": 2, "instances": 3}) for r in old]
    assert whole(old)  # records that do not say how many they are count as whole
    assert not whole([new[0], *old[1:]])
    assert not whole(new[:2])
    assert whole(new)


def test_a_research_task_no_stage_runs_is_skipped() -> None:
    assert placed([_record("shallow-filter", "a", 1), _record("draw", "a", 1)]) == {"a": {DRAW}}


def test_a_service_moving_away_stops_only_once_it_is_live_on_its_new_node() -> None:
    mine, running, everywhere = {RESIZE}, {RESIZE, D416}, {RESIZE, D416}
    assert changes(mine, running, everywhere, live_elsewhere=set()) == ([], [])
    assert changes(mine, running, everywhere, live_elsewhere={D416}) == ([], [D416])


def test_a_service_placed_nowhere_stops_at_once_and_a_new_one_starts() -> None:
    start, stop = changes({RESIZE, D512}, {RESIZE, D416}, {RESIZE, D512}, set())
    assert (start, stop) == ([D512], [D416])


def _node(name: str, tier: str, cores: float = 2.0) -> NodeAnnouncement:
    return NodeAnnouncement(
        node=name,
        tier=tier,
        cores=cores,
        memory_mb=24_000,
        storage_mb=50_000,
        used_cores=1.9,  # busy with the very services placed: placement must not count it
        heartbeat_ns=0,
        ttl_s=4.0,
    )


def test_the_pipeline_fits_one_two_core_machine_with_three_detectors() -> None:
    workflow = pipeline_workflow((320, 416, 512))
    result = place(workflow, [node_metrics(_node("here", "edge"))], "auto")
    assert result.policy == "requests"
    assert not result.unplaced
    assert {p.node for p in result.placements.values()} == {"here"}
    assert len(result.placements) == 5


def test_auto_runs_the_seed_algorithms_where_the_continuum_has_tiers() -> None:
    workflow = pipeline_workflow((416, 512))
    nodes = [node_metrics(_node("e", "edge")), node_metrics(_node("f", "fog", 8))]
    result = place(workflow, nodes, "auto")
    assert result.policy == "algorithms"
    assert result.placements["resize#0"].node == "e"
    assert {result.placements[f"detect-{q}#0"].node for q in (416, 512)} == {"f"}


def test_the_busy_cores_a_node_reports_are_not_subtracted_for_placement() -> None:
    node = _node("here", "edge")
    assert node.used_cores == pytest.approx(1.9)
    assert node_metrics(node).used.cores == 0


async def test_the_placer_publishes_on_node_changes_and_tombstones_what_it_dropped(
    settings: Settings,
) -> None:
    sent: list[tuple[bytes, bytes | None]] = []

    async def send(key: bytes, value: bytes | None) -> None:
        sent.append((key, value))

    control = settings.control.model_copy(update={"detect_qualities": (416, 512)})
    placer = Placer(settings.model_copy(update={"control": control}), send)
    assert await placer.place([_node("here", "edge")]) is not None
    first = {k for k, v in sent if v is not None}
    assert first == {b"resize#0", b"detect-416#0", b"detect-512#0", b"draw#0"}
    assert await placer.place([_node("here", "edge")]) is None  # same nodes: nothing new
    epoch = placer.epoch

    sent.clear()
    placer.workflow = pipeline_workflow((416,))
    assert await placer.place([_node("here", "edge"), _node("there", "edge")]) is not None
    assert placer.epoch > epoch
    assert (b"detect-512#0", None) in sent  # a tombstone: the compacted topic forgets it
    records = [parse_record(PlacementRecord, v) for _, v in sent if v is not None]
    assert {r.epoch for r in records} == {placer.epoch}


def test_a_placement_epoch_far_in_the_future_does_not_shadow_later_ones(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 11, fault 4 for placement: epochs are the placer's clock in ms, bounded."""
    agent = NodeAgent(settings, tmp_path)
    now_ms = time.time_ns() // 10**6
    forged = _record("detect-416", "elsewhere", 9 * 10**18)
    agent.placement.apply(forged.instance, forged)
    real = _record("detect-416", "here", now_ms)
    agent.placement.apply(real.instance, real)
    assert agent.placement.get(real.instance) == real
    assert agent.placement.refused == 1
    near = _record("detect-416", "there", now_ms + 1000)  # within the skew: a clock a bit ahead
    agent.placement.apply(near.instance, near)
    assert agent.placement.get(near.instance) == near
