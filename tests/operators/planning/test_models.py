from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierflow.operators.planning.models import (
    AccuracyCurve,
    FrameObservation,
    ModelError,
    Node,
    OnlineAccuracy,
    QueueCurve,
    estimate_gamma,
    estimate_slot,
    execution_time_s,
    fit_accuracy_curve,
    frame_bits,
    job_latency_s,
    response_time_s,
    route,
    slot_mean_accuracy,
    slot_mean_latency_s,
    slot_utility,
    stage_time_s,
    tier_transfer_time_s,
    transfer_time_s,
    utility,
)
from tierflow.operators.planning.workflow import Tier

# Table II of the paper: edge-fog 30 Mbit/s, fog-cloud 10 Gbit/s
NODES = {
    "e1": Node("e1", Tier.EDGE, "f1", 30.0, 0.004),
    "e2": Node("e2", Tier.EDGE, "f1", 30.0, 0.004),
    "f1": Node("f1", Tier.FOG, "c1", 10_000.0, 0.005),
    "c1": Node("c1", Tier.CLOUD),
}


def test_frame_size_is_gamma_times_side_squared() -> None:
    assert frame_bits(512, 2.0) == 2.0 * 512 * 512
    with pytest.raises(ModelError, match="must be > 0"):
        frame_bits(0, 2.0)


def test_gamma_is_bits_per_pixel_of_encoded_frames() -> None:
    # 512^2 px in 65536 bytes is 2 bits/px; 256^2 px in 32768 bytes is 4 bits/px
    assert estimate_gamma([(512, 65536)]) == pytest.approx(2.0)
    pixel_weighted = (8 * 65536 + 8 * 32768) / (512**2 + 256**2)
    assert estimate_gamma([(512, 65536), (256, 32768)]) == pytest.approx(pixel_weighted)
    assert estimate_gamma([]) is None
    assert estimate_gamma([(512, 0)]) is None


def test_edge_to_cloud_transfer_passes_through_the_fog() -> None:
    bits = frame_bits(512, 2.0)
    assert route(NODES, "e1", "c1") == ("e1", "f1")
    assert transfer_time_s(bits, NODES, "e1", "c1") == pytest.approx(bits / 30e6 + bits / 10_000e6)
    assert transfer_time_s(bits, NODES, "e1", "f1") == pytest.approx(bits / 30e6)
    assert transfer_time_s(bits, NODES, "f1", "f1") == 0.0


def test_eq2_by_tiers_relays_edge_cloud_traffic_through_the_fog() -> None:
    w = {(Tier.EDGE, Tier.FOG): 30.0, (Tier.FOG, Tier.CLOUD): 10_000.0, (Tier.EDGE, Tier.EDGE): 1e3}
    bits = 4e6
    assert tier_transfer_time_s(bits, Tier.CLOUD, Tier.EDGE, w) == pytest.approx(
        bits / 30e6 + bits / 10_000e6
    )
    assert tier_transfer_time_s(bits, Tier.FOG, Tier.EDGE, w) == pytest.approx(bits / 30e6)
    assert tier_transfer_time_s(bits, Tier.EDGE, Tier.EDGE, w) == pytest.approx(bits / 1e9)
    assert tier_transfer_time_s(bits, Tier.EDGE, Tier.FOG, w, same_node=True) == 0.0
    with pytest.raises(ModelError, match="fog-fog"):
        tier_transfer_time_s(bits, Tier.FOG, Tier.FOG, w)


def test_sideways_or_downward_route_is_not_a_path() -> None:
    assert route(NODES, "e1", "e2") is None
    assert route(NODES, "c1", "e1") is None
    with pytest.raises(ModelError, match="no upward path"):
        transfer_time_s(1.0, NODES, "e1", "e2")


def test_eq1_latency_counts_reduction_and_discovery_only_when_flagged() -> None:
    assert execution_time_s(10, 25.0) == pytest.approx(0.4)
    with pytest.raises(ModelError):
        execution_time_s(1, 0.0)
    assert response_time_s(0.1, 0.02, 0.5) == pytest.approx(0.12)
    assert response_time_s(0.1, 0.02, 0.5, discovered=True) == pytest.approx(0.62)
    assert stage_time_s([0.12, 0.03]) == pytest.approx(0.15)
    assert job_latency_s([0.01, 0.1, 0.02], 0.003) == pytest.approx(0.13)
    assert job_latency_s([0.01, 0.1, 0.02], 0.003, reduced=True) == pytest.approx(0.133)


