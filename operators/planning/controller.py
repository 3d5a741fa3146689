"""The control agent's decision loop, broker-free: frame outcomes in, assignments out.

Every time slot (seed 000 §IV, eq. 3-6) the loop turns the last ``window_s`` of per-frame
observations into the quality-assignment :class:`~tierflow.operators.planning.quality.Problem` and
solves it:

* sources and their frame rates come from every frame's outcome (each produced frame ends
  in exactly one, so outcomes per second is the camera's rate);
* one pipeline per quality with a live detector (``detect-<q>``); its capacity ``C`` (eq.
  1's ``T_E = Load/C``) is what its inference threads can run, and the node's cores are a
  server shared by every quality placed there: each frame costs its measured CPU time
  (``busy_s``), so the node cannot be planned beyond ``sum(fps * cpu_s) <= cores``;
* the zero-load processing time is the measured busy time of resize, detect and draw plus
  the measured transfers (eq. 1-2); waiting is the M/G/1 curve of
  ``tierflow.operators.planning.queueing``;
* accuracy per quality is fitted online from measured F1 (eq. 4's ``E(fr, d)``), with a
  prior until frames with ground truth arrive;
* the accuracy floor is eq. 6's long-term constraint,
  ``lim_{t->+inf} (1/T) sum_{t=1}^T a_t >= a_min``: the mean over slots, not each slot.
  The loop keeps a :class:`~tierflow.operators.planning.accuracy_model.LongTermAccuracy`;
  each decision asks for its ``floor()`` (above ``a_min`` after a slot that fell short,
  at most ``accuracy_credit`` below it while surplus is banked) and then records the slot's
  accuracy ``a_t``: the mean measured F1 of the frames processed since the previous
  decision when any had ground truth, else the new plan's estimated accuracy when it was
  solved (nothing is recorded without either).

Anti-flapping: a source keeps a new quality for ``min_dwell_slots`` slots; between rotation
slots the solver is asked to keep sources where they are (``Rotation.STICKY``), and on
rotation slots to move reduced qualities to other sources (§V: "this mapping switches
periodically between data sources"). When the load exceeds capacity at every quality the
sources go to the cheapest quality that still meets ``a_min`` (reducing quality is the
paper's answer to congestion; refusals are for accuracy only). A failed or timed-out solve
changes nothing: the last good assignment stays, and the decision says why.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tierflow.operators.planning.accuracy_model import LongTermAccuracy, OnlineAccuracy
from tierflow.operators.planning.control_io import (
    DETECT,
    Arrival,
    Decision,
    DetectorInfo,
    FrameObservation,
    LoopConfig,
    cpu_link,
    pipeline_id,
)
from tierflow.operators.planning.frame_rate import Retention
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality import (
    AssignmentResult,
    Choice,
    Link,
    Option,
    Pipeline,
    Problem,
    Rotation,
    Source,
    assign,
)
from tierflow.operators.planning.queueing import QueueCurve

NATIVE_MARGIN = 0.95
"""A ladder rate is offered only below this share of a source's measured native rate: at
the native rate the source's own option (``fps`` None) stands, and a measured 24.8 fps
camera must not be told 25."""


RATE_SPAN_S = 3.0
"""Seconds of a source's arrivals before its measured rate is trusted as its native rate.

