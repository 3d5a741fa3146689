"""The thesis's back end on a deployment: provisioning by demand, Mode 1 and Mode 2 eviction."""

from __future__ import annotations

import pytest

from tierflow.operators.planning.placement import (
    LoadedModel,
    Mode,
    PlacementError,
    provision,
)
from tierflow.operators.planning.workflow import NodeMetrics, Tier, pipeline_workflow

WORKFLOW = pipeline_workflow((320, 416, 512))
ALWAYS = {"resize", "draw"}
# resize and draw take 256 MB each, a detector 1024 MB: room for two detectors.
SMALL = NodeMetrics("edge", Tier.EDGE, cores=2.0, memory_mb=2 * 256 + 2 * 1024 + 100)


def _loaded(**last: float) -> dict[str, list[LoadedModel]]:
    """resize and draw in use now (t = 100), and detectors last used at the given times."""
    models = [LoadedModel("resize", 100.0, 500), LoadedModel("draw", 100.0, 500)]
    models += [LoadedModel(name.replace("_", "-"), t, 10) for name, t in last.items()]
    return {"edge": models}


def _on_edge(result: object) -> set[str]:
    placements = getattr(result, "placements", {})
    return {p.task for p in placements.values() if p.node == "edge"}


def test_a_demanded_model_is_loaded_and_nothing_else() -> None:
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-416"}, {})
    assert _on_edge(out.result) == {"resize", "detect-416", "draw"}
    assert ("edge", "detect-416") in out.plan.load
    assert out.plan.unload == ()
    assert out.result.unplaced == ()


def test_mode_1_keeps_an_idle_model_while_memory_lasts() -> None:
    loaded = _loaded(detect_320=10.0)
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-416"}, loaded, mode=Mode.AVAILABLE)
    assert _on_edge(out.result) == {"resize", "detect-320", "detect-416", "draw"}
    assert out.kept == (("edge", "detect-320"),)
    assert out.plan.unload == ()


def test_mode_1_evicts_the_least_recently_used_idle_model_when_memory_runs_out() -> None:
    loaded = _loaded(detect_320=10.0, detect_416=50.0)
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-512"}, loaded, mode=Mode.AVAILABLE)
    assert out.plan.unload == (("edge", "detect-320"),)
    assert _on_edge(out.result) == {"resize", "detect-416", "detect-512", "draw"}
    assert "evicted detect-320" in out.result.message
    # The other way round in time, the other detector goes.
    flipped = _loaded(detect_320=50.0, detect_416=10.0)
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-512"}, flipped, mode=Mode.AVAILABLE)
    assert out.plan.unload == (("edge", "detect-416"),)


def test_mode_1_breaks_a_recency_tie_by_frequency() -> None:
    loaded = {
        "edge": [
            LoadedModel("resize", 100.0, 500),
            LoadedModel("draw", 100.0, 500),
            LoadedModel("detect-320", 40.0, 900),
            LoadedModel("detect-416", 40.0, 30),
        ]
    }
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-512"}, loaded, mode=Mode.AVAILABLE)
    assert out.plan.unload == (("edge", "detect-416"),)


def test_mode_1_never_evicts_a_model_still_in_demand() -> None:
    loaded = _loaded(detect_320=10.0, detect_416=50.0)
    demand = ALWAYS | {"detect-320", "detect-416", "detect-512"}
    out = provision(WORKFLOW, [SMALL], demand, loaded, mode=Mode.AVAILABLE)
    assert out.plan.unload == ()
    assert [u.task for u in out.result.unplaced] == ["detect-512"]
    assert _on_edge(out.result) == {"resize", "detect-320", "detect-416", "draw"}


def test_mode_1_unloads_models_idle_past_the_threshold() -> None:
    loaded = _loaded(detect_320=10.0, detect_416=95.0)
    out = provision(
        WORKFLOW,
        [SMALL],
        ALWAYS,
        loaded,
        mode=Mode.AVAILABLE,
        evict_idle_s=30.0,
        now_s=100.0,
    )
    assert out.plan.unload == (("edge", "detect-320"),)
    assert out.kept == (("edge", "detect-416"),)


def test_mode_2_follows_the_program_and_unloads_every_idle_model() -> None:
    loaded = _loaded(detect_320=10.0)
    out = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-416"}, loaded, mode=Mode.TOTAL)
    assert _on_edge(out.result) == {"resize", "detect-416", "draw"}
    assert out.plan.unload == (("edge", "detect-320"),)
    assert out.kept == ()


def test_mode_2_sees_total_memory_where_mode_1_sees_what_is_left() -> None:
    # Two loaded idle detectors fill the node: Mode 1 must evict one to load the third,
    # Mode 2 plans on the total and unloads both.
    loaded = _loaded(detect_320=10.0, detect_416=50.0)
    one = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-512"}, loaded, mode=Mode.AVAILABLE)
    two = provision(WORKFLOW, [SMALL], ALWAYS | {"detect-512"}, loaded, mode=Mode.TOTAL)
    assert len(one.plan.unload) == 1
    assert set(two.plan.unload) == {("edge", "detect-320"), ("edge", "detect-416")}
    assert "detect-512" in _on_edge(one.result) and "detect-512" in _on_edge(two.result)


def test_a_model_that_fits_nowhere_is_rejected_with_a_reason() -> None:
    tiny = NodeMetrics("edge", Tier.EDGE, cores=2.0, memory_mb=600)
    out = provision(WORKFLOW, [tiny], ALWAYS | {"detect-416"}, {})
    assert [u.task for u in out.result.unplaced] == ["detect-416"]
    assert "1024 MB" in out.result.unplaced[0].reason


def test_demand_for_a_task_the_workflow_lacks_is_refused() -> None:
    with pytest.raises(PlacementError, match="detect-999"):
        provision(WORKFLOW, [SMALL], {"detect-999"}, {})
