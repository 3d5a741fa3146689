"""What the control loop reads, is configured with and decides: its broker-free records.

:class:`FrameObservation`, :class:`Arrival` and :class:`DetectorInfo` are the loop's inputs
(copies of ``metrics.frames`` and ``control.registry`` records), :class:`LoopConfig` its
settings and :class:`Decision` one slot's outcome; :func:`pipeline_id` and :func:`cpu_link`
name the pipelines and node CPUs of the assignment problem
(:class:`~tierflow.operators.planning.controller.ControlLoop` runs the loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tierflow.operators.planning.quality import (
    AssignmentResult,
    Choice,
    LatencyMean,
    Objective,
    Problem,
)

DETECT = "detect"
"""The stage whose busy time is a pipeline's service time, and the prefix of its id."""


def pipeline_id(quality: int) -> str:
    """The pipeline serving ``quality``: the detect service group of that quality."""
    return f"{DETECT}-{quality}"


def cpu_link(node: str) -> str:
    """The id of a node's shared CPU in the assignment problem."""
    return f"cpu:{node}"


@dataclass(frozen=True)
class FrameObservation:
    """What one processed frame tells the loop (broker-free copy of a metrics record).

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


@dataclass(frozen=True)
class Arrival:
    """One frame's outcome: a camera produced it at ``quality``; ``time_s`` is when it ended."""

    source: str
    quality: int
    time_s: float


@dataclass(frozen=True)
class DetectorInfo:
    """A live detect service, as ``control.registry`` announces it.

    Attributes:
        quality: the quality it serves, pixels.
        node: the node it runs on.
        model: detector name (accuracy is fitted per model).
        capacity_fps: its announced throughput, frames per busy second (None if unmeasured).
        threads: inference calls it runs at once.
        remote: inference runs on another machine (an inference server): this node's CPU
            does not bound it, its announced throughput does.
    """

    quality: int
    node: str
    model: str
    capacity_fps: float | None = None
    threads: int = 1
    remote: bool = False


@dataclass(frozen=True)
class LoopConfig:
    """What the loop optimises and how cautiously.

    Attributes:
        qualities: qualities cameras may be assigned (the topic catalogue's).
        a_min: accuracy floor of eq. 6 (long-term: the mean over slots), 0..1.
        accuracy_credit: most one slot's floor may fall below ``a_min`` while earlier
            slots' surplus is banked (``LongTermAccuracy.max_credit``), 0..1; 0 keeps every
            slot's floor at ``a_min`` or above.
        policy: quality policy name (``tierflow.operators.planning.quality.POLICY_NAMES``).
        objective: utility (eq. 5, the default: accuracy is kept unless latency costs more
            than it is worth) or latency (Algorithm 1 as written: the fastest assignment
            meeting ``a_min``, which lowers quality even on an idle system).
        theta_per_s: Theta of eq. 5.
        window_s: seconds of observations a decision looks at.
        min_dwell_slots: slots a source keeps a quality before it may change again.
        time_limit_s: solver budget per decision, seconds.
        max_utilisation: no pipeline is planned above this utilisation.
        default_service_s: inference time per frame at 512 px before any is measured, s.
        accuracy_prior: accuracy per quality until F1 is measured; by default linear in the
            side, ``q / max(qualities)``.
        fps_ladder: frame rates a source may be told to send at, besides its own (empty:
            quality is the only knob, as in the seed paper).
        latency_mean: which mean eq. 3's latency is (``LatencyMean``; ``sources`` is the
            paper's, the default ``frames`` the mean over analysed frames).
    """

    qualities: tuple[int, ...]
    a_min: float = 0.5
    accuracy_credit: float = 0.0
    policy: str = "milp"
    objective: Objective = Objective.UTILITY
    theta_per_s: float = 1.0
    window_s: float = 20.0
    min_dwell_slots: int = 2
    time_limit_s: float = 1.0
    max_utilisation: float = 0.85
    default_service_s: float = 0.07
    accuracy_prior: Mapping[int, float] | None = None
    fps_ladder: tuple[float, ...] = ()
    latency_mean: LatencyMean = LatencyMean.FRAMES

    def prior(self, quality: int) -> float:
        """The accuracy assumed for ``quality`` before any is measured."""
        if self.accuracy_prior is not None and quality in self.accuracy_prior:
            return self.accuracy_prior[quality]
        return quality / max(self.qualities)


@dataclass(frozen=True)
class Decision:
    """One slot's outcome.

    Attributes:
        slot: slot number.
        trigger: why it ran (``slot``, ``new-source``, ``detectors-changed``, ``slo``).
        result: the solver's answer (its status says whether it could be used).
        changes: sources whose quality changes now, with the new choice.
        refused: sources refused (Algorithm 1 steps 7-8) with the reason.
        held: sources whose change waits for their dwell to end.
        problem: what was solved.
        rule: what chose the assignment (the solver's rule, ``overload: ...`` when capacity
            is exceeded at every quality, ``kept`` when the last assignment stays).
    """

    slot: int
    trigger: str
    result: AssignmentResult
    changes: dict[str, Choice] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    held: tuple[str, ...] = ()
    problem: Problem | None = None
    rule: str = ""
