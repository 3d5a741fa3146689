"""What a quality assignment is asked and what it answers (Algorithm 1 of seed 000).

A :class:`Problem` is one slot: the sources (cameras, Algorithm 1's data sources), the
options that may serve them (quality x pipeline[, site], eq. 4's accuracy ``E(q, d)`` and
eq. 2's frame size per option), the pipelines and links with their capacities, the accuracy
floor of eq. 6, the objective (eq. 3 latency or eq. 5 utility) and the preference rule. An
:class:`AssignmentResult` is the decision: a quality and pipeline per admitted source, the
refused sources with reasons, and the estimated eq. 3-5 quantities.

Frame rate (issue 9). An option may fix the rate a source captures and sends at
(:attr:`Option.fps`); ``None`` keeps the source's own rate (:attr:`Source.fps`, its native
rate). An option whose rate is above a source's native rate does not serve that source (it is
not clamped: its accuracy estimate is for the rate it names, and a clamped copy would
duplicate the native-rate option under another accuracy). :attr:`Option.accuracy` is the
caller's estimate over *all captured* frames at that quality and rate (skipped frames carry
the last analysed frame's detections forward), so eq. 4 and 6 stay a mean over sources; load,
transfer and waiting count the analysed frames only.

Preference rule (Algorithm 1 steps 10-12, :class:`PreferenceRule`). The paper compares both
quantities with one operator ``Delta``: ``Delta(L) < 10`` (ms) and ``Delta(A) >= 20%`` where
accuracies are percentages (F1 71.19 %), so ``20%`` is read as 20 percentage points, an
absolute difference of 0.20 (``relative=True`` gives the other reading). ``exact`` runs the
loop as written (``best`` is updated inside it, so the rule can chain). ``milp`` does it
lexicographically: ``L*`` = min latency, then the greatest accuracy with latency
``< L* + 10 ms``; that wins if it gains >= 0.20 over the fastest. Only for the latency
objective: with utility, ``Theta`` already prices the trade-off.

Units are in the names: ``_s`` seconds, ``_fps`` frames/s, ``_mbps`` Mbit/s; qualities are
frame sides in pixels, accuracies F1 in 0..1.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tierflow.errors import TierflowError
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.queueing import QueueCurve

RATE_TOL = 1e-9
"""Relative tolerance when frame rates are compared (an option's with a source's)."""


class SolverError(TierflowError):
    """Quality assignment was called wrongly (unknown policy, inconsistent problem)."""


class Objective(enum.StrEnum):
    """What the assignment optimises."""

    LATENCY = "latency"
    """Least mean latency (eq. 3), Algorithm 1's criterion."""
    UTILITY = "utility"
    """Greatest ``U = a - Theta*T`` (eq. 5)."""


class LatencyMean(enum.StrEnum):
    """Which mean eq. 3's latency is.

    Eq. 3 of Houmani et al. (SBAC-PAD 2021): "the average end-to-end latency of K data
    sources in a time slot t is presented as follows: T_t = 1/K sum_{i=1..K} 1/N sum_{j=1..N}
    T_j^i", N the jobs (frames) of a source in the slot: the mean over sources of each
    source's mean. It equals the mean over frames when every source sends at one rate.
    """

    SOURCES = "sources"
    """The paper's eq. 3: each source's mean frame latency, averaged over sources."""
    FRAMES = "frames"
    """The mean over analysed frames: each source weighted by its frame rate."""


class Rotation(enum.StrEnum):
    """How counts per quality are mapped to sources across slots."""

    ROTATE = "rotate"
    """Reduced qualities move between sources from slot to slot (§V)."""
    STICKY = "sticky"
    """Sources keep their previous quality when the counts allow (hysteresis)."""


@dataclass(frozen=True)
class Choice:
    """A source's quality (pixels), pipeline id and analysed frame rate.

    Attributes:
        quality: frame side, pixels.
        pipeline: pipeline id.
        fps: frames/s the source sends; None: its native rate (:attr:`Source.fps`).
    """

    quality: int
    pipeline: str
    fps: float | None = None


