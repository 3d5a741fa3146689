"""Accuracy: eq. 4's model fitted online from measured F1, and eq. 6's long-term floor.

Houmani et al. (SBAC-PAD 2021) §IV-B:

* eq. 4 — the accuracy of DL model ``d`` at quality ``fr`` is
  ``E(fr, d) = a1*d - a2*d*exp(-fr/(a3*d))`` (:class:`AccuracyCurve`), fitted by least
  squares to measured F1 (:func:`fit_accuracy_curve`) and kept up to date as frames with
  ground truth arrive (:class:`OnlineAccuracy`).
* eq. 6 — the goal holds accuracy as a long-term constraint,
  ``lim_{t->+inf} (1/T) sum_{t=1}^T a_t >= a_min``: the mean over slots, not every slot.
  :class:`LongTermAccuracy` turns it into the floor one slot must reach.

Units are in the names: ``_px`` pixels (a quality ``fr`` is the side of a square frame);
accuracies are F1 scores in 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tierflow.operators.planning.errors import ModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AccuracyCurve:
    """``E(fr, d) = a1*d - a2*d*exp(-fr/(a3*d))`` of one DL model ``d`` (paper §IV-B).

    ``d`` is the model's numeric scale; the coefficients are per model, so ``d = 1`` loses
    nothing. With ``a2 >= 0`` and ``a3 > 0`` the curve increases and is concave in ``fr``
    and stays below ``a1*d``.
    """

    a1: float
    a2: float
    a3: float
    d: float = 1.0

    def __call__(self, quality_px: float) -> float:
        """Expected accuracy (F1, 0..1) at quality ``quality_px``."""
        return self.a1 * self.d - self.a2 * self.d * math.exp(-quality_px / (self.a3 * self.d))


def fit_accuracy_curve(
    quality_px: Sequence[float],
    f1: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    d: float = 1.0,
    min_qualities: int = 3,
    grid: int = 200,
) -> AccuracyCurve | None:
    """Least-squares fit of eq. 4's ``E(fr, d)`` to measured F1, without scipy.

    For each ``A3 = a3*d`` on a log grid the model is linear in ``A1 = a1*d`` and
    ``A2 = a2*d`` (``E = A1 - A2*exp(-fr/A3)``); those are fitted exactly under the bounds
    ``0 <= A1 <= 1`` (the accuracy reached at high quality is an F1) and ``A2 >= 0`` (more
    pixels never hurt: increasing and concave); the minimiser of a convex quadratic over that
    strip is the unconstrained one or lies on an edge. The ``A3`` with the least weighted
    squared error wins. ``E`` may fall below 0 far below the measured qualities (the form
    says nothing about 0 pixels); :meth:`OnlineAccuracy.predict` clamps to ``[0, 1]``.

    Args:
        quality_px: ``fr`` of each observation, pixels.
        f1: measured F1 of each observation, 0..1.
        weights: per observation (e.g. frame counts when passing per-quality means).
        d: the model's scale ``d``.
        min_qualities: fewer distinct qualities than this cannot pin three coefficients.
        grid: number of ``A3`` candidates.

    Returns:
        the fitted curve, or None with too few distinct qualities.
    """
    x = np.asarray(quality_px, dtype=np.float64)
    y = np.asarray(f1, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (w > 0) & np.isfinite(y) & (x > 0)
    x, y, w = x[keep], y[keep], w[keep]
    if np.unique(x).size < max(min_qualities, 2) or d <= 0:
        return None
    a3_grid = np.geomspace(x.max() / 100.0, x.max() * 10.0, grid)
    best: tuple[float, float, float, float] | None = None  # sse, A1, A2, A3
    for a3 in a3_grid:
        g = np.exp(-x / a3)
        for a1, a2 in _strip_candidates(y, g, w):
            sse = float(np.sum(w * (y - a1 + a2 * g) ** 2))
            if best is None or sse < best[0] - 1e-15:
                best = (sse, a1, a2, float(a3))
    if best is None:
        return None
    _, a1, a2, a3 = best
    return AccuracyCurve(a1 / d, a2 / d, a3 / d, d)


def _strip_candidates(y: FloatArray, g: FloatArray, w: FloatArray) -> list[tuple[float, float]]:
    """Feasible minimiser candidates of ``sum w (y - A1 + A2 g)^2`` on ``0<=A1<=1, A2>=0``."""
    sw = float(w.sum())
    swg, swgg = float(np.sum(w * g)), float(np.sum(w * g * g))
    swy, swgy = float(np.sum(w * y)), float(np.sum(w * g * y))
    candidates: list[tuple[float, float]] = []
    # unconstrained: normal equations of [1, -g]
    det = sw * swgg - swg * swg
    if det > 1e-12 * max(1.0, sw * swgg):
        a1 = (swgg * swy - swg * swgy) / det
        a2 = (swg * swy - sw * swgy) / det
        if 0.0 <= a1 <= 1.0 and a2 >= 0.0:
            candidates.append((a1, a2))
    # edge A2 = 0: a constant
    candidates.append((min(max(swy / sw, 0.0), 1.0), 0.0))
    if swgg > 0:
        # edges A1 = 0 and A1 = 1: y = A1 - A2 g with A2 >= 0
        candidates.append((0.0, max(-swgy / swgg, 0.0)))
        candidates.append((1.0, max((swg - swgy) / swgg, 0.0)))
    return candidates


@dataclass
class OnlineAccuracy:
    """Running F1 per quality of one DL model and the eq. 4 curve fitted to it.

    State is per quality ``(weight, weighted F1 sum)``: a weighted least-squares fit on the
    per-quality means equals the fit on all frames, so memory stays bounded. ``end_slot``
    multiplies the weights by ``decay`` so the fit follows changing content.

    Attributes:
        d: the model's scale in ``E(fr, d)``.
        min_qualities: distinct qualities needed before the curve replaces the means.
        decay: forgetting factor per slot, in (0, 1]; 1 keeps everything.
        prior: used for qualities never measured while no curve can be fitted.
    """

    d: float = 1.0
    min_qualities: int = 3
    decay: float = 1.0
    prior: AccuracyCurve | None = None
    _stats: dict[int, list[float]] = field(default_factory=dict, repr=False)
    _curve: AccuracyCurve | None = field(default=None, repr=False)
    _dirty: bool = field(default=False, repr=False)

    def observe(self, quality_px: int, f1: float, weight: float = 1.0) -> None:
        """Add one measured F1 (0..1) at ``quality_px``."""
        if not 0.0 <= f1 <= 1.0 or weight <= 0:
            msg = f"OnlineAccuracy.observe: F1 must be in [0, 1] and weight > 0, got {f1}, {weight}"
            raise ModelError(msg)
        stat = self._stats.setdefault(quality_px, [0.0, 0.0])
        stat[0] += weight
        stat[1] += weight * f1
        self._dirty = True

    def end_slot(self) -> None:
        """Close a time slot: older observations weigh ``decay`` times less."""
        if self.decay < 1.0:
            for stat in self._stats.values():
                stat[0] *= self.decay
                stat[1] *= self.decay

    def means(self) -> dict[int, float]:
        """Mean measured F1 per quality (pixels -> 0..1)."""
        return {q: s[1] / s[0] for q, s in sorted(self._stats.items()) if s[0] > 0}

    @property
    def curve(self) -> AccuracyCurve | None:
        """The fitted ``E(fr, d)``, None while fewer than ``min_qualities`` are measured."""
        if self._dirty:
            means = self.means()
            weights = [self._stats[q][0] for q in means]
            self._curve = fit_accuracy_curve(
                list(means), list(means.values()), weights, d=self.d,
                min_qualities=self.min_qualities,
            )  # fmt: skip
            self._dirty = False
        return self._curve

    def predict(self, quality_px: float) -> float | None:
        """Expected F1 at ``quality_px``.

        The fitted curve when there is one; else the measured mean at that quality, else a
        linear interpolation between measured qualities (clamped at the ends), else the
        prior; None when nothing is known.
        """
        curve = self.curve
        if curve is not None:
            return min(max(curve(quality_px), 0.0), 1.0)
        means = self.means()
        if quality_px in means:
            return means[int(quality_px)]
        if means:
            return float(np.interp(quality_px, list(means), list(means.values())))
        return None if self.prior is None else self.prior(quality_px)


@dataclass
class LongTermAccuracy:
    """Eq. 6's long-term constraint ``lim (1/T) sum_t a_t >= a_min`` as a per-slot floor.

    The running mean of slot accuracies must stay >= ``a_min``: after ``slots`` slots whose
    accuracies sum to ``total``, the next needs ``(slots + 1)*a_min - total``. A shortfall
    raises the next floor above ``a_min`` (the mean catches up); surplus banked in earlier
    slots lowers it, but never more than ``max_credit`` below ``a_min`` in one slot (0
    keeps every slot at ``a_min`` or above). The floor stays within [0, 1].

    Attributes:
        a_min: eq. 6's threshold, 0..1.
        max_credit: most the floor may dip below ``a_min`` in one slot, 0..1.
        slots: slots recorded so far.
        total: sum of their accuracies (eq. 4's ``a_t``, 0..1 each).
    """

    a_min: float = 0.5
    max_credit: float = 0.0
    slots: int = 0
    total: float = 0.0

    def floor(self) -> float:
        """The accuracy the next slot needs (pass as ``Problem.accuracy_floor``)."""
        needed = (self.slots + 1) * self.a_min - self.total
        return min(1.0, max(needed, self.a_min - self.max_credit, 0.0))

    def record(self, accuracy: float) -> None:
        """Add a finished slot's mean accuracy (eq. 4)."""
        self.slots += 1
        self.total += accuracy
