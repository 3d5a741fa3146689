"""eq. 4's accuracy curve, its fit and its online estimate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierflow.operators.planning.accuracy_model import (
    AccuracyCurve,
    OnlineAccuracy,
    fit_accuracy_curve,
)
from tierflow.operators.planning.errors import ModelError


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
