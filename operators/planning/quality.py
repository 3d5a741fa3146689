"""Quality assignment: Algorithm 1 of Houmani et al. (SBAC-PAD 2021) for all sources at once.

Each source gets a quality and a pipeline serving it so that the estimated mean latency
(eq. 1-3) is least, or the utility ``U = a - Theta*T`` (eq. 5) greatest, subject to the
accuracy constraint (eq. 4, 6: mean accuracy >= ``a_min``, default 0.5), each pipeline's
compute capacity and each link's bandwidth. Policies, by name (:func:`assign`):

* ``milp`` — a mixed-integer program solved by HiGHS (highspy).
* ``exact`` — Algorithm 1 as written: enumerate the quality distributions ``B``, keep those
  with accuracy >= ``a_min`` (steps 2-6), refuse when none (steps 7-8), take the fastest
  (step 9) unless the preference rule prefers another (steps 10-12). Small instances only.
* ``all-max`` — the paper's "no adaptation" baseline: every source at its highest quality,
  pipelines chosen by the same MILP.

Model (the same formulas in every policy, so they are comparable):

* Sources are grouped into classes of interchangeable ones (same site, frame rate and
  allowed qualities). Variables are integer counts ``x[c, o]`` of class ``c`` on option
  ``o`` = (quality, pipeline[, site]); Algorithm 1's distributions ``B`` are exactly these
  counts (its ``beta * q_l``) once pipelines and sites are added. Counts are mapped back to
  sources afterwards with rotation (below).
* Per-frame latency of a source on option ``o`` = zero-load part + waiting. The zero-load
  part is eq. 1-2: ``mu*T_reduce`` (quality below the source's native one) + the pipeline's
  processing time (its stages' ``T_E`` for one frame) + ``sum S/w + delay`` over the links of the
  option's path (eq. 2, ``S = gamma*fr^2``). Waiting models ``T_E = Load/C`` under load: every
  pipeline and link ``r`` is a server with utilisation ``u_r`` (pipelines: ``sum fps / C``; links:
  ``sum fps*S / w``) and a convex piecewise-linear curve ``L_q,r(u_r)`` of frames waiting
  (:class:`tierflow.operators.planning.queueing.QueueCurve`). By Little's law the frames' total
  waiting per second is ``sum_r L_q,r(u_r)``, linear in the counts through an epigraph variable per
  resource — exact, not an approximation of the curve.
* Objective: the mean latency over frames (eq. 3; with one frame rate for all sources, as in
  the paper, this is eq. 3's mean over sources) or eq. 5's utility with eq. 4's mean
  accuracy over sources. Capacity: ``u_r <= max utilisation`` (the curve's last breakpoint).
* Nodes enter through the pipelines and links: a pipeline is placed on a node and its
  capacity is that node's share; links are the nodes' uplinks (edge -> fog -> cloud, eq. 2),
  so an option's links depend on the source's site. :func:`options_for_topology` builds the
  options from :class:`tierflow.operators.planning.network.Node` trees.

Preference rule (Algorithm 1 steps 10-12, :class:`PreferenceRule`). The paper compares both
quantities with one operator ``Delta``: ``Delta(L) < 10`` (ms) and ``Delta(A) >= 20%`` where
accuracies are percentages (F1 71.19 %), so ``20%`` is read as 20 percentage points, an
absolute difference of 0.20 (``relative=True`` gives the other reading). ``exact`` runs the
loop as written (``best`` is updated inside it, so the rule can chain). ``milp`` does it
lexicographically: ``L*`` = min latency, then the greatest accuracy with latency
``< L* + 10 ms``; that wins if it gains >= 0.20 over the fastest. Only for the latency
objective: with utility, ``Theta`` already prices the trade-off.

Rotation ("the mapping switches periodically between data sources", §V). Within a class,
sources are ordered for the higher qualities by how reduced they were in the previous slot
(most reduced first), ties by a round-robin offset ``(index - slot) mod n``; so a source
degraded in one slot is first in line for full quality in the next, and no camera stays
degraded while others are not. ``Rotation.STICKY`` instead keeps sources at their previous
quality (hysteresis). Sources keep their previous pipeline when it still serves the quality.

Refusal (steps 7-8). If no assignment satisfies every constraint and sources are joining,
the others are solved alone and the joining sources are admitted one by one in the order
given (Algorithm 1 runs once per joining source); one that cannot be admitted is refused with
the reason (accuracy below ``a_min``, or no capacity). A source whose qualities no pipeline
serves is refused up front (``no-pipeline``).

Solving ``milp`` fast. Counts per class instead of binaries per source keep 1000 cameras
at a few hundred integer columns. HiGHS first solves the LP relaxation (a bound), then the
MIP restricted to the box ``[floor, ceil]`` of the LP point; a best-improvement local search
(one source moved between options of its class) polishes that point; if it is proven within
``gap`` (default 0.1 % of the objective) of the LP bound it is the answer, otherwise the full
MIP starts from it. ``optimal`` therefore means "proven within ``gap``"; at the time limit
the best feasible point is returned as ``time-limit`` with its proven gap.

Solver outcomes are values (:class:`SolveStatus`); only programming errors (unknown policy
name, inconsistent input) raise, and they raise :class:`SolverError`.
"""

from __future__ import annotations

import enum
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import highspy
import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError
from tierflow.operators.planning.highs import Rows, SolveStatus, absorb_banner, new_model, status_of
from tierflow.operators.planning.network import Node, frame_bits, route
from tierflow.operators.planning.queueing import QueueCurve

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EXACT_LIMIT = 200_000
"""Most distributions ``exact`` enumerates before it declines the instance."""

_EXACT_CHUNK = 20_000  # distributions scored per numpy batch
_TOL = 1e-7  # feasibility tolerance shared with HiGHS so both judge a solution alike


class SolverError(TierflowError):
    """Quality assignment was called wrongly (unknown policy, inconsistent problem)."""


class Objective(enum.StrEnum):
    """What the assignment optimises."""

    LATENCY = "latency"
    """Least mean latency (eq. 3), Algorithm 1's criterion."""
    UTILITY = "utility"
    """Greatest ``U = a - Theta*T`` (eq. 5)."""


class Rotation(enum.StrEnum):
    """How counts per quality are mapped to sources across slots."""

    ROTATE = "rotate"
    """Reduced qualities move between sources from slot to slot (§V)."""
    STICKY = "sticky"
    """Sources keep their previous quality when the counts allow (hysteresis)."""


@dataclass(frozen=True)
class Choice:
    """A source's quality (pixels) and pipeline id."""

    quality: int
    pipeline: str


