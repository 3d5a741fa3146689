"""Performance models of Houmani et al. (SBAC-PAD 2021) §IV, broker-free.

What each part implements (numbers are the paper's equations):

* eq. 1 — end-to-end latency of one job (frame): ``mu*T_reduce + T_Pr + T_A + T_Po``, a stage
  being the sum of its microservices' response times ``alpha*T_D + Trans + T_E`` with the
  execution time ``T_E = Load/C`` (:func:`job_latency_s`, :func:`stage_time_s`,
  :func:`response_time_s`, :func:`execution_time_s`).
* eq. 2 — transfer time ``S/w`` per link, edge to cloud passing through the fog, 0 on the same
  node, by tiers (:func:`tier_transfer_time_s`) or along a tree of nodes (:func:`route`,
  :func:`transfer_time_s`), with ``S = gamma*fr^2`` bits (:func:`frame_bits`,
  :func:`estimate_gamma`).
* eq. 3 / eq. 4 — slot means of latency and accuracy over sources
  (:func:`slot_mean_latency_s`, :func:`slot_mean_accuracy`).
* eq. 4's accuracy model ``E(fr, d) = a1*d - a2*d*exp(-fr/(a3*d))`` and its online fit from
  measured F1 (:class:`AccuracyCurve`, :func:`fit_accuracy_curve`, :class:`OnlineAccuracy`).
* eq. 5 — utility ``U = a - Theta*T`` and its slot mean (:func:`utility`,
  :func:`slot_utility`).
* The load dependence of ``T_E = Load/C``: a frame waits for the frames ahead of it, so the
  waiting time grows with the load. :class:`QueueCurve` holds the mean number of frames
  waiting at a resource (``L_q``) as a convex piecewise-linear function of its utilisation
  (Pollaczek-Khinchine by default: M/M/1 for ``cv2 = 1``, M/D/1 for ``cv2 = 0``); by Little's
  law a frame waits ``L_q / lambda`` seconds. That total is what the quality-assignment MILP
  can hold exactly (``tierflow.operators.planning.quality``).
* :func:`estimate_slot` turns one window of per-frame observations into per-pipeline service
  rate, processing time, utilisation and queueing delay, and the slot means of eq. 3-4.

Units are in the names: ``_s`` seconds, ``_bits``, ``_mbps`` Mbit/s, ``_fps`` frames/s,
``_px`` pixels (a quality ``fr`` is the side of a square ``fr x fr`` frame).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
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


def estimate_gamma(samples: Iterable[tuple[float, int]]) -> float | None:
    """``gamma`` in bits per pixel from measured encoded frame sizes.

    The ratio of sums ``sum(8 * bytes) / sum(fr^2)`` weights each frame by its pixels, so a
    few small frames do not dominate.

    Args:
        samples: ``(quality_px, encoded_bytes)`` per frame.

    Returns:
        bits per pixel, or None without any usable sample.
    """
    bits = pixels = 0.0
    for quality_px, encoded_bytes in samples:
        if quality_px > 0 and encoded_bytes > 0:
            bits += 8.0 * encoded_bytes
            pixels += float(quality_px) * float(quality_px)
    return bits / pixels if pixels > 0 else None


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


def transfer_time_s(size_bits: float, nodes: Mapping[str, Node], src: str, dst: str) -> float:
    """``Trans(r_j, r_i)`` of eq. 2: ``sum S / w`` over the uplinks from ``src`` to ``dst``.

    Propagation delays are not part of eq. 2; they are added where latency is assembled.

    Raises:
        ModelError: ``dst`` is not reachable upwards from ``src``.
    """
    hops = route(nodes, src, dst)
    if hops is None:
        msg = f"transfer_time_s: no upward path from node {src!r} to node {dst!r}"
        raise ModelError(msg)
    return sum(size_bits / (nodes[h].uplink_mbps * 1e6) for h in hops)


def tier_transfer_time_s(
    size_bits: float,
    src: Tier,
    dst: Tier,
    bandwidth_mbps: Mapping[tuple[Tier, Tier], float],
    *,
    same_node: bool = False,
) -> float:
    """eq. 2 by tiers: ``S/w(E,F) + S/w(F,C)`` edge <-> cloud, 0 on one node, else ``S/w``.

    Args:
        size_bits: ``S``, bits.
        src: producer's tier.
        dst: consumer's tier.
        bandwidth_mbps: ``w`` per tier pair, Mbit/s (either order is looked up).
        same_node: producer and consumer run on the same node.

    Raises:
        ModelError: a bandwidth the path needs is missing or not positive.
    """
    if same_node:
        return 0.0
    hops = (
        [(src, Tier.FOG), (Tier.FOG, dst)]
        if {src, dst} == {Tier.EDGE, Tier.CLOUD}
        else [(src, dst)]
    )
    total = 0.0
    for a, b in hops:
        w = bandwidth_mbps.get((a, b), bandwidth_mbps.get((b, a), 0.0))
        if w <= 0:
            msg = f"tier_transfer_time_s: no positive bandwidth for the {a}-{b} link"
            raise ModelError(msg)
        total += size_bits / (w * 1e6)
    return total


# ---------------------------------------------------------------------------------------------
# eq. 1 and eq. 3-5: latency, accuracy and utility means


def execution_time_s(load_frames: float, capacity_fps: float) -> float:
    """``T_E = Load / C`` (eq. 1): seconds to process ``load_frames`` at ``capacity_fps``."""
    if capacity_fps <= 0:
        msg = f"execution_time_s: capacity must be > 0 frames/s, got {capacity_fps}"
        raise ModelError(msg)
    return load_frames / capacity_fps


def response_time_s(
    execution_s: float, transfer_s: float, discovery_s: float = 0.0, *, discovered: bool = False
) -> float:
    """``RT(m_i) = alpha*T_D + Trans(m_j, m_i) + T_E`` (eq. 1), seconds.

    Args:
        execution_s: ``T_E`` of the microservice.
        transfer_s: ``Trans`` from its predecessor (eq. 2).
        discovery_s: ``T_D``, counted only when ``discovered`` (``alpha = 1``).
        discovered: whether a discovery happened for this job.
    """
    return (discovery_s if discovered else 0.0) + transfer_s + execution_s


def stage_time_s(response_times_s: Iterable[float]) -> float:
    """``T_s = sum RT(m_i)`` over the microservices of a stage (eq. 1), seconds."""
    return sum(response_times_s)


def job_latency_s(
    stage_times_s: Iterable[float], reduce_s: float = 0.0, *, reduced: bool = False
) -> float:
    """``T_J = mu*T_reduce + T_Pr + T_A + T_Po`` (eq. 1), seconds.

    Args:
        stage_times_s: ``T_s`` per stage (each the sum of its response times).
        reduce_s: ``T_reduce``, counted only when the source's quality was reduced (``mu``).
        reduced: ``mu = 1``.
    """
    return (reduce_s if reduced else 0.0) + sum(stage_times_s)


def slot_mean_latency_s(latencies_s: Mapping[str, Sequence[float]]) -> float:
    """``T_t`` of eq. 3: per-source mean over its jobs, then mean over the K sources (s).

    Sources with no job in the slot are left out; NaN when no source has one.
    """
    means = [sum(v) / len(v) for v in latencies_s.values() if len(v) > 0]
    return sum(means) / len(means) if means else math.nan


def slot_mean_accuracy(accuracies: Mapping[str, Sequence[float]]) -> float:
    """``a_t`` of eq. 4: per-source mean accuracy, then mean over the sources (0..1)."""
    return slot_mean_latency_s(accuracies)  # the same two-level mean as eq. 3


def utility(accuracy: float, latency_s: float, theta_per_s: float) -> float:
    """``U = a - Theta*T`` (eq. 5 per source); ``theta_per_s`` is accuracy lost per second."""
    return accuracy - theta_per_s * latency_s


def slot_utility(per_source: Iterable[tuple[float, float]], theta_per_s: float) -> float:
    """``U_t`` of eq. 5: mean utility over sources from ``(accuracy, latency_s)`` pairs."""
    values = [utility(a, t, theta_per_s) for a, t in per_source]
    return sum(values) / len(values) if values else math.nan


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
# Estimator: a window of per-frame observations -> eq. 1-4 quantities per pipeline


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
        encoded_bytes: size of the encoded frame sent, when known (for ``gamma``).
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


@dataclass(frozen=True)
class PipelineEstimate:
    """One pipeline's measured performance over a window.

    Attributes:
        pipeline: pipeline id.
        frames: frames observed.
        arrival_fps: offered load, frames per second of window.
        bottleneck: the stage with the longest processing time.
        service_s: processing time per frame of the bottleneck, seconds.
        service_fps: ``C`` of ``T_E = Load/C``: frames per second of busy time.
        processing_s: zero-load time through the pipeline: sum of the stages' processing.
        service_cv2: squared coefficient of variation of the bottleneck's processing time
            (1.0 when processing times were not measured separately).
        utilisation: ``arrival_fps / service_fps``.
        wait_measured_s: mean time inside stages beyond processing, seconds.
        wait_model_s: M/G/1 waiting time at this utilisation (inf at or above 1).
        stage_s: mean in-stage time per stage, seconds.
        transfer_s: mean transfer time per receiving stage, seconds.
        latency_s: mean end-to-end latency, seconds.
    """

    pipeline: str
    frames: int
    arrival_fps: float
    bottleneck: str
    service_s: float
    service_fps: float
    processing_s: float
    service_cv2: float
    utilisation: float
    wait_measured_s: float
    wait_model_s: float
    stage_s: Mapping[str, float]
    transfer_s: Mapping[str, float]
    latency_s: float

    def queue_curve(self, max_utilisation: float = 0.9, pieces: int = 10) -> QueueCurve:
        """The M/G/1 waiting curve with this pipeline's measured variability."""
        return QueueCurve.pollaczek_khinchine(self.service_cv2, max_utilisation, pieces)


