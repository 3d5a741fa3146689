"""The control loop without a broker: observations in, decisions out."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tierflow.operators.planning.control_io import (
    Arrival,
    DetectorInfo,
    FrameObservation,
    LoopConfig,
    cpu_link,
)
from tierflow.operators.planning.controller import ControlLoop
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality import LatencyMean

QUALITIES = (320, 416, 512)
# CPU seconds per frame as measured for Haar on this kind of machine (bench/scene_f1.py)
CPU_S = {320: 0.028, 416: 0.046, 512: 0.068}
F1 = {320: 0.69, 416: 0.88, 512: 0.95}


def detectors(node: str = "n1") -> list[DetectorInfo]:
    return [DetectorInfo(q, node, "haar:face", None, threads=2) for q in QUALITIES]


def feed(
    loop: ControlLoop,
    sources: dict[str, int],
    fps: float,
    seconds: float,
    t0: float = 0.0,
    f1: Mapping[int, float | None] = F1,
) -> float:
    """Frames of each source at its quality for ``seconds``; returns the end time."""
    steps = int(seconds * fps)
    for i in range(steps):
        t = t0 + i / fps
        for source, q in sources.items():
            loop.observe(Arrival(source, q, t))
            ob = FrameObservation(
                source=source,
                quality_px=q,
                pipeline=f"detect-{q}",
                stage_s={"detect": CPU_S[q] * 2},
                transfer_s={"detect": 0.002},
                latency_s=0.2,
                f1=f1[q],
                busy_s={"detect": CPU_S[q], "draw": 0.003},
            )
            loop.observe_processed(t, ob, "haar:face")
    return t0 + seconds


def test_an_overloaded_node_moves_some_sources_to_lower_qualities() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0))
    cams = {f"cam-{i}": 512 for i in range(3)}
    now = feed(loop, cams, fps=10.0, seconds=10.0)
    # 3 x 10 fps x 0.071 s = 2.1 CPU s/s at 512: more than 2 cores
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None
    assert decision.result.status is SolveStatus.OPTIMAL
    assert decision.problem is not None
    chosen = {s: c.quality for s, c in loop.assigned.items()}
    assert set(chosen) == set(cams)
    cpu = sum(10.0 * (CPU_S[q] + 0.003) for q in chosen.values())
    assert cpu <= 2.0 * 0.85 + 1e-6  # the node's CPU is planned within max utilisation
    assert any(q < 512 for q in chosen.values())
    assert decision.result.accuracy >= 0.5
    link = decision.result.link_utilisation[cpu_link("n1")]
    assert 0 < link <= 0.85 + 1e-6


def test_an_idle_node_keeps_every_source_at_full_quality() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0)
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None
    assert loop.assigned["cam-0"].quality == 512
    assert decision.changes["cam-0"].quality == 512  # the first assignment is published


def test_a_source_asked_for_more_waits_out_its_dwell() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, min_dwell_slots=3))
    crowd = {f"cam-{i}": 512 for i in range(5)}
    now = feed(loop, crowd, fps=10.0, seconds=10.0)
    first = loop.decide(now, detectors(), {"n1": 2.0})  # slot 0: overload, cam-0 lowered
    assert first is not None and loop.assigned["cam-0"].quality < 512
    lowered = loop.assigned["cam-0"].quality
    # the crowd leaves: the solver wants cam-0 back at 512, but it changed one slot ago
    now = feed(loop, {"cam-0": lowered}, fps=10.0, seconds=10.0, t0=now + 10.0)
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None
    assert decision.result.by_source()["cam-0"].quality == 512
    assert "cam-0" not in decision.changes and "cam-0" in decision.held
    assert loop.assigned["cam-0"].quality == lowered


def test_load_beyond_every_quality_sends_sources_to_the_cheapest_quality_meeting_a_min() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0))
    cams = {f"cam-{i}": 512 for i in range(12)}
    now = feed(loop, cams, fps=10.0, seconds=10.0)
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None
    # the cameras that do not fit come back refused for capacity, never for accuracy
    assert decision.result.solved
    assert decision.result.refused
    assert {r.reason for r in decision.result.refused} == {"capacity"}
    assert decision.rule.startswith("overload: 320")
    assert {c.quality for c in loop.assigned.values()} == {320}
    assert not decision.refused


def test_a_source_that_cannot_meet_a_min_is_refused() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, a_min=0.99))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0)
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None
    assert "cam-0" in decision.refused
    assert decision.refused["cam-0"].startswith("accuracy")


def test_nothing_to_decide_without_detectors_or_sources() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES))
    assert loop.decide(1.0, detectors(), {"n1": 2.0}) is None
    feed(loop, {"cam-0": 512}, fps=5.0, seconds=2.0)
    assert loop.decide(2.0, [], {"n1": 2.0}) is None


def test_a_new_source_is_reported_as_joining_once() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES))
    assert loop.observe(Arrival("cam-0", 512, 0.0)) is True
    loop.decide(1.0, detectors(), {"n1": 2.0})
    assert loop.observe(Arrival("cam-0", 512, 1.5)) is False


def test_old_observations_leave_the_window() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=5.0))
    feed(loop, {"cam-0": 512}, fps=5.0, seconds=5.0)
    assert loop.latency_p99_s(100.0) is None


def test_measured_f1_below_a_min_raises_the_next_slots_floor() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, a_min=0.5))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0, f1={512: 0.4})
    first = loop.decide(now, detectors(), {"n1": 2.0})
    assert first is not None and first.problem is not None
    assert first.problem.floor == pytest.approx(0.5)  # nothing recorded before slot 0
    second = loop.decide(now + 1.0, detectors(), {"n1": 2.0})
    assert second is not None and second.problem is not None
    # eq. 6: slot 0 measured 0.4, so slot 1 needs 2 * 0.5 - 0.4 for the mean to reach a_min
    assert second.problem.floor > 0.5
    assert second.problem.floor == pytest.approx(0.6)


def test_banked_accuracy_lets_the_floor_dip_below_a_min_by_at_most_the_credit() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, a_min=0.5, accuracy_credit=0.1))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0)  # measured F1 0.95
    loop.decide(now, detectors(), {"n1": 2.0})
    decision = loop.decide(now + 1.0, detectors(), {"n1": 2.0})
    assert decision is not None and decision.problem is not None
    # 0.45 banked, but one slot may spend only the credit
    assert 0.5 - 0.1 - 1e-9 <= decision.problem.floor < 0.5
    assert decision.problem.floor == pytest.approx(0.4)


def test_without_credit_measured_f1_above_a_min_keeps_the_floor_at_a_min() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0)
    for k in range(3):
        decision = loop.decide(now + k, detectors(), {"n1": 2.0})
        assert decision is not None and decision.problem is not None
        assert decision.problem.floor == pytest.approx(0.5)


def test_without_ground_truth_the_plans_estimate_is_the_slots_accuracy() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, accuracy_credit=0.1))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0, f1={512: None})
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None and decision.result.solved
    assert loop.long_term.slots == 1
    assert loop.long_term.total == pytest.approx(decision.result.accuracy)


LADDER = (25.0, 15.0, 10.0, 5.0, 2.0, 1.0)


def test_frame_rate_matches_the_offered_load_to_the_cores() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, fps_ladder=LADDER))
    cams = {f"cam-{i}": 512 for i in range(3)}
    now = feed(loop, cams, fps=25.0, seconds=10.0)
    decision = loop.decide(now, detectors(), {"n1": 2.0})
    assert decision is not None and decision.result.solved
    chosen = loop.assigned
    assert set(chosen) == set(cams)
    native = 25.0
    cpu = sum((c.fps or native) * (CPU_S[c.quality] + 0.003) for c in chosen.values())
    assert cpu <= 2.0 * 0.85 + 1e-6  # 3 x 25 fps at 512 would need 5.3 cores
    assert any(c.fps is not None and c.fps < native for c in chosen.values())
    # every option's accuracy counts carry-forward: a lower rate never scores higher
    assert decision.problem is not None
    by_rate = {(o.quality, o.fps): o.accuracy for o in decision.problem.options}
    assert by_rate[(512, 5.0)] < by_rate[(512, 10.0)] < by_rate[(512, None)]


def test_what_else_keeps_a_node_busy_is_not_planned_for_frames() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, fps_ladder=LADDER))
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0)
    idle = loop.decide(now, detectors(), {"n1": 2.0}, used_cores_by_node={"n1": 0.36})
    assert idle is not None and idle.problem is not None
    # the frames themselves cost 5 fps x 0.071 s = 0.36 cores: nothing else runs
    assert idle.problem.links[0].bandwidth_mbps == pytest.approx(2.0, abs=0.01)
    busy = loop.decide(now + 0.5, detectors(), {"n1": 2.0}, used_cores_by_node={"n1": 1.36})
    assert busy is not None and busy.problem is not None
    # one core busy with other work, smoothed over decisions: half of it counts now
    assert busy.problem.links[0].bandwidth_mbps == pytest.approx(1.5, abs=0.02)


def test_dwell_holds_back_a_heavier_choice_but_never_a_lighter_one() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, fps_ladder=LADDER, min_dwell_slots=3))
    now = feed(loop, {"cam-0": 512}, fps=25.0, seconds=10.0)
    first = loop.decide(now, detectors(), {"n1": 2.0})
    assert first is not None and "cam-0" in first.changes
    alone = first.changes["cam-0"]
    # two more cameras arrive at full rate: cam-0 must give up load before its dwell ends
    now = feed(loop, {f"cam-{i}": 512 for i in range(3)}, fps=25.0, seconds=10.0, t0=now)
    second = loop.decide(now, detectors(), {"n1": 2.0})
    assert second is not None and second.problem is not None
    assert "cam-0" in second.changes and "cam-0" not in second.held
    lighter = second.changes["cam-0"]
    native = 25.0
    cost = {o.quality: o.bits_per_frame for o in second.problem.options}
    assert (lighter.fps or native) * cost[lighter.quality] < (alone.fps or native) * cost[
        alone.quality
    ]


def test_the_loop_solves_the_mean_of_eq_3_it_is_configured_with() -> None:
    cams = {f"cam-{i}": 512 for i in range(3)}
    for mean in LatencyMean:
        loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, latency_mean=mean))
        decision = loop.decide(feed(loop, cams, fps=10.0, seconds=10.0), detectors(), {"n1": 2.0})
        assert decision is not None and decision.problem is not None
        assert decision.problem.latency_mean is mean
    assert LoopConfig(QUALITIES).latency_mean is LatencyMean.FRAMES


def test_a_source_measured_for_moments_is_told_the_rate_it_was_planned_at() -> None:
    loop = ControlLoop(LoopConfig(QUALITIES, window_s=10.0, fps_ladder=LADDER))
    # A slow-starting camera's first second: two frames, so it looks like a 2 fps source.
    now = feed(loop, {"cam-0": 512}, fps=2.0, seconds=1.0)
    first = loop.decide(now, detectors(), {"n1": 2.0})
    assert first is not None and first.problem is not None
    (planned,) = first.problem.sources
    told = first.changes["cam-0"]
    assert told.fps is not None and told.fps <= planned.fps  # not "no rate": its 25 fps
    # Measured long enough, at its real rate: the plan is free to raise it at once (no
    # dwell on a provisional rate), and at the native rate the camera is told no rate.
    now = feed(loop, {"cam-0": 512}, fps=5.0, seconds=10.0, t0=now)
    second = loop.decide(now, detectors(), {"n1": 2.0})
    assert second is not None and "cam-0" in second.changes
    assert second.changes["cam-0"].fps is None
    assert "cam-0" not in second.held