@dataclass(frozen=True)
class Source:
    """A camera to assign.

    Attributes:
        id: source id.
        fps: frame rate, frames/s.
        qualities: qualities it can capture at (pixels); the highest is its native one.
        current: its assignment in the previous slot, None if it has none yet.
        joining: it is asking to join (Algorithm 1 may refuse it).
        site: the edge node it sits on (selects site-specific options).
    """

    id: str
    fps: float
    qualities: tuple[int, ...]
    current: Choice | None = None
    joining: bool = False
    site: str = ""

    @property
    def native(self) -> int:
        """The highest allowed quality: capturing below it is a reduction (``mu = 1``)."""
        return max(self.qualities)


@dataclass(frozen=True)
class Pipeline:
    """A chain of services (resize, detect, draw) serving frames, as one server.

    Attributes:
        id: pipeline id.
        capacity_fps: ``C`` of its bottleneck (``T_E = Load/C``): frames/s of busy time; the
            node share it was placed with decides it.
        processing_s: time through its stages for one frame at zero load, seconds.
        queue: frames waiting against utilisation; its last breakpoint caps utilisation.
    """

    id: str
    capacity_fps: float
    processing_s: float = 0.0
    queue: QueueCurve = field(default_factory=QueueCurve.pollaczek_khinchine)


def _link_queue() -> QueueCurve:
    # frames of one quality have nearly fixed sizes: deterministic service (M/D/1)
    return QueueCurve.pollaczek_khinchine(cv2=0.0, max_utilisation=0.95)


@dataclass(frozen=True)
class Link:
    """A network link between tiers (an uplink, eq. 2).

    Attributes:
        id: link id.
        bandwidth_mbps: ``w``, Mbit/s (inf: never a constraint, no transfer time).
        delay_s: propagation delay, seconds.
        queue: frames waiting against utilisation (default M/D/1 up to 95 %).
    """

    id: str
    bandwidth_mbps: float
    delay_s: float = 0.0
    queue: QueueCurve = field(default_factory=_link_queue)


@dataclass(frozen=True)
class Option:
    """One way to serve a source: a quality on a pipeline, over some links.

    Attributes:
        quality: frame side, pixels.
        pipeline: pipeline id.
        accuracy: ``E(q, d)`` of the pipeline's model at this quality (eq. 4), 0..1.
        bits_per_frame: ``S = gamma*q^2`` sent over each link, bits.
        links: link ids on the path from the source to the pipeline (eq. 2).
        extra_s: any other fixed per-frame time, seconds.
        reduce_s: ``T_reduce`` when the quality is below the source's native one (eq. 1).
        site: only for sources on this site; None for every site.
    """

    quality: int
    pipeline: str
    accuracy: float
    bits_per_frame: float = 0.0
    links: tuple[str, ...] = ()
    extra_s: float = 0.0
    reduce_s: float = 0.0
    site: str | None = None

    def serves(self, source: Source) -> bool:
        """Whether ``source`` may use this option."""
        return self.quality in source.qualities and self.site in (None, source.site)


@dataclass(frozen=True)
class PreferenceRule:
    """Algorithm 1 steps 10-12: a slightly slower but much more accurate choice wins.

    Attributes:
        latency_s: the other choice must be less than this much slower (10 ms).
        accuracy_gain: and at least this much more accurate (0.20).
        relative: gain as a fraction of the fastest's accuracy instead of absolute points.
    """

    latency_s: float = 0.010
    accuracy_gain: float = 0.20
    relative: bool = False

    def prefers(self, latency_gap_s: float, accuracy_best: float, accuracy_other: float) -> bool:
        """Whether the other choice replaces the current best."""
        gain = accuracy_other - accuracy_best
        if self.relative:
            gain = gain / accuracy_best if accuracy_best > 0 else math.inf
        return latency_gap_s < self.latency_s and gain >= self.accuracy_gain - 1e-12

    @property
    def name(self) -> str:
        """Label of the rule in results."""
        unit = "% rel" if self.relative else "%"
        return f"preference-rule {self.latency_s * 1e3:g}ms/{self.accuracy_gain * 100:g}{unit}"