def test_eq3_is_a_mean_over_sources_of_per_source_means() -> None:
    latencies = {"a": [1.0, 3.0], "b": [4.0], "idle": []}
    assert slot_mean_latency_s(latencies) == pytest.approx(3.0)  # not the frame mean 8/3
    assert slot_mean_accuracy({"a": [0.5, 0.7], "b": [0.9]}) == pytest.approx(0.75)
    assert math.isnan(slot_mean_latency_s({}))


def test_eq5_utility_trades_accuracy_against_latency() -> None:
    assert utility(0.7, 0.2, 1.5) == pytest.approx(0.4)
    assert slot_utility([(0.7, 0.2), (0.5, 0.0)], 1.5) == pytest.approx(0.45)


def test_queue_curve_matches_pollaczek_khinchine_at_its_breakpoints() -> None:
    curve = QueueCurve.pollaczek_khinchine(cv2=1.0, max_utilisation=0.9, pieces=8)
    for u, q in zip(curve.utilisation, curve.waiting_frames, strict=True):
        assert q == pytest.approx(u * u / (1 - u))  # M/M/1 L_q
    mid = 0.5 * (curve.utilisation[3] + curve.utilisation[4])
    assert curve.waiting(mid) >= mid * mid / (1 - mid)  # chords of a convex curve lie above
    assert curve.waiting(0.95) == math.inf
    assert curve.wait_s(0.5, 10.0) == pytest.approx(curve.waiting(0.5) / 10.0)  # Little
    assert curve.wait_s(0.0, 0.0) == 0.0


@given(st.floats(0.0, 0.9), st.floats(0.0, 2.0))
def test_queue_curve_pieces_give_the_same_value_as_interpolation(u: float, cv2: float) -> None:
    curve = QueueCurve.pollaczek_khinchine(cv2=cv2, max_utilisation=0.9)
    slopes, intercepts = curve.pieces()
    assert float(np.max(slopes * u + intercepts)) == pytest.approx(curve.waiting(u), abs=1e-9)


@pytest.mark.parametrize(
    ("utilisation", "waiting", "problem"),
    [
        ((0.0, 0.5, 0.9), (0.0, 1.0, 1.2), "convex"),
        ((0.1, 0.5), (0.0, 1.0), "start at"),
        ((0.0, 0.5, 0.4), (0.0, 1.0, 2.0), "increase"),
        ((0.0,), (0.0,), "two breakpoints"),
    ],
)
def test_queue_curve_rejects_shapes_a_milp_cannot_hold(
    utilisation: tuple[float, ...], waiting: tuple[float, ...], problem: str
) -> None:
    with pytest.raises(ModelError, match=problem):
        QueueCurve(utilisation, waiting)


def test_accuracy_curve_is_increasing_and_concave_in_quality() -> None:
    curve = AccuracyCurve(0.8, 1.2, 150.0)
    values = [curve(q) for q in (224, 320, 416, 512, 608)]
    assert all(b > a for a, b in itertools.pairwise(values))
    gains = np.diff(values)
    assert all(b < a for a, b in itertools.pairwise(gains))
    scaled = AccuracyCurve(0.4, 0.6, 75.0, d=2.0)  # same A1, A2, A3 = coefficients * d
    assert scaled(416) == pytest.approx(curve(416))


def test_fit_recovers_a_known_curve() -> None:
    truth = AccuracyCurve(0.8, 1.2, 150.0)
    qualities = [224, 320, 416, 512, 608]
    fitted = fit_accuracy_curve(qualities, [truth(q) for q in qualities], grid=400)
    assert fitted is not None
    for q in (256, 384, 480, 640):
        assert fitted(q) == pytest.approx(truth(q), abs=5e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=6))
def test_fit_stays_within_bounds_whatever_the_data(f1: list[float]) -> None:
    qualities = [160 + 96 * i for i in range(len(f1))]
    fitted = fit_accuracy_curve(qualities, f1, grid=60)
    assert fitted is not None
    assert 0.0 <= fitted.a1 <= 1.0 and fitted.a2 >= 0.0 and fitted.a3 > 0
    predictions = [fitted(q) for q in qualities]
    assert all(p <= 1.0 for p in predictions)
    assert all(b >= a for a, b in itertools.pairwise(predictions))
    # never worse than the best constant: the constant is one of the candidates
    sse = sum((p - y) ** 2 for p, y in zip(predictions, f1, strict=True))
    assert sse <= sum((y - np.mean(f1)) ** 2 for y in f1) + 1e-9


