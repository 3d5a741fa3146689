"""The compiled form of a quality problem and the one model every policy scores with.

The model of Houmani et al. (SBAC-PAD 2021) §IV, eq. 1-5, the same formulas in every
policy so that they are comparable:

* Sources are grouped into classes of interchangeable ones (same site, native frame rate
  and allowed qualities). Variables are integer counts ``x[c, o]`` of class ``c`` on option
  ``o`` = (quality, pipeline[, site][, frame rate]); Algorithm 1's distributions ``B`` are
  exactly these counts (its ``beta * q_l``) once pipelines, sites and rates are added. Counts
  are mapped back to sources afterwards with rotation (:mod:`.driver`). A column's rate
  ``f_v`` is its option's ``fps``, or the class's native rate when the option fixes none.
* Per-frame latency of a source on option ``o`` = zero-load part + waiting. The zero-load
  part is eq. 1-2: ``mu*T_reduce`` (quality below the source's native one) + the pipeline's
  processing time (its stages' ``T_E`` for one frame) + ``sum S/w + delay`` over the links
  of the option's path (eq. 2, ``S = gamma*fr^2``). Waiting models ``T_E = Load/C`` under
  load: every pipeline and link ``r`` is a server with utilisation ``u_r`` (pipelines:
  ``sum f / C``; links: ``sum f*S / w``, ``f`` the analysed rates) and a convex
  piecewise-linear curve ``L_q,r(u_r)`` of frames waiting
  (:class:`tierflow.operators.planning.queueing.QueueCurve`).
  By Little's law the frames' total waiting per second is ``sum_r L_q,r(u_r)``, linear in
  the counts through an epigraph variable per resource — exact, not an approximation of the
  curve.
* Objective: eq. 3's mean latency ``N(x) / D(x)``, or eq. 5's utility ``a - Theta*N/D``
  with eq. 4's mean accuracy over sources. As the paper writes eq. 3
  (:attr:`LatencyMean.SOURCES`), the mean over sources of each source's mean:
  ``N = sum_v x_v b_v + sum_r (n_r / lambda_r) L_q,r(u_r)`` and ``D = K``, the sources
  (``n_r`` sources and ``lambda_r`` frames/s through ``r``). Over analysed frames
  (:attr:`LatencyMean.FRAMES`, the default): ``N = sum_v x_v f_v b_v + sum_r L_q,r(u_r)``
  (frame-seconds per second) and ``D = sum_v x_v f_v`` (frames per second). The two agree
  when every source sends at one rate. ``D`` is a constant unless frames are averaged and
  options fix rates (:attr:`Compiled.variable_denominator`); :mod:`.ratio` solves the
  ratio. Over sources the weight ``n_r / lambda_r`` is ``1/f`` where every column using
  ``r`` has rate ``f`` (linear, exact); where rates mix it is a fixed point. Capacity:
  ``u_r <= max utilisation`` (the curve's last breakpoint).
* The makespan objective (:mod:`.makespan`) drops the capacity rows: ``T_E = Load/C`` over
  a run of ``duration_s`` seconds, ``makespan = duration_s * max(1, max_r u_r)``, and a
  frame's latency is its zero-load part plus the fluid backlog wait of the most loaded
  resource on its path (:func:`makespan_latency`).

:func:`compile_problem` builds the columns and resources (per-option arrays are computed
once per problem in a :class:`Catalogue`); :func:`evaluate` scores count vectors with the
model. Times are seconds, rates frames/s, accuracies 0..1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality.problem import (
    RATE_TOL,
    Choice,
    LatencyMean,
    Link,
    Objective,
    Option,
    Problem,
    Source,
)
from tierflow.operators.planning.queueing import QueueCurve

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Counts = IntArray | FloatArray
"""Counts per column: integer, or fractional (an LP relaxation's)."""

TOL = 1e-7
"""Feasibility tolerance shared with HiGHS, so that both judge a solution alike."""


OptionFilter = Callable[[Source, Option], bool]
"""Which options a policy lets a source use (``all-max``: its native quality only)."""


@dataclass(frozen=True)
class _Class:
    """Interchangeable sources: same site, frame rate and allowed qualities."""

    members: tuple[Source, ...]  # sorted by id
    fps: float
    native: int


@dataclass(frozen=True)
class Compiled:
    """A problem's sources as classes x options (columns ``V``) and its resources (``R``).

    Shapes: ``C`` classes, ``V`` columns (a class on one of its options), ``R`` resources
    (pipelines, then links). Times in seconds, rates in frames/s.
    """

    problem: Problem
    classes: tuple[_Class, ...]
    var_class: IntArray  # (V,)
    var_option: tuple[Option, ...]  # (V,)
    count: FloatArray  # (C,) sources per class
    fps: FloatArray  # (V,) frames/s one source of the column's class sends on it
    native_fps: FloatArray  # (V,) native frames/s of the column's class
    base_s: FloatArray  # (V,) zero-load latency per frame
    acc: FloatArray  # (V,)
    resources: tuple[tuple[str, str, QueueCurve], ...]  # (kind, id, curve) per resource
    load: FloatArray  # (R, V) utilisation added by one source on the column
    per_source: bool  # eq. 3 as the mean over sources (LatencyMean.SOURCES)
    weight: FloatArray  # (V,) weight of a column's zero-load latency in N: f_v, or 1
    wait_weight: FloatArray  # (R,) weight of frames waiting at r in N: 1, or n_r / lambda_r
    mixed: bool  # per source, and a queued resource serves columns of unlike rates

    @property
    def variable_denominator(self) -> bool:
        """Whether eq. 3's denominator ``D`` depends on the counts (a ratio to solve).

        Over frames ``D`` is the analysed frames/s, variable when options fix rates; over
        sources it is ``K``, the number of sources, always constant.
        """
        return self.variable_rate and not self.per_source

    @property
    def denominator(self) -> float:
        """``D`` where it is constant: the native rates' frames/s, or ``K`` per source."""
        return float(self.sources) if self.per_source else self.frames_fps

    @property
    def sources(self) -> int:
        """Number of sources compiled (``K`` of eq. 3-4)."""
        return int(self.count.sum())

    @property
    def frames_fps(self) -> float:
        """Frames per second of all compiled sources together at their native rates."""
        return float(sum(c.fps * len(c.members) for c in self.classes))

    @functools.cached_property
    def variable_rate(self) -> bool:
        """Whether some column's rate is not its class's native one (``D`` is variable)."""
        return bool(np.any(np.abs(self.fps - self.native_fps) > RATE_TOL * self.native_fps))

    def frames(self, x: Counts) -> FloatArray:
        """``D``: analysed frames per second of count vectors ``x`` (D, V); ``K`` per source."""
        if self.per_source:
            return np.full(x.shape[0], max(float(self.sources), 1e-300))
        if not self.variable_rate:
            return np.full(x.shape[0], max(self.frames_fps, 1e-300))
        return np.maximum(x.astype(np.float64) @ self.fps, 1e-300)

    def frame_range(self) -> tuple[float, float]:
        """Least and most ``D`` any count vector can have (each class all at one extreme)."""
        lo = np.full(len(self.classes), np.inf)
        hi = np.zeros(len(self.classes))
        np.minimum.at(lo, self.var_class, self.fps)
        np.maximum.at(hi, self.var_class, self.fps)
        live = np.isfinite(lo)
        return float(lo[live] @ self.count[live]), float(hi[live] @ self.count[live])

    def previous(self) -> tuple[IntArray, bool]:
        """The previous slot's counts from the sources' ``current`` choices.

        Returns:
            counts per column of the sources whose ``current`` names one of their columns
            (quality, pipeline and rate), and whether that holds for every source.
        """
        x = np.zeros(len(self.var_option), dtype=np.int64)
        complete = True
        for c, cls in enumerate(self.classes):
            cols = np.flatnonzero(self.var_class == c)
            keys = {
                (self.var_option[v].quality, self.var_option[v].pipeline, float(self.fps[v])): v
                for v in cols[::-1]
            }  # the first column wins when options repeat
            for s in cls.members:
                cur = s.current
                v = None if cur is None else keys.get((cur.quality, cur.pipeline, rate_of(cur, s)))
                if v is None:
                    complete = False
                else:
                    x[v] += 1
        return x, complete


@dataclass(frozen=True)
class Catalogue:
    """Per-option arrays of one problem, computed once and shared by every compile."""

    options: tuple[Option, ...]
    by_site: Mapping[str | None, tuple[int, ...]]  # option indices per site (None: all)
    quality: IntArray  # (O,)
    fps: FloatArray  # (O,) the option's rate, NaN when it keeps the source's own
    fixed_s: FloatArray  # (O,) processing + extra + transfer (eq. 2) + delays, per frame
    reduce_s: FloatArray  # (O,) T_reduce when below the source's native quality
    unit_load: FloatArray  # (R, O) utilisation added per frame/s
    resources: tuple[tuple[str, str, QueueCurve], ...]  # (kind, id, curve)

    @classmethod
    def of(cls, problem: Problem) -> Catalogue:
        """Fixed times (eq. 1-2) and unit loads of every option of ``problem``."""
        pipes = {p.id: p for p in problem.pipelines}
        links = {lk.id: lk for lk in problem.links}
        resources = [("pipeline", p.id, p.queue) for p in problem.pipelines] + [
            ("link", lk.id, lk.queue) for lk in problem.links
        ]
        index = {(kind, rid): r for r, (kind, rid, _) in enumerate(resources)}
        unit = np.zeros((len(resources), len(problem.options)), dtype=np.float64)
        fixed = np.zeros(len(problem.options), dtype=np.float64)
        by_site: dict[str | None, list[int]] = {}
        for i, o in enumerate(problem.options):
            by_site.setdefault(o.site, []).append(i)
            pipe = pipes[o.pipeline]
            unit[index["pipeline", o.pipeline], i] = 1.0 / pipe.capacity_fps
            fixed[i] = pipe.processing_s + o.extra_s
            for lk in o.links:
                link = links[lk]
                fixed[i] += _transfer_s(o.bits_per_frame, link) + link.delay_s
                if not math.isinf(link.bandwidth_mbps):
                    unit[index["link", lk], i] += o.bits_per_frame / (link.bandwidth_mbps * 1e6)
        return cls(
            options=tuple(problem.options),
            by_site={k: tuple(v) for k, v in by_site.items()},
            quality=np.asarray([o.quality for o in problem.options], dtype=np.int64),
            fps=np.asarray(
                [math.nan if o.fps is None else o.fps for o in problem.options], dtype=np.float64
            ),
            fixed_s=fixed,
            reduce_s=np.asarray([o.reduce_s for o in problem.options], dtype=np.float64),
            unit_load=unit,
            resources=tuple(resources),
        )

    def serving(self, source: Source, allow: OptionFilter) -> list[int]:
        """Indices of the options ``source`` may use, in the problem's order."""
        ids = sorted(self.by_site.get(None, ()) + self.by_site.get(source.site, ()))
        return [i for i in ids if self.options[i].serves(source) and allow(source, self.options[i])]


def compile_problem(
    problem: Problem, cat: Catalogue, sources: Sequence[Source], allow: OptionFilter
) -> Compiled:
    """``sources`` of ``problem`` as classes on the options ``allow`` lets them use."""
    groups: dict[tuple[str, float, tuple[int, ...]], list[Source]] = {}
    for s in sources:
        groups.setdefault((s.site, s.fps, tuple(sorted(set(s.qualities)))), []).append(s)
    classes: list[_Class] = []
    var_class: list[int] = []
    var_index: list[int] = []
    for key in sorted(groups):
        members = tuple(sorted(groups[key], key=lambda s: s.id))
        opts = cat.serving(members[0], allow)
        var_class += [len(classes)] * len(opts)
        var_index += opts
        classes.append(_Class(members, members[0].fps, members[0].native))
    vc = np.asarray(var_class, dtype=np.int64)
    vi = np.asarray(var_index, dtype=np.int64)
    native_fps = np.asarray([c.fps for c in classes], dtype=np.float64)[vc]
    fps = np.where(np.isnan(cat.fps[vi]), native_fps, cat.fps[vi]) if vi.size else native_fps
    native = np.asarray([c.native for c in classes], dtype=np.int64)[vc]
    # eq. 1: mu*T_reduce counts only below the source's native quality
    base = cat.fixed_s[vi] + np.where(cat.quality[vi] < native, cat.reduce_s[vi], 0.0)
    load = cat.unit_load[:, vi] * fps[None, :]
    per_source = problem.latency_mean is LatencyMean.SOURCES
    wait_weight, mixed = _wait_weights(load, fps, cat.resources, per_source)
    return Compiled(
        problem=problem,
        classes=tuple(classes),
        var_class=vc,
        var_option=tuple(cat.options[i] for i in var_index),
        count=np.asarray([len(c.members) for c in classes], dtype=np.float64),
        fps=fps,
        native_fps=native_fps,
        base_s=base,
        acc=np.asarray([cat.options[i].accuracy for i in var_index], dtype=np.float64),
        resources=cat.resources,
        load=load,
        per_source=per_source,
        weight=np.ones_like(fps) if per_source else fps,
        wait_weight=wait_weight,
        mixed=mixed,
    )


def _wait_weights(
    load: FloatArray,
    fps: FloatArray,
    resources: Sequence[tuple[str, str, QueueCurve]],
    per_source: bool,
) -> tuple[FloatArray, bool]:
    """Weights of each resource's frames waiting ``L_q`` in eq. 3's numerator.

    Over frames, 1 (Little's law: the frames' total waiting per second). Over sources, a
    source on ``r`` waits ``L_q / lambda_r`` per frame, so the ``n_r`` sources there add
    ``n_r * L_q / lambda_r``: the weight ``n_r / lambda_r`` is ``1 / f`` when every column
    using ``r`` has rate ``f`` (exact, linear) and depends on the counts otherwise
    (``mixed``); its start is then ``1 / (the highest rate)``, refined by :mod:`.ratio`.
    """
    weights = np.ones(load.shape[0])
    mixed = False
    if not per_source:
        return weights, mixed
    for r, (_, _, curve) in enumerate(resources):
        rates = fps[load[r] > 0]
        if rates.size == 0:
            continue
        weights[r] = 1.0 / float(rates.max())
        queued = max(curve.waiting_frames) > 0
        mixed |= queued and float(rates.max() - rates.min()) > RATE_TOL * float(rates.max())
    return weights, mixed


def per_source_wait_weights(comp: Compiled, x: Counts) -> FloatArray:
    """``n_r / lambda_r`` at counts ``x`` (V,): the exact weights of :func:`_wait_weights`."""
    used = (comp.load > 0).astype(np.float64)
    xf = x.astype(np.float64)
    sources, rate = used @ xf, used @ (xf * comp.fps)
    return np.where(rate > 0, sources / np.maximum(rate, 1e-300), comp.wait_weight)


def rate_of(choice: Choice, source: Source) -> float:
    """Frames/s ``source`` sends on ``choice`` (its native rate when the choice names none)."""
    return source.fps if choice.fps is None else choice.fps


def _transfer_s(bits: float, link: Link) -> float:
    """``S / w`` of eq. 2 over one link, seconds."""
    return 0.0 if math.isinf(link.bandwidth_mbps) else bits / (link.bandwidth_mbps * 1e6)


@dataclass(frozen=True)
class Eval:
    """Scores of ``D`` count vectors: feasibility, eq. 3-5 means, resource use."""

    feasible: BoolArray  # (D,)
    latency_s: FloatArray  # (D,) eq. 3's mean: over sources, or over analysed frames
    accuracy: FloatArray  # (D,) mean over sources
    utility: FloatArray  # (D,)
    utilisation: FloatArray  # (D, R)
    waiting: FloatArray  # (D, R) frames waiting L_q (0 with the makespan objective)
    makespan_s: FloatArray  # (D,) drain time of the run's load (NaN unless that objective)


def evaluate(comp: Compiled, x: Counts) -> Eval:
    """Score count vectors ``x`` (D, V) with the model every policy shares."""
    xf = x.astype(np.float64)
    util = xf @ comp.load.T
    if comp.problem.objective is Objective.MAKESPAN:
        return _evaluate_makespan(comp, xf, util)
    waiting = np.zeros_like(util)
    cap_ok = np.ones(x.shape[0], dtype=np.bool_)
    for r, (_, _, curve) in enumerate(comp.resources):
        cap_ok &= util[:, r] <= curve.max_utilisation + TOL
        waiting[:, r] = curve.waiting_array(np.minimum(util[:, r], curve.max_utilisation))
    k = max(comp.sources, 1)
    if comp.per_source:  # eq. 3: sum over sources of their mean, n_r * L_q / lambda_r
        used = (comp.load > 0).astype(np.float64)
        n_r, lam_r = xf @ used.T, (xf * comp.fps) @ used.T
        share = np.divide(n_r, lam_r, out=np.zeros_like(n_r), where=lam_r > 0)
        latency = (xf @ comp.base_s + (share * waiting).sum(axis=1)) / k
    else:  # over analysed frames: frame-seconds over frames
        latency = (xf @ (comp.fps * comp.base_s) + waiting.sum(axis=1)) / comp.frames(x)
    accuracy = xf @ comp.acc / k
    acc_ok = accuracy >= comp.problem.floor - TOL
    utility = accuracy - comp.problem.theta_per_s * latency
    makespan = np.full(x.shape[0], np.nan)
    return Eval(cap_ok & acc_ok, latency, accuracy, utility, util, waiting, makespan)


def drain_factor(comp: Compiled, util: FloatArray) -> FloatArray:
    """``max(1, u)`` of the most loaded resource on each column's path, (D, V).

    Args:
        comp: the compiled problem.
        util: utilisation (offered over capacity) per resource, (D, R).
    """
    rho = np.ones((util.shape[0], comp.load.shape[1]))
    for r in range(comp.load.shape[0]):
        cols = comp.load[r] > 0
        if cols.any():
            rho[:, cols] = np.maximum(rho[:, cols], util[:, r : r + 1])
    return rho


def makespan_latency(comp: Compiled, util: FloatArray) -> FloatArray:
    """Mean latency of a column's frames over the run, seconds, (D, V).

    Fluid FIFO drain: a frame offered at ``t`` in ``[0, duration_s]`` to a bottleneck
    offered ``rho > 1`` times its capacity leaves it at ``rho * t``, so it waits
    ``(rho - 1) * t``, on average ``duration_s * (rho - 1) / 2``; added to the zero-load
    part of eq. 1-2. The steady-state queue waiting of the other objectives is left out: it
    is not defined past a curve's utilisation cap, and below saturation it is seconds
    against the hours of backlog this mode is for.
    """
    backlog = comp.problem.duration_s * (drain_factor(comp, util) - 1.0) / 2.0
    return comp.base_s[None, :] + backlog


def _evaluate_makespan(comp: Compiled, xf: FloatArray, util: FloatArray) -> Eval:
    """:func:`evaluate` with the makespan objective: no capacity rows, eq. 6 still holds."""
    k = max(comp.sources, 1)
    per_frame = makespan_latency(comp, util)
    if comp.per_source:
        latency = (xf * per_frame).sum(axis=1) / k
    else:
        latency = (xf * comp.fps * per_frame).sum(axis=1) / comp.frames(xf)
    accuracy = xf @ comp.acc / k
    feasible = accuracy >= comp.problem.floor - TOL
    utility = accuracy - comp.problem.theta_per_s * latency
    peak = util.max(axis=1, initial=0.0)
    makespan = comp.problem.duration_s * np.maximum(1.0, peak)
    return Eval(feasible, latency, accuracy, utility, util, np.zeros_like(util), makespan)


@dataclass(frozen=True)
class Outcome:
    """What a policy's core found: a status and, when feasible, the counts per column."""

    status: SolveStatus
    counts: IntArray | None = None
    rule: str = ""
    message: str = ""
    gap: float = 0.0  # proven relative gap of the counts' objective
    iterations: int = 0  # programs solved (the frame-rate iteration); 0 when enumerated


@dataclass(frozen=True)
class Budget:
    """What a solve may spend: a deadline, an optimality gap and an enumeration limit."""

    deadline: float  # time.perf_counter() value
    gap: float  # relative optimality gap accepted (milp)
    exact_limit: int  # most distributions exact enumerates


Core = Callable[[Compiled, Budget], Outcome]
"""A policy's solver: compiled problem and budget in, outcome out."""