@dataclass(frozen=True)
class Problem:
    """One slot's quality assignment problem.

    Attributes:
        sources: the sources to assign.
        options: every (quality, pipeline[, site]) way to serve them.
        pipelines: the pipelines the options name.
        links: the links the options name.
        a_min: accuracy threshold of eq. 6 (mean over sources), 0..1.
        accuracy_floor: this slot's floor when a long-term budget is kept
            (:class:`~tierflow.operators.planning.accuracy_model.LongTermAccuracy`);
            None uses ``a_min``.
        objective: latency (Algorithm 1) or utility (eq. 5).
        theta_per_s: ``Theta`` of eq. 5, accuracy per second of latency.
        preference: Algorithm 1's 10 ms / 20 % rule; None to switch it off.
        rotation: how reduced qualities move between sources over slots.
        slot: slot number (the round-robin offset of rotation).
    """

    sources: Sequence[Source]
    options: Sequence[Option]
    pipelines: Sequence[Pipeline]
    links: Sequence[Link] = ()
    a_min: float = 0.5
    accuracy_floor: float | None = None
    objective: Objective = Objective.LATENCY
    theta_per_s: float = 1.0
    preference: PreferenceRule | None = field(default_factory=PreferenceRule)
    rotation: Rotation = Rotation.ROTATE
    slot: int = 0

    def __post_init__(self) -> None:
        for name in ("sources", "options", "pipelines", "links"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems: list[str] = []
        for kind, ids in (
            ("source", [s.id for s in self.sources]),
            ("pipeline", [p.id for p in self.pipelines]),
            ("link", [lk.id for lk in self.links]),
        ):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                problems.append(f"duplicate {kind} ids {dup}")
        pipes = {p.id for p in self.pipelines}
        links = {lk.id for lk in self.links}
        for o in self.options:
            if o.pipeline not in pipes:
                problems.append(f"option {o.quality}@{o.pipeline}: unknown pipeline")
            if set(o.links) - links:
                problems.append(f"option {o.quality}@{o.pipeline}: unknown links {o.links}")
            if not 0.0 <= o.accuracy <= 1.0 or o.bits_per_frame < 0:
                problems.append(f"option {o.quality}@{o.pipeline}: accuracy or bits out of range")
        problems += [f"source {s.id}: fps must be > 0" for s in self.sources if s.fps <= 0]
        problems += [f"source {s.id}: no qualities" for s in self.sources if not s.qualities]
        problems += [f"option {o.quality}@{o.pipeline}: quality must be > 0"
                     for o in self.options if o.quality <= 0]  # fmt: skip
        if self.theta_per_s < 0:
            problems.append(f"theta_per_s must be >= 0, got {self.theta_per_s}")
        problems += [
            f"pipeline {p.id}: capacity must be > 0" for p in self.pipelines if p.capacity_fps <= 0
        ]
        problems += [
            f"link {lk.id}: bandwidth must be > 0" for lk in self.links if lk.bandwidth_mbps <= 0
        ]
        if not 0.0 <= self.a_min <= 1.0:
            problems.append(f"a_min must be in [0, 1], got {self.a_min}")
        if problems:
            msg = "quality Problem: " + "; ".join(problems)
            raise SolverError(msg)

    @property
    def floor(self) -> float:
        """The accuracy this slot must reach."""
        return self.a_min if self.accuracy_floor is None else self.accuracy_floor


@dataclass(frozen=True)
class SourceAssignment:
    """One source's quality and pipeline with its estimated latency (s) and accuracy."""

    source: str
    quality: int
    pipeline: str
    latency_s: float
    accuracy: float
    reduced: bool


@dataclass(frozen=True)
class Refusal:
    """A source that was not admitted: ``reason`` is a code, ``detail`` a sentence."""

    source: str
    reason: str
    detail: str


@dataclass(frozen=True)
class AssignmentResult:
    """What a policy decided.

    Attributes:
        policy: policy name.
        status: how the solve ended; assignments are present for OPTIMAL and for a
            TIME_LIMIT that found a feasible point.
        assignments: per admitted source.
        refused: sources not admitted, with reasons.
        latency_s: estimated mean latency over frames (eq. 3), NaN without assignments.
        accuracy: estimated mean accuracy over sources (eq. 4).
        utility: eq. 5 with the problem's ``Theta``.
        objective: the optimised value (latency_s or utility).
        rule: what chose it: ``min-latency``, ``max-utility``, the preference rule's name.
        solve_time_s: wall time of the whole call, seconds.
        pipeline_utilisation: per pipeline id, 0..1.
        link_utilisation: per link id, 0..1.
        message: detail on errors, time limits and infeasibility.
        solved: whether ``assignments`` is a usable (feasible) assignment.
        gap: proven relative gap of the objective to the best bound (0 for ``exact``): the
            answer is within it of the optimum, also after a time limit.
    """

    policy: str
    status: SolveStatus
    assignments: tuple[SourceAssignment, ...] = ()
    refused: tuple[Refusal, ...] = ()
    latency_s: float = math.nan
    accuracy: float = math.nan
    utility: float = math.nan
    objective: float = math.nan
    rule: str = ""
    solve_time_s: float = 0.0
    pipeline_utilisation: Mapping[str, float] = field(default_factory=dict)
    link_utilisation: Mapping[str, float] = field(default_factory=dict)
    message: str = ""
    solved: bool = False
    gap: float = math.nan

    def by_source(self) -> dict[str, SourceAssignment]:
        """Assignments keyed by source id."""
        return {a.source: a for a in self.assignments}


# ---------------------------------------------------------------------------------------------
# Compiled form: classes x options as columns, pipelines + links as resources


OptionFilter = Callable[[Source, Option], bool]


@dataclass(frozen=True)
class _Class:
    members: tuple[Source, ...]  # sorted by id
    fps: float
    native: int


@dataclass(frozen=True)
class _Compiled:
    problem: Problem
    classes: tuple[_Class, ...]
    var_class: IntArray  # (V,)
    var_option: tuple[Option, ...]  # (V,)
    count: FloatArray  # (C,) sources per class
    fps: FloatArray  # (V,) frames/s of one source of the column's class
    base_s: FloatArray  # (V,) zero-load latency per frame
    acc: FloatArray  # (V,)
    resources: tuple[tuple[str, str, QueueCurve], ...]  # (kind, id, curve) per resource
    load: FloatArray  # (R, V) utilisation added by one source on the column

    @property
    def sources(self) -> int:
        return int(self.count.sum())

    @property
    def frames_fps(self) -> float:
        return float(sum(c.fps * len(c.members) for c in self.classes))


@dataclass(frozen=True)
class _Catalogue:
    """Per-option arrays of one problem, computed once and shared by every compile."""

    options: tuple[Option, ...]
    by_site: Mapping[str | None, tuple[int, ...]]  # option indices per site (None: all)
    quality: IntArray  # (O,)
    fixed_s: FloatArray  # (O,) processing + extra + transfer (eq. 2) + delays, per frame
    reduce_s: FloatArray  # (O,) T_reduce when below the source's native quality
    unit_load: FloatArray  # (R, O) utilisation added per frame/s
    resources: tuple[tuple[str, str, QueueCurve], ...]  # (kind, id, curve)

    @classmethod
    def of(cls, problem: Problem) -> _Catalogue:
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
            fixed_s=fixed,
            reduce_s=np.asarray([o.reduce_s for o in problem.options], dtype=np.float64),
            unit_load=unit,
            resources=tuple(resources),
        )

    def serving(self, source: Source, allow: OptionFilter) -> list[int]:
        """Indices of the options ``source`` may use, in the problem's order."""
        ids = sorted(self.by_site.get(None, ()) + self.by_site.get(source.site, ()))
        return [i for i in ids if self.options[i].serves(source) and allow(source, self.options[i])]


def _compile(
    problem: Problem, cat: _Catalogue, sources: Sequence[Source], allow: OptionFilter
) -> _Compiled:
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
    fps = np.asarray([c.fps for c in classes], dtype=np.float64)[vc]
    native = np.asarray([c.native for c in classes], dtype=np.int64)[vc]
    # eq. 1: mu*T_reduce counts only below the source's native quality
    base = cat.fixed_s[vi] + np.where(cat.quality[vi] < native, cat.reduce_s[vi], 0.0)
    return _Compiled(
        problem=problem,
        classes=tuple(classes),
        var_class=vc,
        var_option=tuple(cat.options[i] for i in var_index),
        count=np.asarray([len(c.members) for c in classes], dtype=np.float64),
        fps=fps,
        base_s=base,
        acc=np.asarray([cat.options[i].accuracy for i in var_index], dtype=np.float64),
        resources=cat.resources,
        load=cat.unit_load[:, vi] * fps[None, :],
    )


def _transfer_s(bits: float, link: Link) -> float:
    """``S / w`` of eq. 2 over one link, seconds."""
    return 0.0 if math.isinf(link.bandwidth_mbps) else bits / (link.bandwidth_mbps * 1e6)


@dataclass(frozen=True)
class _Eval:
    feasible: BoolArray  # (D,)
    latency_s: FloatArray  # (D,) mean over frames
    accuracy: FloatArray  # (D,) mean over sources
    utility: FloatArray  # (D,)
    utilisation: FloatArray  # (D, R)
    waiting: FloatArray  # (D, R) frames waiting L_q