def test_fit_needs_three_distinct_qualities() -> None:
    assert fit_accuracy_curve([416, 512, 512], [0.6, 0.7, 0.72]) is None


def test_online_accuracy_falls_back_to_means_then_fits() -> None:
    model = OnlineAccuracy(prior=AccuracyCurve(0.8, 1.2, 150.0))
    assert model.predict(512) == pytest.approx(AccuracyCurve(0.8, 1.2, 150.0)(512))
    model.observe(512, 0.70)
    model.observe(512, 0.74)
    model.observe(416, 0.60)
    too_few = model.curve
    assert too_few is None
    assert model.predict(512) == pytest.approx(0.72)
    assert model.predict(464) == pytest.approx(0.66)  # between the measured means
    assert model.predict(320) == pytest.approx(0.60)  # clamped at the lowest one
    model.observe(320, 0.45)
    fitted = model.curve
    assert fitted is not None
    assert model.predict(512) == pytest.approx(0.72, abs=0.02)
    with pytest.raises(ModelError):
        model.observe(512, 1.5)


def test_online_accuracy_decay_follows_new_content() -> None:
    model = OnlineAccuracy(decay=0.1)
    model.observe(512, 0.9)
    model.end_slot()
    model.observe(512, 0.5)
    # old weight 0.1 against new weight 1: mean (0.09 + 0.5) / 1.1
    assert model.means()[512] == pytest.approx(0.59 / 1.1)


def _frames(n: int, busy: bool) -> list[FrameObservation]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        wait = float(rng.exponential(0.02))
        out.append(
            FrameObservation(
                source=f"cam{i % 2}",
                quality_px=512,
                pipeline="cloud-512",
                stage_s={"resize": 0.005, "detect": 0.05 + wait},
                transfer_s={"detect": 0.018},
                latency_s=0.1 + wait + (0.1 if i % 2 else 0.0),
                f1=0.7 if i % 2 == 0 else 0.5,
                encoded_bytes=65536,
                busy_s={"resize": 0.005, "detect": 0.05} if busy else None,
            )
        )
    return out


def test_estimator_measures_service_rate_utilisation_and_waiting() -> None:
    obs = _frames(100, busy=True)
    est = estimate_slot(obs, window_s=10.0)
    p = est.pipelines["cloud-512"]
    assert p.frames == 100 and p.arrival_fps == pytest.approx(10.0)
    assert p.bottleneck == "detect"
    assert p.service_fps == pytest.approx(20.0)  # 1 / 0.05 s of busy time
    assert p.processing_s == pytest.approx(0.055)
    assert p.utilisation == pytest.approx(0.5)
    assert p.service_cv2 == pytest.approx(0.0)
    # M/D/1: W = rho (1 + 0) / 2 * s / (1 - rho) = 0.025 s
    assert p.wait_model_s == pytest.approx(0.025)
    waits = [ob.stage_s["detect"] - 0.05 for ob in obs]
    assert p.wait_measured_s == pytest.approx(np.mean(waits))
    assert p.transfer_s["detect"] == pytest.approx(0.018)
    assert p.queue_curve().max_utilisation == pytest.approx(0.9)
    # eq. 3 and eq. 4 over the two sources
    by_source = {s: [ob.latency_s for ob in obs if ob.source == s] for s in ("cam0", "cam1")}
    assert est.latency_s == pytest.approx(slot_mean_latency_s(by_source))
    assert est.accuracy == pytest.approx(0.6)
    mean_f1, frames = est.f1_by_quality[("cloud-512", 512)]
    assert mean_f1 == pytest.approx(0.6) and frames == 100
    assert est.gamma_bits_per_pixel == pytest.approx(2.0)


def test_estimator_without_busy_times_takes_the_idle_frames_as_processing() -> None:
    est = estimate_slot(_frames(200, busy=False), window_s=10.0, stages={"detect"})
    p = est.pipelines["cloud-512"]
    assert p.bottleneck == "detect"
    assert 0.05 < p.service_s < 0.055  # the 10 % fastest barely waited
    assert p.service_cv2 == 1.0
    assert est.accuracy == pytest.approx(0.6)
    with pytest.raises(ModelError):
        estimate_slot([], window_s=0.0)


def test_estimator_reports_overload_as_infinite_model_wait() -> None:
    est = estimate_slot(_frames(100, busy=True), window_s=4.0)  # 25 fps into 20 fps
    assert est.pipelines["cloud-512"].utilisation == pytest.approx(1.25)
    assert est.pipelines["cloud-512"].wait_model_s == math.inf
