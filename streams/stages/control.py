"""The control agent (a faust service): models, HiGHS, and the assignments cameras follow.

It consumes ``metrics.frames`` into the
:class:`~tierflow.operators.planning.controller.ControlLoop`, follows ``control.registry``
(live detectors) and ``control.nodes`` (machines), and decides every ``control.slot_s`` and
on triggers: a new source, a detector joining or leaving, a window p99 latency above
``control.slo_p99_s``. Decisions become versioned records on ``control.assignments`` (the
epoch is the decision time in ms, so it only grows, also across restarts); whenever the live
nodes change, the deployment's workflow is placed on ``control.placement``
(:mod:`tierflow.streams.placing`). A failed or timed-out solve keeps the last good
assignment and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from tierflow.operators.planning.control_io import (
    Arrival,
    Decision,
    DetectorInfo,
    FrameObservation,
    LoopConfig,
    pipeline_id,
)
from tierflow.operators.planning.controller import ControlLoop
from tierflow.operators.planning.quality import LatencyMean, Objective, Problem
from tierflow.settings import Settings
from tierflow.streams.app import cancel
from tierflow.streams.carry import CarryPairs
from tierflow.streams.discovery import nodes_reader
from tierflow.streams.golden import GoldenPairs
from tierflow.streams.metrics import METRICS
from tierflow.streams.placing import Placer
from tierflow.streams.service import Service
from tierflow.topics.follow import Follower
from tierflow.topics.records import (
    Assignment,
    FrameRecord,
    NodeAnnouncement,
    Outcome,
    RecordError,
    ServiceAnnouncement,
    parse_frame_records,
)
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
STAGE = StageName.CONTROL


def observation(record: FrameRecord) -> FrameObservation:
    """The broker-free view of a processed frame's record."""
    return FrameObservation(
        source=record.source,
        quality_px=record.quality,
        pipeline=pipeline_id(record.quality),
        stage_s=record.stage_s,
        transfer_s=record.transfer_s,
        latency_s=record.latency_s,
        f1=record.f1,
        encoded_bytes=record.frame_bytes,
        busy_s=record.busy_s or None,
    )


def _planned(problem: Problem) -> str:
    """What a decision planned with, in one line: free cores and CPU per frame by quality."""
    cores = ", ".join(f"{lk.id} {lk.bandwidth_mbps:.2f} cores free" for lk in problem.links)
    cost = {o.quality: o.bits_per_frame / 1e3 for o in problem.options}
    per_frame = ", ".join(f"{q} px {ms:.0f} ms" for q, ms in sorted(cost.items()))
    rates = ", ".join(f"{s.id} {s.fps:.1f} fps" for s in problem.sources)
    return f"{cores}; CPU per frame {per_frame}; sources {rates}"