def _evaluate(comp: _Compiled, x: IntArray) -> _Eval:
    """Score count vectors ``x`` (D, V) with the model every policy shares."""
    xf = x.astype(np.float64)
    util = xf @ comp.load.T
    waiting = np.zeros_like(util)
    cap_ok = np.ones(x.shape[0], dtype=np.bool_)
    for r, (_, _, curve) in enumerate(comp.resources):
        cap_ok &= util[:, r] <= curve.max_utilisation + _TOL
        waiting[:, r] = curve.waiting_array(np.minimum(util[:, r], curve.max_utilisation))
    k, frames = max(comp.sources, 1), max(comp.frames_fps, 1e-300)
    latency = (xf @ (comp.fps * comp.base_s) + waiting.sum(axis=1)) / frames
    accuracy = xf @ comp.acc / k
    acc_ok = accuracy >= comp.problem.floor - _TOL
    utility = accuracy - comp.problem.theta_per_s * latency
    return _Eval(cap_ok & acc_ok, latency, accuracy, utility, util, waiting)


@dataclass(frozen=True)
class _Outcome:
    status: SolveStatus
    counts: IntArray | None = None
    rule: str = ""
    message: str = ""
    gap: float = 0.0  # proven relative gap of the counts' objective


@dataclass(frozen=True)
class _Budget:
    deadline: float  # time.perf_counter() value
    gap: float  # relative optimality gap accepted (milp)
    exact_limit: int  # most distributions exact enumerates


Core = Callable[[_Compiled, _Budget], _Outcome]


# ---------------------------------------------------------------------------------------------
# MILP (HiGHS)


class _Goal(enum.Enum):
    LATENCY = enum.auto()
    UTILITY = enum.auto()
    ACCURACY = enum.auto()  # the preference rule's second stage


class _Milp:
    """The program over one compiled problem, re-solvable for the preference rule.

    Columns: ``x[v]`` integer counts (class, option); ``u[r]`` utilisation of resource
    ``r`` (bounded by its capacity); ``z[r]`` frames waiting at ``r``. Keeping ``u`` as a
    column makes each piece of ``L_q`` a two-entry row, which keeps the LP sparse. The
    objective is in milliseconds (latency) or thousandths (utility, accuracy), so that the
    solver's absolute tolerances mean the same thing in every stage.

    :meth:`solve` works in three steps: the LP relaxation gives a lower bound; the MIP
    restricted to the box ``[floor, ceil]`` of the LP solution (solved to ``gap / 2``) gives
    within milliseconds an integer point, accepted when it is within ``gap`` of the LP bound
    (so proven within ``gap`` of the optimum); otherwise the full MIP starts from it. At
    1000 sources the box point is typically 0.02-0.07 % above the bound, where the full MIP
    would spend seconds closing the last 0.01 %.
    """

    def __init__(self, comp: _Compiled, h: highspy.Highs) -> None:
        self.comp = comp
        self.h = h
        h.setOptionValue("mip_feasibility_tolerance", _TOL / 10)
        h.setOptionValue("random_seed", 0)
        n_x = len(comp.var_option)
        self.frames = max(comp.frames_fps, 1e-300)
        self.lat_cost = 1e3 * comp.fps * comp.base_s  # ms of latency contributed per column
        self.ub = comp.count[comp.var_class]
        self.x_idx = np.arange(n_x, dtype=np.int32)
        h.addVariables(n_x, lb=0.0, ub=self.ub.tolist(), type=highspy.HighsVarType.kInteger)
        active = [r for r in range(len(comp.resources)) if np.any(comp.load[r] > 0)]
        if active:
            caps = [comp.resources[r][2].max_utilisation for r in active]
            h.addVariables(len(active), lb=0.0, ub=caps)
        queued = [
            (j, r) for j, r in enumerate(active) if max(comp.resources[r][2].waiting_frames) > 0
        ]
        self.n_x, self.n_u, self.n_z = n_x, len(active), len(queued)
        self.active, self.queued = active, queued
        self.cost_x = np.zeros(n_x)
        self.cost_r = np.zeros(len(comp.resources) + 1)
        self.latency_cap = math.inf  # total frame latency (ms x frames/s) of limit_latency
        self.proven_gap = math.inf  # of the last solve: (objective - bound) / max(1, |objective|)
        self._moves: _Moves | None = None  # built on first use: most solves never need it
        if queued:
            h.addVariables(len(queued), lb=0.0)
        self.z_idx = np.arange(n_x + self.n_u, n_x + self.n_u + self.n_z, dtype=np.int32)
        rows = Rows()
        # Sum over options = sources of the class: one quality and pipeline each
        # (§IV-B: sum_x beta_x = 1 per source).
        for c in range(len(comp.classes)):
            cols = np.flatnonzero(comp.var_class == c)
            rows.add(cols, np.ones(cols.size), comp.count[c], comp.count[c])
        # eq. 4 + eq. 6: mean accuracy over sources >= a_min (or this slot's floor).
        rows.add(self.x_idx, comp.acc, comp.problem.floor * comp.sources - _TOL, math.inf)
        for j, r in enumerate(active):
            # u_r = pipeline sum fps/C (T_E = Load/C) or link sum fps*S/w (eq. 2);
            # its column bound is the capacity: u_r <= max utilisation.
            cols = np.flatnonzero(comp.load[r] > 0)
            rows.add(np.append(cols, n_x + j), np.append(comp.load[r, cols], -1.0), 0.0, 0.0)
        for k, (j, r) in enumerate(queued):
            # epigraph of the convex piecewise-linear L_q(u): z_r >= slope_i*u_r + icpt_i
            slopes, icpts = comp.resources[r][2].pieces()
            for slope, icpt in zip(slopes, icpts, strict=True):
                if slope > 0 or icpt > 0:  # z >= 0 already covers the flat zero piece
                    rows.add([n_x + j, n_x + self.n_u + k], [-slope, 1.0], icpt, math.inf)
        rows.flush(h)

    def set_goal(self, goal: _Goal) -> None:
        """Objective: eq. 3 latency (ms), -eq. 5 utility or -eq. 4 accuracy (x 1000)."""
        comp = self.comp
        lat_x, lat_z = self.lat_cost / self.frames, np.full(self.n_z, 1e3 / self.frames)
        acc_x = 1e3 * comp.acc / max(comp.sources, 1)
        if goal is _Goal.LATENCY:
            cost_x, cost_z = lat_x, lat_z
        elif goal is _Goal.UTILITY:
            theta = comp.problem.theta_per_s  # per second; latency terms are in ms
            cost_x, cost_z = theta * lat_x - acc_x, theta * lat_z
        else:  # a tiny latency weight breaks accuracy ties towards the faster choice
            cost_x, cost_z = 1e-6 * lat_x - acc_x, 1e-6 * lat_z
        self.h.changeColsCost(self.n_x, self.x_idx, cost_x)
        if self.n_z:
            self.h.changeColsCost(self.n_z, self.z_idx, cost_z)
        self.cost_x = cost_x
        self.cost_r = np.zeros(len(comp.resources) + 1)  # per resource (+ the moves' dummy)
        self.cost_r[[r for _, r in self.queued]] = cost_z

    def limit_latency(self, latency_bound_s: float) -> None:
        """Add eq. 3's mean latency < ``latency_bound_s`` (the preference rule's window)."""
        cols = np.concatenate([self.x_idx, self.z_idx])
        coefs = np.concatenate([self.lat_cost, np.full(self.n_z, 1e3)])
        rows = Rows()
        self.latency_cap = latency_bound_s * 1e3 * self.frames - 1e-6
        rows.add(cols, coefs, -math.inf, self.latency_cap)
        rows.flush(self.h)

    def _run(self, deadline: float, *, integer: bool, gap: float = 0.0) -> SolveStatus:
        types = np.full(self.n_x, 1 if integer else 0, dtype=np.uint8)
        self.h.changeColsIntegrality(self.n_x, self.x_idx, types)
        self.h.setOptionValue("mip_rel_gap", gap)
        self.h.setOptionValue("mip_abs_gap", 1e-9)
        self.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
        self.h.run()
        return status_of(self.h.getModelStatus())

    def relaxation(self, deadline: float) -> tuple[SolveStatus, float, FloatArray]:
        """LP relaxation: status, objective (a bound on the MIP's), counts."""
        status = self._run(deadline, integer=False)
        x = np.asarray(self.h.getSolution().col_value[: self.n_x], dtype=np.float64)
        return status, self.h.getInfo().objective_function_value, x

    def solve(self, deadline: float, gap: float) -> tuple[SolveStatus, IntArray | None]:
        """Integer counts proven within relative ``gap`` of the optimum (see the class)."""
        status, bound, x_lp = self.relaxation(deadline)
        self.proven_gap = math.inf
        if status is not SolveStatus.OPTIMAL:
            return status, None
        if np.all(np.abs(x_lp - np.rint(x_lp)) <= 1e-9):
            self.proven_gap = 0.0
            return status, np.rint(x_lp).astype(np.int64)
        lo = np.maximum(np.floor(x_lp + 1e-9), 0.0)
        hi = np.minimum(np.ceil(x_lp - 1e-9), self.ub)
        self.h.changeColsBounds(self.n_x, self.x_idx, lo, hi)
        status = self._run(deadline, integer=True, gap=gap / 2)
        found = status is not SolveStatus.ERROR and self.h.getSolution().value_valid
        start = self._counts(self.h.getSolution()) if found else None
        self.h.changeColsBounds(self.n_x, self.x_idx, np.zeros(self.n_x), self.ub)

        def close_enough(x: IntArray, lower: float = bound) -> bool:
            objective = self.objective(x)
            self.proven_gap = max(objective - lower, 0.0) / max(1.0, abs(objective))
            return self.proven_gap <= gap

        if start is not None and not close_enough(start):
            floor_sum = self.comp.problem.floor * self.comp.sources - _TOL
            self._moves = self._moves or _Moves(self.comp)
            start = self._moves.improve(
                start, self.cost_x, self.cost_r, floor_sum, self.latency_cap, deadline
            )
        if start is not None:
            if close_enough(start):
                return SolveStatus.OPTIMAL, start
            self.h.setSolution(self.n_x + self.n_u + self.n_z, self._all_cols(), self._point(start))
        if time.perf_counter() >= deadline:
            return SolveStatus.TIME_LIMIT, start
        status = self._run(deadline, integer=True, gap=gap)
        solution = self.h.getSolution()
        if status is SolveStatus.OPTIMAL or (
            status is SolveStatus.TIME_LIMIT and solution.value_valid
        ):
            best = self._counts(solution)
            if start is not None and self.objective(start) < self.objective(best):
                best = start  # HiGHS may stop before it has used the start
            dual = self.h.getInfo().mip_dual_bound
            close_enough(best, max(bound, dual) if math.isfinite(dual) else bound)
            return status, best
        return status, start if status is SolveStatus.TIME_LIMIT else None

    def objective(self, x: IntArray) -> float:
        """The program's objective at counts ``x`` (``z`` at its least feasible value)."""
        waiting = self._waiting(x)
        return float(self.cost_x @ x + self.cost_r[[r for _, r in self.queued]] @ waiting)

    def _waiting(self, x: IntArray) -> FloatArray:
        """``L_q`` of the queued resources at counts ``x``.

        Utilisation is clipped to the capacity: the solver's feasibility tolerance lets it
        overshoot by a hair.
        """
        u = self.comp.load @ x.astype(np.float64)
        curves = [self.comp.resources[r][2] for _, r in self.queued]
        return np.asarray(
            [
                q.waiting(min(u[r], q.max_utilisation))
                for q, (_, r) in zip(curves, self.queued, strict=True)
            ],
            dtype=np.float64,
        )

    def _all_cols(self) -> npt.NDArray[np.int32]:
        return np.arange(self.n_x + self.n_u + self.n_z, dtype=np.int32)

    def _point(self, x: IntArray) -> FloatArray:
        """Every column's value at counts ``x``: a MIP start for HiGHS."""
        u = self.comp.load @ x.astype(np.float64)
        return np.concatenate([x.astype(np.float64), u[self.active], self._waiting(x)])

    def _counts(self, solution: highspy.HighsSolution) -> IntArray:
        values = np.asarray(solution.col_value[: self.n_x], dtype=np.float64)
        return np.rint(values).astype(np.int64)