@dataclass(frozen=True)
class SlotEstimate:
    """Everything one window of observations says (eq. 1-4).

    Attributes:
        window_s: window length, seconds.
        pipelines: per pipeline id.
        latency_by_source_s: per-source mean latency (eq. 3's inner mean).
        latency_s: eq. 3's ``T_t``.
        accuracy_by_source: per-source mean F1 over audited frames.
        accuracy: eq. 4's ``a_t`` over sources with audited frames; None without any.
        f1_by_quality: ``(pipeline, quality_px) -> (mean F1, frames)``, to feed
            :class:`OnlineAccuracy` per model.
        gamma_bits_per_pixel: from encoded sizes (eq. 2), None without sizes.
    """

    window_s: float
    pipelines: Mapping[str, PipelineEstimate]
    latency_by_source_s: Mapping[str, float]
    latency_s: float
    accuracy_by_source: Mapping[str, float]
    accuracy: float | None
    f1_by_quality: Mapping[tuple[str, int], tuple[float, int]]
    gamma_bits_per_pixel: float | None


def estimate_slot(
    observations: Sequence[FrameObservation],
    window_s: float,
    *,
    stages: Collection[str] | None = None,
    idle_quantile: float = 0.1,
) -> SlotEstimate:
    """Estimate per-pipeline service rate, processing time and queueing from one window.

    Processing time per stage is the mean of ``busy_s`` when stages measured it. Otherwise
    it is the ``idle_quantile`` of the in-stage times: the fastest frames are those that
    found the stage idle, so they took only their processing time (biased low under heavy
    load, where almost no frame finds it idle). Queueing is reported twice: as measured
    (in-stage time minus processing) and as the M/G/1 prediction at the measured
    utilisation (eq. 1's ``T_E = Load/C`` under load).

    Args:
        observations: processed frames of the window.
        window_s: window length, seconds (> 0).
        stages: stages whose service the pipeline shares (default: every stage observed).
        idle_quantile: quantile of in-stage times taken as processing time.
    """
    if window_s <= 0:
        msg = f"estimate_slot: window must be > 0 s, got {window_s}"
        raise ModelError(msg)
    by_pipeline: dict[str, list[FrameObservation]] = defaultdict(list)
    latency_by_source: dict[str, list[float]] = defaultdict(list)
    f1_by_source: dict[str, list[float]] = defaultdict(list)
    f1_by_quality: dict[tuple[str, int], list[float]] = defaultdict(list)
    for ob in observations:
        by_pipeline[ob.pipeline].append(ob)
        latency_by_source[ob.source].append(ob.latency_s)
        if ob.f1 is not None:
            f1_by_source[ob.source].append(ob.f1)
            f1_by_quality[(ob.pipeline, ob.quality_px)].append(ob.f1)
    pipelines = {
        p: _estimate_pipeline(p, obs, window_s, stages, idle_quantile)
        for p, obs in sorted(by_pipeline.items())
    }
    gamma = estimate_gamma(
        (ob.quality_px, ob.encoded_bytes) for ob in observations if ob.encoded_bytes
    )
    accuracy = slot_mean_accuracy(f1_by_source) if f1_by_source else None
    return SlotEstimate(
        window_s=window_s,
        pipelines=pipelines,
        latency_by_source_s={s: float(np.mean(v)) for s, v in latency_by_source.items()},
        latency_s=slot_mean_latency_s(latency_by_source),
        accuracy_by_source={s: float(np.mean(v)) for s, v in f1_by_source.items()},
        accuracy=accuracy,
        f1_by_quality={k: (float(np.mean(v)), len(v)) for k, v in f1_by_quality.items()},
        gamma_bits_per_pixel=gamma,
    )


