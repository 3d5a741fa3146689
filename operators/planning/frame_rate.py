"""Accuracy under a reduced frame rate: what carry-forward keeps of eq. 4's accuracy.

Not in the seed paper, which varies only the resolution (§IV); systems users compare us with
(AWStream, Chameleon, VideoEdge) also lower the frame rate. A camera with native rate ``F``
told to send ``f`` frames per second sends one frame in ``k = F / f``; each frame it skips
takes the detections of the last analysed frame (carry-forward), which are ``j / F`` seconds
old for the ``j``-th skipped frame. So the accuracy over every captured frame is

    A(q, f) = E(q) * (1/k) * sum_{j=0}^{k-1} rho(j / F)

with ``E(q)`` eq. 4's accuracy of an analysed frame and ``rho(lag)`` the share of it left
when detections are ``lag`` seconds old: ``rho(0) = 1``, falling as objects move. The model
here is ``rho(lag) = exp(-lag / tau)``; :class:`Retention` fits ``tau`` online from pairs
of processed frames of one source (the earlier frame's detections scored against the later
frame's truth, beside the later frame's own score).

Units: ``_s`` seconds, ``_fps`` frames per second; accuracies are F1 scores in 0..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tierflow.operators.planning.errors import ModelError

LAG_EDGES_S = (0.0, 0.06, 0.12, 0.25, 0.5, 1.0, 2.0, 4.0)
"""Edges of the lag buckets observations are pooled in, seconds."""


@dataclass
class Retention:
    """``rho(lag) = exp(-lag / tau)``: how much accuracy carried-forward detections keep.

    Observations are pooled per lag bucket as sums of the carried score and of the fresh
    score, so memory is bounded and a bucket's ratio is a ratio of sums (frames weigh by
    their score, not equally). ``tau`` is the value on a log grid whose curve is nearest
    the buckets' ratios, each weighted by its fresh-score sum; until ``min_weight`` of
    fresh score is seen, ``prior_tau_s`` holds.

    Attributes:
        prior_tau_s: ``tau`` before enough pairs are seen, seconds.
        min_weight: fresh-score sum needed before the fit replaces the prior.
        decay: forgetting factor applied by :meth:`end_slot`, in (0, 1].
    """

    prior_tau_s: float = 1.0
    min_weight: float = 5.0
    decay: float = 0.9
    _carried: list[float] = field(default_factory=lambda: [0.0] * (len(LAG_EDGES_S) - 1))
    _fresh: list[float] = field(default_factory=lambda: [0.0] * (len(LAG_EDGES_S) - 1))
    _lag: list[float] = field(default_factory=lambda: [0.0] * (len(LAG_EDGES_S) - 1))
    _tau: float | None = None

    def __post_init__(self) -> None:
        if self.prior_tau_s <= 0 or not 0 < self.decay <= 1:
            msg = f"Retention: needs prior_tau_s > 0 and 0 < decay <= 1, got {self}"
            raise ModelError(msg)

    def observe(self, lag_s: float, carried_f1: float, fresh_f1: float) -> None:
        """One pair: detections ``lag_s`` old scored ``carried_f1``; fresh ones ``fresh_f1``."""
        if not 0 < lag_s < LAG_EDGES_S[-1] or not (0 <= carried_f1 <= 1 and 0 <= fresh_f1 <= 1):
            return  # outside the buckets, or not a score: says nothing about rho
        b = int(np.searchsorted(LAG_EDGES_S, lag_s, side="right")) - 1
        self._carried[b] += carried_f1
        self._fresh[b] += fresh_f1
        self._lag[b] += lag_s * fresh_f1
        self._tau = None

    def end_slot(self) -> None:
        """Close a time slot: older pairs weigh ``decay`` times less."""
        for values in (self._carried, self._fresh, self._lag):
            values[:] = [v * self.decay for v in values]
        self._tau = None

    @property
    def tau_s(self) -> float:
        """The fitted ``tau`` (or the prior while too few pairs are known), seconds."""
        if self._tau is None:
            self._tau = self._fit()
        return self._tau

    def _fit(self) -> float:
        weight = np.asarray(self._fresh)
        if weight.sum() < self.min_weight:
            return self.prior_tau_s
        used = weight > 0
        lag = np.asarray(self._lag)[used] / weight[used]
        ratio = np.minimum(np.asarray(self._carried)[used] / weight[used], 1.0)
        grid = np.geomspace(0.02, 200.0, 400)
        errors = [float(np.sum(weight[used] * (ratio - np.exp(-lag / t)) ** 2)) for t in grid]
        return float(grid[int(np.argmin(errors))])

    def rho(self, lag_s: float) -> float:
        """Share of accuracy left when detections are ``lag_s`` seconds old (0..1)."""
        return math.exp(-max(lag_s, 0.0) / self.tau_s)

    def kept(self, native_fps: float, fps: float) -> float:
        """Mean of ``rho`` over the captured frames when ``fps`` of ``native_fps`` are sent.

        The factor of eq. 4's ``E(q)`` in ``A(q, f)`` (module docstring); 1 at the native
        rate. Raises ModelError for rates that are not positive.
        """
        if native_fps <= 0 or fps <= 0:
            msg = f"Retention.kept: rates must be > 0 frames/s, got {native_fps}, {fps}"
            raise ModelError(msg)
        k = max(1.0, native_fps / fps)
        whole = math.floor(k)
        # k frames per analysed one: j = 0..whole-1 in full, the fractional rest at lag whole/F
        total = sum(self.rho(j / native_fps) for j in range(whole))
        total += (k - whole) * self.rho(whole / native_fps)
        return total / k