class _Moves:
    """Local search: move one source at a time between options of its class.

    Best improvement over every (from, to) pair of columns of a class, vectorised: a move
    changes the utilisation only of the resources either column touches, so each pair
    carries those (padded to a fixed width, with a dummy resource ``R`` of no cost) and the
    change of ``L_q`` is the max-of-pieces form of the convex curves on them.
    """

    def __init__(self, comp: _Compiled) -> None:
        n_r = len(comp.resources)
        cols_of = [np.flatnonzero(comp.var_class == c) for c in range(len(comp.classes))]
        pairs = [(a, b) for cols in cols_of for a in cols for b in cols if a != b]
        self.src = np.asarray([a for a, _ in pairs], dtype=np.int64)
        self.dst = np.asarray([b for _, b in pairs], dtype=np.int64)
        touched = comp.load > 0  # (R, V)
        width = max(1, int(touched.sum(axis=0).max(initial=0)))
        per_col = np.full((len(comp.var_option), width), n_r, dtype=np.int64)
        for v in range(len(comp.var_option)):
            rs = np.flatnonzero(touched[:, v])
            per_col[v, : rs.size] = rs
        both = np.sort(np.concatenate([per_col[self.src], per_col[self.dst]], axis=1), axis=1)
        both[:, 1:][both[:, 1:] == both[:, :-1]] = n_r  # a resource both columns touch: once
        self.res = both
        load = np.vstack([comp.load, np.zeros((1, comp.load.shape[1]))])
        self.dload = load[both, self.dst[:, None]] - load[both, self.src[:, None]]
        self.load = load
        self.dacc = comp.acc[self.dst] - comp.acc[self.src]
        self.dlat = 1e3 * comp.fps * comp.base_s  # ms x frames/s per column
        self.dlat = self.dlat[self.dst] - self.dlat[self.src]
        width_k = max(len(q.utilisation) - 1 for _, _, q in comp.resources) if n_r else 1
        self.slopes = np.zeros((n_r + 1, width_k))
        self.icpts = np.full((n_r + 1, width_k), -np.inf)
        self.icpts[n_r, 0] = 0.0
        self.cap = np.full(n_r + 1, np.inf)
        for r, (_, _, curve) in enumerate(comp.resources):
            slopes, icpts = curve.pieces()
            self.slopes[r, : slopes.size] = slopes
            self.icpts[r, : icpts.size] = icpts
            self.cap[r] = curve.max_utilisation + _TOL
        self.acc = comp.acc
        self.lat_x = 1e3 * comp.fps * comp.base_s
        self.queued = np.zeros(n_r + 1, dtype=np.bool_)
        self.queued[:n_r] = [max(q.waiting_frames) > 0 for _, _, q in comp.resources]

    def _q(self, res: IntArray, u: FloatArray) -> FloatArray:
        pieces = self.slopes[res] * u[..., None] + self.icpts[res]
        return np.asarray(pieces.max(axis=-1), dtype=np.float64)

    def improve(
        self,
        x: IntArray,
        cost_x: FloatArray,
        cost_r: FloatArray,
        floor_sum: float,
        latency_cap: float,
        deadline: float,
    ) -> IntArray:
        """Apply improving moves that keep every constraint until none is left (or time)."""
        x = x.copy()
        if self.src.size == 0:
            return x
        dcost = cost_x[self.dst] - cost_x[self.src]
        u = self.load @ x.astype(np.float64)
        acc_sum = float(self.acc @ x)
        all_r = np.arange(u.size)
        latency = float(self.lat_x @ x) + 1e3 * float(self._q(all_r, u)[self.queued].sum())
        for _ in range(4 * int(x.sum()) + 10):
            if time.perf_counter() >= deadline:
                break
            cand = np.flatnonzero((x[self.src] > 0) & (acc_sum + self.dacc >= floor_sum))
            res = self.res[cand]
            u_new = u[res] + self.dload[cand]
            d_q = self._q(res, u_new) - self._q(res, u[res])
            delta = dcost[cand] + np.sum(cost_r[res] * d_q, axis=1)
            d_lat = self.dlat[cand] + 1e3 * np.sum(np.where(self.queued[res], d_q, 0.0), axis=1)
            ok = np.all(u_new <= self.cap[res], axis=1) & (latency + d_lat <= latency_cap)
            ok &= delta < -1e-9 * max(1.0, abs(float(cost_x @ x)))
            if not ok.any():
                break
            best = int(np.argmin(np.where(ok, delta, np.inf)))
            i = cand[best]
            x[self.src[i]] -= 1
            x[self.dst[i]] += 1
            u[res[best]] = u_new[best]
            u[-1] = 0.0
            acc_sum += float(self.dacc[i])
            latency += float(d_lat[best])
        return x