A source's first records (a slow-start camera's few sent frames, before its batched
``sampled`` records arrive) make its rate look like 1-2 frames/s. Planned at that "native"
rate and told "no rate", its camera sent 25: in the bench's first seconds a quarter of all
frames sent were superseded at detect. Until then it is told the rate the plan assumed."""


def _load(problem: Problem, choice: Choice | None) -> float:
    """CPU per second ``choice`` asks of its node: frames/s times CPU per frame (µs/s).

    Unknown choices (no option of that quality) weigh infinitely: they are never lighter.
    """
    if choice is None:
        return math.inf
    native = max(s.fps for s in problem.sources)
    costs = [o.bits_per_frame for o in problem.options if o.quality == choice.quality]
    return (choice.fps or native) * costs[0] if costs else math.inf


@dataclass(frozen=True)
class _Seen:
    time_s: float
    observation: FrameObservation
    model: str


class ControlLoop:
    """Keeps the observation window and the published assignments; decides each slot."""

    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self.arrivals: deque[Arrival] = deque()
        self.processed: deque[_Seen] = deque()
        self.accuracy: dict[str, OnlineAccuracy] = {}
        self.retention = Retention()
        self._used_cores: Mapping[str, float] = {}
        self._background: dict[str, float] = {}
        self.assigned: dict[str, Choice] = {}
        self.changed_at: dict[str, int] = {}
        self._young: set[str] = set()
        self.refused: set[str] = set()
        self.slot = 0
        self.long_term = LongTermAccuracy(config.a_min, config.accuracy_credit)
        self._slot_f1: list[float] = []  # measured F1 of the frames since the last decision

    def observe(self, arrival: Arrival) -> bool:
        """Record a frame outcome; True when its source was never seen (a joining source)."""
        self.arrivals.append(arrival)
        return arrival.source not in self.assigned and arrival.source not in self.refused

    def observe_processed(self, time_s: float, observation: FrameObservation, model: str) -> None:
        """Record a processed frame's measurements (and its F1 when audited)."""
        self.processed.append(_Seen(time_s, observation, model))
        if observation.f1 is not None:
            self.observe_accuracy(observation.quality_px, observation.f1, model)

    def observe_accuracy(self, quality_px: int, f1: float, model: str) -> None:
        """Record one frame's F1 at ``quality_px`` with ``model``.

        From a truth file, a generated scene, or a golden reference copy (scored when the
        copy arrives, apart from the frame's other measurements).
        """
        self._slot_f1.append(f1)
        self.accuracy.setdefault(model, OnlineAccuracy()).observe(quality_px, f1)

    def _trim(self, now_s: float) -> None:
        horizon = now_s - self.config.window_s
        while self.arrivals and self.arrivals[0].time_s < horizon:
            self.arrivals.popleft()
        while self.processed and self.processed[0].time_s < horizon:
            self.processed.popleft()

    def latency_p99_s(self, now_s: float) -> float | None:
        """p99 end-to-end latency of the processed frames in the window."""
        self._trim(now_s)
        values = [s.observation.latency_s for s in self.processed]
        return float(np.percentile(values, 99)) if values else None

    def _sources(self, now_s: float, qualities: tuple[int, ...]) -> list[Source]:
        first: dict[str, float] = {}
        count: dict[str, int] = defaultdict(int)
        last: dict[str, int] = {}
        for a in self.arrivals:
            first.setdefault(a.source, a.time_s)
            count[a.source] += 1
            last[a.source] = a.quality
        sources = []
        self._young = {sid for sid in count if now_s - first[sid] < RATE_SPAN_S}
        for sid in sorted(count):
            span = max(min(self.config.window_s, now_s - first[sid]), 1.0)
            current = self.assigned.get(sid) or Choice(last[sid], pipeline_id(last[sid]))
            joining = sid not in self.assigned
            sources.append(Source(sid, count[sid] / span, qualities, current, joining))
        return sources

    def _costs(self) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        """Per quality: CPU s per frame (all stages), zero-load path time s, detect cv2."""
        cpu: dict[int, list[float]] = defaultdict(list)
        path: dict[int, list[float]] = defaultdict(list)
        detect: dict[int, list[float]] = defaultdict(list)
        for seen in self.processed:
            ob = seen.observation
            if ob.busy_s and DETECT in ob.busy_s:
                q = ob.quality_px
                detect[q].append(ob.busy_s[DETECT])
                cpu[q].append(sum(ob.busy_s.values()))
                path[q].append(sum(ob.busy_s.values()) + sum(ob.transfer_s.values()))
        cv2 = {
            q: float(np.var(v) / np.mean(v) ** 2) if np.mean(v) > 0 else 1.0
            for q, v in detect.items()
        }
        means = {q: float(np.mean(v)) for q, v in cpu.items()}
        medians = {q: float(np.median(v)) for q, v in path.items()}
        return means, medians, cv2

    def _resources(
        self, detectors: Sequence[DetectorInfo], cores: Mapping[str, float]
    ) -> tuple[list[Pipeline], list[Link], dict[int, float], dict[int, str]]:
        """Pipelines (one per quality), node CPU links, CPU s per frame and node per quality.

        A node's cores are one shared server: every frame served there costs its measured CPU time,
        whichever quality. ``tierflow.operators.planning.quality`` holds that as a link whose
        "bandwidth" is the node's cores and whose "bits" per frame are CPU microseconds, so its
        utilisation is ``sum(fps * cpu_s) / cores`` (the capacity constraint) and its waiting curve
        is the node's queueing.
        """
        cpu_s, path_s, cv2 = self._costs()
        threads: dict[int, int] = defaultdict(int)
        announced: dict[int, float] = defaultdict(float)
        node_of: dict[int, str] = {}
        for d in detectors:
            threads[d.quality] += d.threads
            if d.remote:
                announced[d.quality] += (d.capacity_fps or 0.0) * d.threads
            node_of.setdefault(d.quality, d.node)
        pipelines = []
        cost: dict[int, float] = {}
        # Unmeasured qualities: CPU cost grows with the pixels (q^2) from the nearest
        # measured quality, or from the default at 512 px.
        measured = cpu_s or {512: self.config.default_service_s}
        for q in sorted(threads):
            anchor = min(measured, key=lambda m: abs(m - q))
            cost[q] = measured[anchor] * (q / anchor) ** 2
            # A service cannot run more frames at once than its inference threads.
            capacity = announced[q] or threads[q] / cost[q]
            # A local detector's frames queue for the node's cores, which the node's CPU link
            # models; its own curve would count that wait twice. A remote one queues here.
            curve = (
                QueueCurve.pollaczek_khinchine(cv2.get(q, 1.0), self.config.max_utilisation)
                if announced[q]
                else QueueCurve.no_wait(self.config.max_utilisation)
            )
            pipelines.append(Pipeline(pipeline_id(q), capacity, path_s.get(q, cost[q]), curve))
        links = [
            Link(
                cpu_link(node),
                bandwidth_mbps=self._free_cores(node, cores.get(node, 1.0), node_of),
                queue=QueueCurve.pollaczek_khinchine(1.0, self.config.max_utilisation),
            )
            for node in sorted(set(node_of.values()))
        ]
        return pipelines, links, cost, node_of

    def _free_cores(self, node: str, cores: float, node_of: Mapping[int, str]) -> float:
        """The cores of ``node`` left for frames: all but what else keeps them busy.

        The background is what the node reports busy (``control.nodes``) minus what the
        frames processed there cost (their stages' CPU time), smoothed over decisions: the
        broker, the cameras, the services' own event loops and Kafka clients. Without a
        report it is 0. At least a quarter of the cores is always planned.
        """
        used = self._used_cores.get(node)
        if used is not None:
            span = max(self.config.window_s, 1.0)
            busy = sum(
                sum(s.observation.busy_s.values())
                for s in self.processed
                if s.observation.busy_s and node_of.get(s.observation.quality_px) == node
            )
            measured = max(0.0, used - busy / span)
            known = self._background.get(node)
            self._background[node] = measured if known is None else 0.5 * known + 0.5 * measured
        return max(cores - self._background.get(node, 0.0), 0.25 * cores)

    def _accuracy(self, quality: int, models: Sequence[str]) -> float:
        """E(q) of eq. 4 for the models serving ``quality``.

        The fitted curve where one exists (three or more qualities measured), the measured
        mean at ``quality``, else the prior's shape anchored on the nearest measured quality:
        a lower quality is never assumed as accurate as a measured higher one.
        """
        predictions = []
        for m in models:
            fit = self.accuracy.get(m)
            if fit is None:
                continue
            means = fit.means()
            if fit.curve is not None or quality in means:
                value = fit.predict(quality)
            elif means:
                anchor = min(means, key=lambda q: abs(q - quality))
                value = means[anchor] * self.config.prior(quality) / self.config.prior(anchor)
            else:
                value = None
            if value is not None:
                predictions.append(value)
        value = float(np.mean(predictions)) if predictions else self.config.prior(quality)
        return min(1.0, max(0.0, value))

    def decide(
        self,
        now_s: float,
        detectors: Sequence[DetectorInfo],
        cores_by_node: Mapping[str, float],
        trigger: str = "slot",
        used_cores_by_node: Mapping[str, float] | None = None,
    ) -> Decision | None:
        """Solve this slot; None when there is nothing to decide (no sources or detectors).

        Args:
            now_s: the current time, seconds (same clock as the observations).
            detectors: the live detect services.
            cores_by_node: cores of each node (from ``control.nodes``).
            trigger: why the decision runs.
            used_cores_by_node: cores each node reports busy now (from ``control.nodes``):
                what is busy beyond the frames' own CPU time is not planned for frames.
        """
        self._used_cores = used_cores_by_node or {}
        self._trim(now_s)
        for fit in self.accuracy.values():
            fit.end_slot()
        self.retention.end_slot()
        qualities = tuple(sorted({d.quality for d in detectors} & set(self.config.qualities)))
        if not qualities or not self.arrivals:
            return None
        sources = self._sources(now_s, qualities)
        serving = [d for d in detectors if d.quality in qualities]
        pipelines, links, cpu_s, node_of = self._resources(serving, cores_by_node)
        models_by_quality: dict[int, list[str]] = defaultdict(list)
        for d in serving:
            models_by_quality[d.quality].append(d.model)
        native = max(s.fps for s in sources)
        options = [
            Option(
                q,
                pipeline_id(q),
                self._accuracy(q, models_by_quality[q]) * self._kept(native, fps),
                bits_per_frame=cpu_s[q] * 1e6,  # CPU microseconds on the node's CPU link
                links=(cpu_link(node_of[q]),),
                fps=fps,
            )
            for q in qualities
            for fps in self._rates(native)
        ]
        rotate = self.slot % self.config.min_dwell_slots == 0
        problem = Problem(
            sources=sources,
            options=options,
            pipelines=pipelines,
            links=links,
            a_min=self.config.a_min,
            accuracy_floor=self.long_term.floor(),
            objective=self.config.objective,
            theta_per_s=self.config.theta_per_s,
            rotation=Rotation.ROTATE if rotate else Rotation.STICKY,
            slot=self.slot,
            latency_mean=self.config.latency_mean,
        )
        result = assign(problem, self.config.policy, time_limit_s=self.config.time_limit_s)
        decision = self._apply(result, sources, trigger, problem)
        self._record_accuracy(result)
        self.slot += 1
        return decision

    def _rates(self, native_fps: float) -> list[float | None]:
        """The source's own rate (None) and the ladder's rates clearly below it, frames/s."""
        below = {f for f in self.config.fps_ladder if f < native_fps * NATIVE_MARGIN}
        return [None, *sorted(below, reverse=True)]

    def _kept(self, native_fps: float, fps: float | None) -> float:
        """What carry-forward keeps of an analysed frame's accuracy at ``fps`` (frame_rate)."""
        return 1.0 if fps is None else self.retention.kept(native_fps, fps)

    def _record_accuracy(self, result: AssignmentResult) -> None:
        """Record this slot's ``a_t`` for eq. 6: measured F1, else the solved plan's estimate."""
        if self._slot_f1:
            self.long_term.record(float(np.mean(self._slot_f1)))
        elif result.solved and math.isfinite(result.accuracy):
            self.long_term.record(result.accuracy)
        self._slot_f1.clear()

    def _apply(
        self, result: AssignmentResult, sources: Sequence[Source], trigger: str, problem: Problem
    ) -> Decision:
        native = {s.id: s.fps for s in sources}
        wanted = {
            # at its own rate a source is told no rate (fps None): its camera's clock rules
            a.source: Choice(a.quality, a.pipeline, None if a.fps >= native[a.source] else a.fps)
            for a in result.assignments
        }
        refused: dict[str, str] = {}
        rule = result.rule
        overloaded: list[str] = []
        if result.solved:
            for r in result.refused:
                if r.reason == "accuracy":  # Algorithm 1 steps 7-8: a_min cannot be met
                    refused[r.source] = f"{r.reason}: {r.detail}"
                else:
                    overloaded.append(r.source)
        elif result.status is SolveStatus.INFEASIBLE:
            overloaded = [s.id for s in sources]
        else:  # error or time limit without a feasible point: keep the last good assignment
            return Decision(self.slot, trigger, result, problem=problem, rule="kept")
        if overloaded:
            # More load than capacity at every quality: the paper's answer to congestion is
            # a lower quality as long as accuracy stays above a_min, so these sources get the
            # cheapest such quality and the queues absorb the rest (nothing is refused for
            # capacity: a refusal is for accuracy, Algorithm 1 steps 7-8).
            cheapest = self._cheapest(problem)
            wanted.update({sid: cheapest for sid in overloaded})
            rate = "" if cheapest.fps is None else f" at {cheapest.fps:g} fps"
            rule = f"overload: {cheapest.quality} px{rate}, the cheapest option meeting a_min"
        young = self._young if self.config.fps_ladder else set()
        for sid in young & wanted.keys():
            if wanted[sid].fps is None:  # told the rate it was planned at (RATE_SPAN_S)
                wanted[sid] = Choice(wanted[sid].quality, wanted[sid].pipeline, native[sid])
        current = {s.id: s.current for s in sources}
        changes: dict[str, Choice] = {}
        held: list[str] = []
        for sid, choice in sorted(wanted.items()):
            before = current.get(sid)
            self.refused.discard(sid)
            kept = before is not None and (before.quality, before.fps) == (
                choice.quality,
                choice.fps,
            )
            if kept and sid in self.assigned:
                continue
            since = self.slot - self.changed_at.get(sid, -math.inf)
            dwelling = sid in self.assigned and since < self.config.min_dwell_slots
            # Hysteresis holds back a source asked for more, never one asked for less: a
            # lighter choice relieves the node now, a heavier one waits out its dwell.
            if dwelling and _load(problem, choice) >= _load(problem, before):
                held.append(sid)
                continue
            changes[sid] = choice
            self.assigned[sid] = choice
            if sid not in young:  # a young source's rate is provisional: no dwell on it
                self.changed_at[sid] = self.slot
        self.refused |= set(refused)
        return Decision(self.slot, trigger, result, changes, refused, tuple(held), problem, rule)

    def _cheapest(self, problem: Problem) -> Choice:
        """The option of least load whose estimated accuracy meets the floor.

        Load is frames/s times CPU per frame; without any option meeting the floor, the
        most accurate one.
        """
        native = max(s.fps for s in problem.sources)
        ok = [o for o in problem.options if o.accuracy >= problem.floor]
        option = (
            min(ok, key=lambda o: ((o.fps or native) * o.bits_per_frame, o.quality))
            if ok
            else max(problem.options, key=lambda o: o.accuracy)
        )
        return Choice(option.quality, option.pipeline, option.fps)
