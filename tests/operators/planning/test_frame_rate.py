"""Carry-forward accuracy under a reduced frame rate (operators/planning/frame_rate.py)."""

from __future__ import annotations

import math

import pytest

from tierflow.operators.planning.errors import ModelError
from tierflow.operators.planning.frame_rate import Retention


def test_at_the_native_rate_nothing_is_carried() -> None:
    assert Retention().kept(25.0, 25.0) == 1.0
    assert Retention().kept(25.0, 50.0) == 1.0  # above native is the native rate


def test_fewer_frames_keep_less_and_the_mean_is_over_the_skipped_lags() -> None:
    retention = Retention(prior_tau_s=0.5)
    kept = [retention.kept(25.0, fps) for fps in (25, 15, 10, 5, 2, 1)]
    assert kept == sorted(kept, reverse=True) and kept[-1] < 0.5
    # 5 of 25 fps: lags 0, 1/25 .. 4/25 s
    expected = sum(math.exp(-j / 25 / 0.5) for j in range(5)) / 5
    assert retention.kept(25.0, 5.0) == pytest.approx(expected)


def test_tau_is_fitted_from_pairs_of_processed_frames() -> None:
    retention = Retention(prior_tau_s=10.0)
    assert retention.tau_s == 10.0  # the prior until pairs are seen
    for lag in (0.1, 0.3, 0.7, 1.5):
        for _ in range(20):
            retention.observe(lag, 0.9 * math.exp(-lag / 0.8), 0.9)
    assert retention.tau_s == pytest.approx(0.8, rel=0.05)
    assert retention.rho(0.8) == pytest.approx(math.exp(-1), rel=0.05)


def test_pairs_outside_the_buckets_or_not_scores_are_ignored() -> None:
    retention = Retention(prior_tau_s=2.0, min_weight=1.0)
    retention.observe(0.0, 0.5, 0.9)
    retention.observe(10.0, 0.5, 0.9)
    retention.observe(0.2, 1.5, 0.9)
    assert retention.tau_s == 2.0


def test_bad_rates_and_parameters_are_refused() -> None:
    with pytest.raises(ModelError):
        Retention().kept(25.0, 0.0)
    with pytest.raises(ModelError):
        Retention(prior_tau_s=0.0)