def _milp_core(comp: _Compiled, budget: _Budget) -> _Outcome:
    with new_model() as h:
        return _milp_solve(comp, _Milp(comp, h), budget)


def _milp_solve(comp: _Compiled, model: _Milp, budget: _Budget) -> _Outcome:
    problem = comp.problem
    utility = problem.objective is Objective.UTILITY
    model.set_goal(_Goal.UTILITY if utility else _Goal.LATENCY)
    status, x = model.solve(budget.deadline, budget.gap)
    if x is None:
        return _Outcome(status, message=f"no solution from HiGHS ({status.value})")
    rule = "max-utility" if utility else "min-latency"
    pref = problem.preference
    gap1 = model.proven_gap
    if utility or pref is None:
        return _outcome(status, x, rule, gap1)
    # Preference rule, lexicographically: the most accurate point less than 10 ms slower.
    first = _evaluate(comp, x[None, :])
    lat1, acc1 = float(first.latency_s[0]), float(first.accuracy[0])
    # Bounds first: every source on its most accurate option, then the LP of stage two.
    best_acc = np.full(len(comp.classes), -np.inf)
    np.maximum.at(best_acc, comp.var_class, comp.acc)
    if not pref.prefers(0.0, acc1, float(best_acc @ comp.count) / max(comp.sources, 1) + 1e-9):
        return _outcome(status, x, rule, gap1)
    model.limit_latency(lat1 + pref.latency_s)
    model.set_goal(_Goal.ACCURACY)
    status2, _, x_lp = model.relaxation(budget.deadline)
    acc_bound = float(comp.acc @ x_lp) / max(comp.sources, 1) + 1e-9
    if status2 is SolveStatus.OPTIMAL and not pref.prefers(0.0, acc1, acc_bound):
        return _outcome(status, x, rule, gap1)  # even the LP gains too little
    status2, x2 = model.solve(budget.deadline, budget.gap)
    if x2 is not None:
        second = _evaluate(comp, x2[None, :])
        gap = float(second.latency_s[0]) - lat1
        if second.feasible[0] and pref.prefers(gap, acc1, float(second.accuracy[0])):
            x, rule, gap1 = x2, pref.name, model.proven_gap
    if status2 is SolveStatus.TIME_LIMIT:
        status = status2
    return _outcome(status, x, rule, gap1)


def _outcome(status: SolveStatus, x: IntArray, rule: str, gap: float) -> _Outcome:
    message = ""
    if status is SolveStatus.TIME_LIMIT:
        message = f"time limit: best assignment found, within {gap:.2%} of the optimum"
    return _Outcome(status, x, rule, message, gap)


# ---------------------------------------------------------------------------------------------
# exact: Algorithm 1 by enumeration


