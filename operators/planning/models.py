"""Performance models of Houmani et al. (SBAC-PAD 2021) §IV, broker-free.

What each part implements (numbers are the paper's equations):

* eq. 2 — the path of a frame along a tree of nodes, edge to cloud passing through the fog
  (:func:`route`), and its size ``S = gamma*fr^2`` bits (:func:`frame_bits`); the transfer
  time ``sum S/w`` is assembled by the quality assignment over those links.
* eq. 4's accuracy model ``E(fr, d) = a1*d - a2*d*exp(-fr/(a3*d))`` and its online fit from
  measured F1 (:class:`AccuracyCurve`, :func:`fit_accuracy_curve`, :class:`OnlineAccuracy`).
* The load dependence of eq. 1's ``T_E = Load/C``: a frame waits for the frames ahead of it,
  so the waiting time grows with the load. :class:`QueueCurve` holds the mean number of
  frames waiting at a resource (``L_q``) as a convex piecewise-linear function of its
  utilisation (Pollaczek-Khinchine by default: M/M/1 for ``cv2 = 1``, M/D/1 for
  ``cv2 = 0``); by Little's law a frame waits ``L_q / lambda`` seconds. That total is what
  the quality-assignment MILP can hold exactly (``tierflow.operators.planning.quality``).
* :class:`FrameObservation`, what one processed frame tells the control loop, which derives
  the costs of eq. 1-3 from a window of them
  (:class:`tierflow.operators.planning.controller.ControlLoop`).

Units are in the names: ``_s`` seconds, ``_bits``, ``_mbps`` Mbit/s, ``_fps`` frames/s,
``_px`` pixels (a quality ``fr`` is the side of a square ``fr x fr`` frame).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError
from tierflow.operators.planning.workflow import Tier

FloatArray = npt.NDArray[np.float64]


class ModelError(TierflowError, ValueError):
    """A performance model was given values it cannot work with (negative rate, bad curve)."""


# ---------------------------------------------------------------------------------------------
# eq. 2: data size and transfer time


def frame_bits(quality_px: float, gamma_bits_per_pixel: float) -> float:
    """Size of one frame, ``S = gamma * fr^2`` (eq. 2), in bits.

    Args:
        quality_px: side ``fr`` of the square frame, pixels.
        gamma_bits_per_pixel: bits that carry one pixel after encoding (about 2 for JPEG q90).
    """
    if quality_px <= 0 or gamma_bits_per_pixel <= 0:
        msg = f"frame_bits: quality and gamma must be > 0, got {quality_px}, {gamma_bits_per_pixel}"
        raise ModelError(msg)
    return gamma_bits_per_pixel * quality_px * quality_px


@dataclass(frozen=True)
class Node:
    """A machine of the continuum and its uplink towards the cloud.

    Attributes:
        id: node name.
        tier: edge, fog or cloud.
        parent: the next node towards the cloud (an edge node's fog, a fog node's cloud);
            None for a cloud node.
        uplink_mbps: bandwidth of the link to ``parent``, Mbit/s (Table II: edge-fog 30,
            fog-cloud 10 000).
        uplink_delay_s: propagation delay of that link, seconds (Table II: 4 ms, 5 ms).
    """

    id: str
    tier: Tier
    parent: str | None = None
    uplink_mbps: float = math.inf
    uplink_delay_s: float = 0.0


def route(nodes: Mapping[str, Node], src: str, dst: str) -> tuple[str, ...] | None:
    """The uplinks a frame crosses from node ``src`` to node ``dst`` (eq. 2's cases).

    Same node: no link. ``dst`` above ``src`` (edge to its fog, fog to its cloud, or edge to
    the cloud *through its fog*, eq. 2's first case): every uplink on the way, each named by
    the id of its lower node. Anything else (sideways or downwards) is not a path of the
    tiered continuum here.

    Returns:
        uplink ids in order, or None when ``dst`` cannot be reached upwards from ``src``.
    """
    if src == dst:
        return ()
    hops: list[str] = []
    here = src
    while here != dst:
        node = nodes.get(here)
        if node is None or node.parent is None or len(hops) > len(nodes):
            return None
        hops.append(here)
        here = node.parent
    return tuple(hops)


# ---------------------------------------------------------------------------------------------
# T_E = Load/C under load: frames waiting at a resource


@dataclass(frozen=True)
class QueueCurve:
    """Mean number of frames waiting at a resource, ``L_q``, against its utilisation.

    Convex and piecewise linear (interpolated between breakpoints, exact at them), so a MILP
    represents it exactly as the maximum of its pieces. A frame then waits ``L_q / lambda``
    seconds (Little's law) — for M/M/1 that equals ``L / C``, the frames ahead of it divided
    by the service rate: eq. 1's ``T_E = Load/C`` with ``Load`` the work ahead. Utilisation
    beyond the last breakpoint is not allowed (the resource's capacity).

    Attributes:
        utilisation: breakpoints, increasing, the first 0.
        waiting_frames: ``L_q`` at each breakpoint (frames), the first 0, convex.
    """

    utilisation: tuple[float, ...]
    waiting_frames: tuple[float, ...]

    def __post_init__(self) -> None:
        u = np.asarray(self.utilisation, dtype=np.float64)
        q = np.asarray(self.waiting_frames, dtype=np.float64)
        problem = ""
        if u.shape != q.shape or u.size < 2:
            problem = "needs at least two breakpoints and one value per breakpoint"
        elif u[0] != 0.0 or q[0] != 0.0:
            problem = "must start at (0, 0): nothing waits at an idle resource"
        elif np.any(np.diff(u) <= 0) or not np.all(np.isfinite(q)):
            problem = "breakpoints must increase and values be finite"
        else:
            slopes = np.diff(q) / np.diff(u)
            if slopes[0] < 0 or np.any(np.diff(slopes) < -1e-9 * (1 + np.abs(slopes[1:]))):
                problem = "must be non-decreasing and convex (slopes non-decreasing)"
        if problem:
            msg = f"QueueCurve{self.utilisation, self.waiting_frames}: {problem}"
            raise ModelError(msg)

    @classmethod
    def pollaczek_khinchine(
        cls, cv2: float = 1.0, max_utilisation: float = 0.9, pieces: int = 10
    ) -> QueueCurve:
        """``L_q = rho^2 (1 + cv2) / (2 (1 - rho))`` (M/G/1) sampled on ``[0, max_utilisation]``.

        Breakpoints are denser towards ``max_utilisation`` where the curve bends most, plus
        one near 0 (``pieces + 1`` pieces in all). The interpolation lies above the true
        convex curve (a conservative estimate); near idle a frame is charged about
        ``slope_0 / C``, a few per cent of its service time.

        Args:
            cv2: squared coefficient of variation of the processing time (1: M/M/1,
                0: deterministic M/D/1).
            max_utilisation: highest utilisation allowed (< 1), the capacity margin.
            pieces: number of linear pieces.
        """
        if not 0.0 < max_utilisation < 1.0 or pieces < 1 or cv2 < 0:
            msg = (
                "QueueCurve.pollaczek_khinchine: needs 0 < max_utilisation < 1, pieces >= 1, "
                f"cv2 >= 0; got {max_utilisation}, {pieces}, {cv2}"
            )
            raise ModelError(msg)
        k = np.arange(pieces + 1, dtype=np.float64) / pieces
        rho = max_utilisation * (1.0 - (1.0 - k) ** 2)
        # one more breakpoint near 0: the first chord sets the wait of a nearly idle
        # resource (L_q / lambda -> slope / C), which a long chord would overstate
        rho = np.insert(rho, 1, rho[1] / 4) if pieces > 1 else rho
        lq = rho * rho * (1.0 + cv2) / (2.0 * (1.0 - rho))
        return cls(tuple(float(x) for x in rho), tuple(float(x) for x in lq))

    @classmethod
    def no_wait(cls, max_utilisation: float = 1.0) -> QueueCurve:
        """A resource whose queueing is ignored: only its capacity counts."""
        return cls((0.0, max_utilisation), (0.0, 0.0))

    @property
    def max_utilisation(self) -> float:
        """The capacity limit: the last breakpoint."""
        return self.utilisation[-1]

    def waiting(self, utilisation: float) -> float:
        """``L_q`` in frames at ``utilisation``; inf beyond the capacity limit."""
        return float(self.waiting_array(np.asarray([utilisation], dtype=np.float64))[0])

    def waiting_array(self, utilisation: FloatArray, tol: float = 1e-9) -> FloatArray:
        """Vectorised :meth:`waiting` (frames), inf where utilisation exceeds the limit."""
        values = np.interp(utilisation, self.utilisation, self.waiting_frames)
        return np.where(utilisation > self.max_utilisation + tol, np.inf, values)

    def wait_s(self, utilisation: float, arrival_fps: float) -> float:
        """Mean waiting time of one frame, ``L_q / lambda`` (Little's law), seconds."""
        return self.waiting(utilisation) / arrival_fps if arrival_fps > 0 else 0.0

    def pieces(self) -> tuple[FloatArray, FloatArray]:
        """``(slopes, intercepts)`` of the linear pieces: ``L_q(u) = max_k slope_k*u + icpt_k``."""
        u = np.asarray(self.utilisation, dtype=np.float64)
        q = np.asarray(self.waiting_frames, dtype=np.float64)
        slopes = np.diff(q) / np.diff(u)
        return slopes, q[:-1] - slopes * u[:-1]


# ---------------------------------------------------------------------------------------------
# eq. 4: accuracy model E(fr, d) = a1*d - a2*d*exp(-fr/(a3*d)), fitted online


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


# ---------------------------------------------------------------------------------------------
# The control loop's input


@dataclass(frozen=True)
class FrameObservation:
    """What one processed frame tells the models (broker-free copy of a metrics record).

    Attributes:
        source: camera id.
        quality_px: frame side, pixels.
        pipeline: the pipeline that served it.
        stage_s: seconds inside each stage, queueing included (``<stage>.out - .in``).
        transfer_s: seconds of transfer into each stage (eq. 2's ``Trans``).
        latency_s: end-to-end latency, capture to outcome (eq. 1).
        f1: measured accuracy when audited, else None.
        encoded_bytes: size of the encoded frame sent, bytes, when known (eq. 2's ``S``;
            recorded for the metrics, the loop does not use it).
        busy_s: processing time per stage without queueing, when the stage measured it.
    """

    source: str
    quality_px: int
    pipeline: str
    stage_s: Mapping[str, float]
    transfer_s: Mapping[str, float]
    latency_s: float
    f1: float | None = None
    encoded_bytes: int | None = None
    busy_s: Mapping[str, float] | None = None
