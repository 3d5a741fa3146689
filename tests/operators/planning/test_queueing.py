"""Frames waiting at a resource: the convex piecewise-linear L_q curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierflow.operators.planning.errors import ModelError
from tierflow.operators.planning.queueing import QueueCurve


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