@dataclass(frozen=True)
class Source:
    """A camera to assign.

    Attributes:
        id: source id.
        fps: native (offered) frame rate, frames/s: the most it can capture and send.
        qualities: qualities it can capture at (pixels); the highest is its native one.
        current: its assignment in the previous slot, None if it has none yet. It keeps the
            source there when counts allow (rotation, hysteresis) and, for every source
            together, is the warm start of the ``milp`` policy (the first denominator of the
            frame-rate iteration and a first incumbent).
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
    """One way to serve a source: a quality and frame rate on a pipeline, over some links.

    Attributes:
        quality: frame side, pixels.
        pipeline: pipeline id.
        accuracy: ``E(q, d)`` of the pipeline's model at this quality (eq. 4), 0..1; with
            ``fps`` set, the estimate over all captured frames at that rate (skipped frames
            take the last analysed frame's detections).
        bits_per_frame: ``S = gamma*q^2`` sent over each link, bits.
        links: link ids on the path from the source to the pipeline (eq. 2).
        extra_s: any other fixed per-frame time, seconds.
        reduce_s: ``T_reduce`` when the quality is below the source's native one (eq. 1).
        site: only for sources on this site; None for every site.
        fps: frames/s a source captures and sends on this option (its load, transfer and
            waiting count these); None: the source's own rate. Above a source's rate the
            option does not serve it.
    """

    quality: int
    pipeline: str
    accuracy: float
    bits_per_frame: float = 0.0
    links: tuple[str, ...] = ()
    extra_s: float = 0.0
    reduce_s: float = 0.0
    site: str | None = None
    fps: float | None = None

    def serves(self, source: Source) -> bool:
        """Whether ``source`` may use this option (quality, site and rate allow it)."""
        return (
            self.quality in source.qualities
            and self.site in (None, source.site)
            and (self.fps is None or self.fps <= source.fps * (1.0 + RATE_TOL))
        )

    def rate(self, source: Source) -> float:
        """Frames/s ``source`` sends on this option."""
        return source.fps if self.fps is None else self.fps

    @property
    def label(self) -> str:
        """``quality@pipeline`` (with ``/fps`` when the option fixes a rate), for messages."""
        return f"{self.quality}@{self.pipeline}" + ("" if self.fps is None else f"/{self.fps:g}fps")


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
        latency_mean: eq. 3 as the paper writes it (mean over sources) or the mean over
            analysed frames (the default); they differ when sources send at different
            rates. Over sources, where a queued resource serves unlike rates, the ``milp``
            program is a fixed point on the waiting weights: ``feasible`` with the gap it
            proved unless that gap is within the budget's (enumeration and ``exact`` are
            exact either way).
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
    latency_mean: LatencyMean = LatencyMean.FRAMES

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
                problems.append(f"option {o.label}: unknown pipeline")
            if set(o.links) - links:
                problems.append(f"option {o.label}: unknown links {o.links}")
            if not 0.0 <= o.accuracy <= 1.0 or o.bits_per_frame < 0:
                problems.append(f"option {o.label}: accuracy or bits out of range")
            if o.fps is not None and not o.fps > 0:
                problems.append(f"option {o.label}: fps must be > 0")
        problems += [f"source {s.id}: fps must be > 0" for s in self.sources if s.fps <= 0]
        problems += [f"source {s.id}: no qualities" for s in self.sources if not s.qualities]
        problems += [f"option {o.label}: quality must be > 0"
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
    """One source's quality, pipeline and rate with its estimated latency and accuracy.

    Attributes:
        source: source id.
        quality: frame side, pixels.
        pipeline: pipeline id.
        latency_s: estimated mean latency of its analysed frames, seconds.
        accuracy: the option's accuracy (over all captured frames), 0..1.
        reduced: its quality is below its native one (eq. 1's ``mu = 1``).
        fps: frames/s it captures and sends (its native rate unless the option fixes one).
    """

    source: str
    quality: int
    pipeline: str
    latency_s: float
    accuracy: float
    reduced: bool
    fps: float

    @property
    def choice(self) -> Choice:
        """The assignment as a :class:`Choice`, the ``current`` of the next slot's source."""
        return Choice(self.quality, self.pipeline, self.fps)


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
        latency_s: estimated mean latency over analysed frames (eq. 3), NaN without
            assignments.
        accuracy: estimated mean accuracy over sources (eq. 4).
        utility: eq. 5 with the problem's ``Theta``.
        objective: the optimised value (latency_s or utility).
        rule: what chose it: ``min-latency``, ``max-utility``, the preference rule's name.
        iterations: programs solved over the frame-rate iteration (``milp``: 1 when no
            option fixes a rate; 0 when enumerated).
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
    iterations: int = 0
    solve_time_s: float = 0.0
    pipeline_utilisation: Mapping[str, float] = field(default_factory=dict)
    link_utilisation: Mapping[str, float] = field(default_factory=dict)
    message: str = ""
    solved: bool = False
    gap: float = math.nan

    def by_source(self) -> dict[str, SourceAssignment]:
        """Assignments keyed by source id."""
        return {a.source: a for a in self.assignments}