def _estimate_pipeline(
    pipeline: str,
    obs: Sequence[FrameObservation],
    window_s: float,
    stages: Collection[str] | None,
    idle_quantile: float,
) -> PipelineEstimate:
    names = sorted({s for ob in obs for s in ob.stage_s if stages is None or s in stages})
    stage_mean: dict[str, float] = {}
    processing: dict[str, float] = {}
    cv2: dict[str, float] = {}
    for name in names:
        inside = np.asarray([ob.stage_s[name] for ob in obs if name in ob.stage_s])
        busy = np.asarray(
            [ob.busy_s[name] for ob in obs if ob.busy_s is not None and name in ob.busy_s]
        )
        stage_mean[name] = float(inside.mean())
        if busy.size:
            processing[name] = float(busy.mean())
            cv2[name] = float(busy.var() / busy.mean() ** 2) if busy.mean() > 0 else 0.0
        else:
            processing[name] = float(np.quantile(inside, idle_quantile))
            cv2[name] = 1.0  # unknown variability: assume exponential (M/M/1)
    transfer_keys = sorted({k for ob in obs for k in ob.transfer_s})
    transfer = {
        k: float(np.mean([ob.transfer_s[k] for ob in obs if k in ob.transfer_s]))
        for k in transfer_keys
    }
    arrival_fps = len(obs) / window_s
    bottleneck = max(names, key=lambda n: processing[n]) if names else ""
    service_s = processing[bottleneck] if names else 0.0
    service_fps = 1.0 / service_s if service_s > 0 else math.inf
    rho = arrival_fps / service_fps
    cv2_b = cv2.get(bottleneck, 1.0)
    # M/G/1 (Pollaczek-Khinchine) waiting time W = rho (1 + cv2) / 2 * s / (1 - rho)
    wait_model = rho * (1.0 + cv2_b) / 2.0 * service_s / (1.0 - rho) if rho < 1 else math.inf
    return PipelineEstimate(
        pipeline=pipeline,
        frames=len(obs),
        arrival_fps=arrival_fps,
        bottleneck=bottleneck,
        service_s=service_s,
        service_fps=service_fps,
        processing_s=sum(processing.values()),
        service_cv2=cv2_b,
        utilisation=rho,
        wait_measured_s=sum(max(stage_mean[n] - processing[n], 0.0) for n in names),
        wait_model_s=wait_model,
        stage_s=stage_mean,
        transfer_s=transfer,
        latency_s=float(np.mean([ob.latency_s for ob in obs])),
    )