class ControlAgent:
    """Wires the control loop to the broker."""

    def __init__(self, settings: Settings) -> None:
        c = settings.control
        self.settings = settings
        self.service = Service(settings, STAGE)
        self.loop = ControlLoop(
            LoopConfig(
                qualities=settings.topics.qualities,
                a_min=c.a_min,
                accuracy_credit=c.accuracy_credit,
                fps_ladder=c.fps_ladder,
                policy=c.policy,
                objective=Objective(c.objective),
                theta_per_s=c.theta_per_s,
                window_s=c.window_s,
                min_dwell_slots=c.min_dwell_slots,
                time_limit_s=c.time_limit_s,
                max_utilisation=c.max_utilisation,
                latency_mean=LatencyMean(c.latency_mean),
            )
        )
        self.registry = self.service.follow_registry()
        self.nodes = nodes_reader(self.service.contract)
        self.service.on_start(self.nodes.start)
        self.service.on_stop(self.nodes.stop)
        names = self.service.contract.names
        self.assignments = self.service.topic(names.assignments)
        placement = self.service.topic(names.placement)

        async def send(key: bytes, value: bytes | None) -> None:
            await placement.send(key=key, value=value)

        self.placer = Placer(settings, send)
        self.decisions: list[Decision] = []
        self.pairs = CarryPairs()
        self.golden = GoldenPairs()
        self._wake = asyncio.Event()
        self._trigger = "slot"
        self._last_decision = 0.0
        self._detectors: frozenset[tuple[int, str]] = frozenset()
        self._epoch = 0
        self._task: asyncio.Task[None] | None = None
        self._placing: asyncio.Task[None] | None = None
        self._wire()

    def _wire(self) -> None:
        # The window looks at the last seconds only: follow metrics.frames from now, in
        # fetched batches, outside any consumer group (no faust event per record, no replay
        # of the topic's history by a control agent that starts anew).
        metrics = Follower(
            self.service.contract,
            self.service.contract.names.metrics_frames,
            lambda _key, value: self._observe(value),
            client_id="tierflow-control-metrics",
            from_end=True,
        )

        async def start() -> None:
            await self.registry.caught_up()
            await self.nodes.caught_up()
            await metrics.start()
            self._task = asyncio.create_task(self._run(), name="control-slots")
            self._placing = asyncio.create_task(self._place_forever(), name="control-placement")

        async def stop() -> None:
            await cancel(self._placing)
            await cancel(self._task)
            await metrics.stop()

        self.service.on_start(start)
        self.service.on_stop(stop)

    async def _place_forever(self) -> None:
        """Place the workflow when the live nodes (or the demand) change, every heartbeat."""
        while True:
            try:
                now = time.time_ns()
                await self.placer.place(self.nodes.view.live(now), self.registry.view.live(now))
            except Exception:  # the broker may be away: the next heartbeat tries again
                log.exception("placement failed")
            await asyncio.sleep(self.settings.dataplane.heartbeat_s)

    def _observe(self, value: bytes | None) -> None:
        try:
            records = parse_frame_records(value)
        except RecordError as exc:
            log.warning("control: ignoring a malformed metrics record: %s", exc)
            return
        for record in records:
            self._observe_one(record)

    def _observe_one(self, record: FrameRecord) -> None:
        if record.sequence < 0:
            return  # unreadable frames say nothing about a camera
        if record.reference:  # a golden copy: the truth of a frame, not a frame
            self._golden(record)
            return
        now = time.time()
        self.placer.demand.observe(record.quality, now)
        joining = self.loop.observe(Arrival(record.source, record.quality, now))
        if record.outcome is Outcome.PROCESSED:
            self.loop.observe_processed(now, observation(record), record.detector or "")
            if record.f1 is None:
                self._golden(record)
            for pair in self.pairs.add(record):
                self.loop.retention.observe(pair.lag_s, pair.carried_f1, pair.fresh_f1)
        if joining:
            self._poke("new-source")

    def _golden(self, record: FrameRecord) -> None:
        """Pair a frame with its reference copy; its F1 against it feeds the accuracy model."""
        scored = self.golden.add(record)
        if scored is not None:
            self.loop.observe_accuracy(scored.quality, scored.counts.f1, scored.detector)

    def _poke(self, trigger: str) -> None:
        self._trigger = trigger
        self._wake.set()

    def _live_detectors(self) -> list[DetectorInfo]:
        now = time.time_ns()
        live: list[ServiceAnnouncement] = self.registry.view.live(now)
        return [
            DetectorInfo(s.quality, s.node, s.model or "", s.capacity_fps, s.threads, s.remote)
            for s in live
            if s.stage is StageName.DETECT and s.quality is not None
        ]

    async def _run(self) -> None:
        c = self.settings.control
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), c.slot_s)
            except TimeoutError:
                self._trigger = "slot"
            self._wake.clear()
            # Triggers may come in bursts (several cameras joining): at most one decision
            # per half slot.
            wait = self._last_decision + c.slot_s / 2 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            detectors = self._live_detectors()
            key = frozenset((d.quality, d.node) for d in detectors)
            trigger = self._trigger
            if key != self._detectors:
                trigger, self._detectors = "detectors-changed", key
            p99 = self.loop.latency_p99_s(time.time())
            if trigger == "slot" and p99 is not None and p99 > c.slo_p99_s:
                trigger = "slo"
            await self.decide(detectors, trigger)

    async def decide(self, detectors: list[DetectorInfo], trigger: str) -> Decision | None:
        """Run one decision now and publish what it changes."""
        self._last_decision = time.monotonic()
        nodes = self.nodes.view.live(time.time_ns())
        cores = {n.node: n.cores for n in nodes}
        used = {n.node: n.used_cores for n in nodes}
        decision = await asyncio.to_thread(
            self.loop.decide, time.time(), detectors, cores, trigger, used
        )
        if decision is None:
            return None
        self.decisions.append(decision)
        result = decision.result
        self._report(decision, detectors, nodes)
        if decision.rule == "kept":
            log.warning(
                "control slot %d (%s): %s in %.0f ms, keeping the last assignment: %s",
                decision.slot,
                trigger,
                result.status.value,
                result.solve_time_s * 1e3,
                result.message,
            )
            return decision
        estimate = (
            f", est. latency {result.latency_s:.3f} s, accuracy {result.accuracy:.2f}"
            if math.isfinite(result.latency_s)
            else ""  # an overload fallback has no plan to estimate
        )
        log.info(
            "control slot %d (%s): %s, %d changes, %d held%s, solved in %.0f ms",
            decision.slot,
            trigger,
            decision.rule,
            len(decision.changes),
            len(decision.held),
            estimate,
            result.solve_time_s * 1e3,
        )
        if decision.problem is not None:
            log.info("control slot %d: %s", decision.slot, _planned(decision.problem))
        epoch = max(self._epoch + 1, time.time_ns() // 1_000_000)
        self._epoch = epoch
        METRICS.assignment_epoch.set(epoch)
        for source, choice in decision.changes.items():
            record = Assignment(
                source=source,
                quality=choice.quality,
                fps=choice.fps,
                epoch=epoch,
                pipeline=choice.pipeline,
                reason=f"slot {decision.slot} ({trigger}): {decision.rule}",
            )
            await self.assignments.send(key=source.encode(), value=record.to_bytes())
        for source, reason in decision.refused.items():
            quality = max(self.settings.topics.qualities)
            record = Assignment(
                source=source, quality=quality, epoch=epoch, admitted=False, reason=reason
            )
            await self.assignments.send(key=source.encode(), value=record.to_bytes())
        return decision

    def _report(
        self, decision: Decision, detectors: list[DetectorInfo], nodes: list[NodeAnnouncement]
    ) -> None:
        """Publish the decision and what the agent sees as Prometheus metrics."""
        result = decision.result
        METRICS.solver_seconds.labels(result.policy).observe(result.solve_time_s)
        METRICS.decisions.labels(result.status.value, decision.rule.split(":")[0]).inc()
        METRICS.a_min.set(self.settings.control.a_min)
        for quantity, value in (
            ("latency_seconds", result.latency_s),
            ("accuracy", result.accuracy),
            ("utility", result.utility),
        ):
            if not math.isnan(value):
                METRICS.control_estimate.labels(quantity).set(value)
        live: dict[tuple[str, str], int] = {}
        for s in self.registry.view.live(time.time_ns()):
            key = (s.stage, str(s.quality or ""))
            live[key] = live.get(key, 0) + 1
        METRICS.registry_services.clear()
        for (stage, quality), count in live.items():
            METRICS.registry_services.labels(stage, quality).set(count)
        now = time.time_ns()
        for n in nodes:
            METRICS.node_cores.labels(n.node, n.tier).set(n.cores)
            METRICS.node_used_cores.labels(n.node, n.tier).set(n.used_cores)
            METRICS.node_heartbeat_age.labels(n.node, n.tier).set((now - n.heartbeat_ns) / 1e9)


def build_control(settings: Settings) -> Service:
    """The control agent as a service (``tierflow worker control``)."""
    agent = ControlAgent(settings)
    agent.service.announce([agent.service.contract.names.metrics_frames], as_group=False)
    return agent.service