def _compositions(n: int, k: int) -> IntArray:
    """Every way to split ``n`` sources over ``k`` options (stars and bars), (M, k).

    Ordered from "all on the first option" on, the order ``B`` is listed in (the paper's
    example lists ``{(2) 512p, (1) 416p}`` from the highest quality down).
    """
    if k == 0:
        return np.zeros((1 if n == 0 else 0, 0), dtype=np.int64)
    rows = []
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        edges = (-1, *bars, n + k - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    return np.asarray(rows[::-1], dtype=np.int64).reshape(-1, k)


def distribution_count(comp_sizes: Iterable[tuple[int, int]]) -> int:
    """Size of Algorithm 1's ``B``: ``prod C(n + k - 1, k - 1)`` over (sources, options)."""
    return math.prod(math.comb(n + k - 1, k - 1) if k else int(n == 0) for n, k in comp_sizes)


def _exact_core(comp: _Compiled, budget: _Budget) -> _Outcome:
    limit = budget.exact_limit  # bounds the work instead of the deadline
    sizes = [
        (len(c.members), int(np.count_nonzero(comp.var_class == i)))
        for i, c in enumerate(comp.classes)
    ]
    total = distribution_count(sizes)
    if total > limit:
        msg = f"exact: {total} quality distributions exceed the limit {limit}; use 'milp'"
        return _Outcome(SolveStatus.ERROR, message=msg)
    per_class = [_compositions(n, k) for n, k in sizes]
    shape = tuple(len(p) for p in per_class)

    def rows(flat: IntArray) -> IntArray:  # distributions by their index in B (C order)
        parts = np.unravel_index(flat, shape)
        return np.concatenate([p[i] for p, i in zip(per_class, parts, strict=True)], axis=1)

    feasible, latency, accuracy, utility = [], [], [], []
    for start in range(0, total, _EXACT_CHUNK):  # chunks bound the (D, R) work arrays
        ev = _evaluate(comp, rows(np.arange(start, min(total, start + _EXACT_CHUNK))))
        feasible.append(ev.feasible)
        latency.append(ev.latency_s)
        accuracy.append(ev.accuracy)
        utility.append(ev.utility)
    ok = np.flatnonzero(np.concatenate(feasible))  # steps 2-6: keep b with A >= a_min
    if ok.size == 0:  # steps 7-8
        return _Outcome(SolveStatus.INFEASIBLE, message="no distribution meets every constraint")
    lat, acc = np.concatenate(latency), np.concatenate(accuracy)
    problem = comp.problem
    if problem.objective is Objective.UTILITY:
        best = int(ok[np.argmax(np.concatenate(utility)[ok])])
        return _Outcome(SolveStatus.OPTIMAL, rows(np.asarray([best]))[0], "max-utility")
    best = int(ok[np.argmin(lat[ok])])  # step 9
    rule = "min-latency"
    pref = problem.preference
    if pref is not None:  # steps 10-12, in B's order, best updated as the loop goes
        # best's accuracy only grows, so only these can ever pass the accuracy test
        need = (
            acc[best] * (1 + pref.accuracy_gain)
            if pref.relative
            else acc[best] + pref.accuracy_gain
        )
        for i in ok[acc[ok] >= need - 1e-9]:
            if pref.prefers(float(lat[i] - lat[best]), float(acc[best]), float(acc[i])):
                best, rule = int(i), pref.name
    return _Outcome(SolveStatus.OPTIMAL, rows(np.asarray([best]))[0], rule)


# ---------------------------------------------------------------------------------------------
# Driver: refusal, rotation, result


@dataclass(frozen=True)
class _Policy:
    core: Core
    allow: OptionFilter


def _any_option(_: Source, __: Option) -> bool:
    return True


def _native_only(source: Source, option: Option) -> bool:
    return option.quality == source.native


_POLICIES: dict[str, _Policy] = {
    "milp": _Policy(_milp_core, _any_option),
    "exact": _Policy(_exact_core, _any_option),
    "all-max": _Policy(_milp_core, _native_only),
}

POLICY_NAMES: tuple[str, ...] = tuple(_POLICIES)
"""Names :func:`assign` accepts."""


def assign(
    problem: Problem,
    policy: str = "milp",
    *,
    time_limit_s: float = 1.0,
    gap: float = 1e-3,
    exact_limit: int = EXACT_LIMIT,
) -> AssignmentResult:
    """Assign a quality and pipeline to every source of ``problem`` with ``policy``.

    Args:
        problem: the slot's sources, options, capacities and settings.
        policy: one of :data:`POLICY_NAMES`.
        time_limit_s: budget for all solver calls, seconds.
        gap: relative optimality gap the MILP may stop at, of its objective (mean latency in
            ms, or utility x 1000, whichever is larger in magnitude than 1): 1e-3 of a 70 ms
            mean is 0.07 ms. The answer is proven within it against the LP bound.
        exact_limit: most distributions ``exact`` enumerates before declining.

    Returns:
        the decision; solver failures, infeasibility and time limits are statuses in it.

    Raises:
        SolverError: ``policy`` is not a known name.
    """
    absorb_banner()
    chosen = _POLICIES.get(policy)
    if chosen is None:
        msg = f"assign: unknown policy {policy!r}; known: {', '.join(POLICY_NAMES)}"
        raise SolverError(msg)
    if problem.preference is not None and policy == "all-max":
        problem = replace(problem, preference=None)
    started = time.perf_counter()
    try:
        budget = _Budget(started + time_limit_s, gap, exact_limit)
        result = _drive(problem, policy, chosen, budget)
        if policy == "all-max" and result.solved:
            result = replace(result, rule="all-max")
    except Exception as exc:  # a solver crash is reported, never raised into the control loop
        result = AssignmentResult(policy, SolveStatus.ERROR, message=f"{type(exc).__name__}: {exc}")
    return replace(result, solve_time_s=time.perf_counter() - started)


def _drive(problem: Problem, name: str, policy: _Policy, budget: _Budget) -> AssignmentResult:
    cat = _Catalogue.of(problem)
    refused: list[Refusal] = []
    usable: list[Source] = []
    served: dict[tuple[str, frozenset[int]], bool] = {}
    for s in problem.sources:
        key = (s.site, frozenset(s.qualities))
        if key not in served:
            served[key] = bool(cat.serving(s, policy.allow))
        if served[key]:
            usable.append(s)
        else:
            detail = f"no pipeline serves qualities {sorted(s.qualities)} at site {s.site!r}"
            refused.append(Refusal(s.id, "no-pipeline", detail))

    def solve(sources: Sequence[Source], prob: Problem = problem) -> tuple[_Compiled, _Outcome]:
        comp = _compile(prob, cat, sources, policy.allow)
        if not sources:
            return comp, _Outcome(SolveStatus.OPTIMAL, np.zeros(0, dtype=np.int64), "empty")
        return comp, policy.core(comp, budget)

    comp, out = solve(usable)
    if out.counts is not None or out.status is not SolveStatus.INFEASIBLE:
        return _result(name, comp, out, refused)
    joiners = [s for s in usable if s.joining]
    admitted = [s for s in usable if not s.joining]
    comp, out = solve(admitted)
    if out.counts is None:
        detail = "the sources already admitted have no feasible assignment"
        refused += [Refusal(s.id, "infeasible", detail) for s in joiners]
        return _result(name, comp, out, refused, message=_why_infeasible(problem, admitted, solve))
    for joiner in joiners:  # Algorithm 1 once per joining source, in arrival order
        trial = [*admitted, joiner]
        comp_j, out_j = solve(trial)
        if out_j.counts is not None:
            admitted, comp, out = trial, comp_j, out_j
        elif out_j.status is not SolveStatus.INFEASIBLE:
            return _result(name, comp_j, out_j, refused)
        else:
            refused.append(_refusal(problem, trial, joiner, solve))
    return _result(name, comp, out, refused)


Solve = Callable[[Sequence[Source], Problem], tuple[_Compiled, _Outcome]]


def _refusal(problem: Problem, trial: Sequence[Source], joiner: Source, solve: Solve) -> Refusal:
    """Why ``joiner`` cannot join: accuracy (Algorithm 1 steps 7-8) or capacity."""
    _, relaxed = solve(trial, replace(problem, a_min=0.0, accuracy_floor=None, preference=None))
    if relaxed.counts is not None:
        detail = (
            f"no quality distribution keeps mean accuracy >= {problem.floor:.2f} with "
            f"{joiner.id} (Algorithm 1 steps 7-8)"
        )
        return Refusal(joiner.id, "accuracy", detail)
    detail = (
        f"no pipeline or link has capacity left for {joiner.id} at qualities {joiner.qualities}"
    )
    return Refusal(joiner.id, "capacity", detail)


def _why_infeasible(problem: Problem, sources: Sequence[Source], solve: Solve) -> str:
    relaxed = replace(problem, a_min=0.0, accuracy_floor=None, preference=None)
    _, out = solve(sources, relaxed)
    if out.counts is not None:
        return f"no solution: mean accuracy cannot reach {problem.floor:.2f}"
    return "no solution: pipeline or link capacity is exceeded at every quality"


def _result(
    policy: str,
    comp: _Compiled,
    out: _Outcome,
    refused: Sequence[Refusal],
    message: str = "",
) -> AssignmentResult:
    if out.counts is None:
        text = message or out.message or f"no solution ({out.status.value})"
        if not text.startswith("no solution"):
            text = f"no solution: {text}"
        return AssignmentResult(policy, out.status, refused=tuple(refused), message=text)
    x = out.counts
    ev = _evaluate(comp, x[None, :])
    util, waiting = ev.utilisation[0], ev.waiting[0]
    # per-frame wait at each resource: L_q / lambda (Little's law)
    lam = (x * comp.fps) @ (comp.load > 0).T.astype(np.float64)
    wait_s = np.divide(waiting, lam, out=np.zeros_like(waiting), where=lam > 0)
    var_latency = comp.base_s + (comp.load > 0).T.astype(np.float64) @ wait_s
    assignments = []
    for v, source in _map_counts(comp, x):
        o = comp.var_option[v]
        assignments.append(
            SourceAssignment(
                source.id, o.quality, o.pipeline, float(var_latency[v]), o.accuracy,
                reduced=o.quality < source.native,
            )
        )  # fmt: skip
    objective = comp.problem.objective
    latency, utility = float(ev.latency_s[0]), float(ev.utility[0])
    return AssignmentResult(
        policy=policy,
        status=out.status,
        assignments=tuple(sorted(assignments, key=lambda a: a.source)),
        refused=tuple(refused),
        latency_s=latency if x.size else math.nan,
        accuracy=float(ev.accuracy[0]) if x.size else math.nan,
        utility=utility if x.size else math.nan,
        objective=(utility if objective is Objective.UTILITY else latency) if x.size else math.nan,
        rule=out.rule,
        pipeline_utilisation={
            rid: float(util[r]) for r, (k, rid, _) in enumerate(comp.resources) if k == "pipeline"
        },
        link_utilisation={
            rid: float(util[r]) for r, (k, rid, _) in enumerate(comp.resources) if k == "link"
        },
        message=message or out.message,
        solved=True,
        gap=out.gap,
    )


def _map_counts(comp: _Compiled, x: IntArray) -> list[tuple[int, Source]]:
    """Hand each class's counts to its sources with rotation (or stickiness) and hysteresis."""
    rotate = comp.problem.rotation is Rotation.ROTATE
    slot = comp.problem.slot
    out: list[tuple[int, Source]] = []
    for c, cls in enumerate(comp.classes):
        levels = sorted({q for s in cls.members for q in s.qualities}, reverse=True)
        n = len(cls.members)

        def rank(s: Source, levels: list[int] = levels) -> int:
            cur = s.current
            return levels.index(cur.quality) if cur is not None and cur.quality in levels else 0

        def key(item: tuple[int, Source], n: int = n) -> tuple[int, int]:
            i, s = item
            return (-rank(s), (i - slot) % n) if rotate else (rank(s), i)

        queue = [s for _, s in sorted(enumerate(cls.members), key=key)]
        cols = [int(v) for v in np.flatnonzero(comp.var_class == c) if x[v] > 0]
        for q in sorted({comp.var_option[v].quality for v in cols}, reverse=True):
            left = {v: int(x[v]) for v in cols if comp.var_option[v].quality == q}
            group, queue = queue[: sum(left.values())], queue[sum(left.values()) :]
            rest: list[Source] = []
            for s in group:  # keep the previous pipeline when it still serves this quality
                keep = [
                    v for v in left
                    if left[v] > 0 and s.current == Choice(q, comp.var_option[v].pipeline)
                ]  # fmt: skip
                if keep:
                    left[keep[0]] -= 1
                    out.append((keep[0], s))
                else:
                    rest.append(s)
            slots = [v for v, k in left.items() for _ in range(k)]
            out += list(zip(slots, rest, strict=True))
    return out


# ---------------------------------------------------------------------------------------------
# Options from a tiered topology


@dataclass(frozen=True)
class Deployment:
    """A pipeline placed on a node, with the accuracy ``E(q, d)`` per quality it serves."""

    pipeline: Pipeline
    node: str
    accuracy: Mapping[int, float]
    reduce_s: float = 0.0


def options_for_topology(
    nodes: Mapping[str, Node],
    deployments: Sequence[Deployment],
    sites: Iterable[str],
    gamma_bits_per_pixel: float,
) -> tuple[tuple[Option, ...], tuple[Pipeline, ...], tuple[Link, ...]]:
    """Options, pipelines and links for sources on ``sites`` (edge nodes) of a node tree.

    A source on site ``s`` may use a deployment on any node reachable upwards from ``s``
    (its own node, its fog, the cloud through its fog — eq. 2's cases); each node's uplink is
    a link with the node's bandwidth and delay, shared by every frame crossing it.
    """
    options: list[Option] = []
    used: set[str] = set()
    for site in sorted(set(sites)):
        for dep in deployments:
            hops = route(nodes, site, dep.node)
            if hops is None:
                continue
            used.update(hops)
            for q, acc in sorted(dep.accuracy.items()):
                options.append(
                    Option(
                        quality=q, pipeline=dep.pipeline.id, accuracy=acc,
                        bits_per_frame=frame_bits(q, gamma_bits_per_pixel), links=hops,
                        reduce_s=dep.reduce_s, site=site,
                    )
                )  # fmt: skip
    links = tuple(Link(n, nodes[n].uplink_mbps, nodes[n].uplink_delay_s) for n in sorted(used))
    return tuple(options), tuple(d.pipeline for d in deployments), links
