"""Placement as records: the workflow placed on the live nodes, published on ``control.placement``.

The control agent places whenever the set of live nodes changes; ``tierflow up --no-control``
places once, the same way. Node agents (:mod:`tierflow.streams.node`) run what the newest
placement assigns to their node.

Records are keyed by instance (``<task>#<index>``) and carry the placement's epoch (its time in
ms, so it only grows, also across restarts); an instance the new placement no longer has gets
a tombstone, so the compacted topic holds exactly the current placement.

With ``control.provision = "demand"`` the placer is the thesis's back end (seed 003, §4.3): a
detector is requested while frames arrive at its quality (:class:`Demand`), what runs where
is read from the registry with each detector's real use (frames served, last frame), and
:func:`~tierflow.operators.planning.placement.provision` loads, keeps or evicts by
``control.placement_mode``. It places again whenever the demanded set changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from tierflow.operators.planning.placement import (
    LoadedModel,
    Mode,
    PlacementResult,
    place,
    provision,
)
from tierflow.operators.planning.workflow import (
    NodeMetrics,
    Tier,
    Workflow,
    load_workflow,
    pipeline_workflow,
)
from tierflow.operators.planning.workflow.pipeline import detect_task
from tierflow.settings import Settings
from tierflow.topics.records import NodeAnnouncement, PlacementRecord, ServiceAnnouncement
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
Send = Callable[[bytes, bytes | None], Awaitable[object]]
"""Publishes one record (key, value; None is a tombstone) on ``control.placement``."""


def node_metrics(record: NodeAnnouncement) -> NodeMetrics:
    """A ``control.nodes`` announcement as the placement policies read it: nothing used.

    Placement reserves requirements (seed 000's ``getFreeResources`` is capacity minus
    reservations), and a node's reported busy cores include the very services being placed,
    so the measured load is not subtracted; the quality controller plans with it instead
    (``ControlLoop.decide`` gets ``used_cores`` per node).
    """
    return NodeMetrics(
        node=record.node,
        tier=Tier(record.tier),
        cores=record.cores,
        memory_mb=record.memory_mb,
        storage_mb=record.storage_mb,
        accelerator=record.accelerator,
        accelerator_memory_mb=record.accelerator_memory_mb,
        latency_ms=record.latency_ms,
        bandwidth_mbps=record.bandwidth_mbps,
    )


def deployment_workflow(settings: Settings) -> Workflow:
    """What this deployment places: ``control.workflow`` if given, else its own pipeline."""
    c = settings.control
    if c.workflow is not None:
        return load_workflow(c.workflow)
    return pipeline_workflow(c.detect_qualities or settings.topics.qualities)


class Demand:
    """Which qualities are requested: those whose frames arrived in the last ``window_s``.

    A frame for a quality no detector serves is still recorded (deadlettered
    ``no-consumer``), so a camera asking for an unloaded quality makes it demanded.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last_s: dict[int, float] = {}

    def observe(self, quality: int, now_s: float) -> None:
        """A frame of ``quality`` arrived at ``now_s`` (s, any clock used throughout)."""
        self._last_s[quality] = max(now_s, self._last_s.get(quality, now_s))

    def qualities(self, now_s: float) -> frozenset[int]:
        """The qualities with a frame in the window ending at ``now_s``."""
        return frozenset(q for q, t in self._last_s.items() if now_s - t <= self.window_s)


def loaded_models(
    workflow: Workflow,
    services: Sequence[ServiceAnnouncement],
    placed: PlacementResult | None,
    placed_s: dict[tuple[str, str], float],
    now_s: float,
) -> dict[str, list[LoadedModel]]:
    """Node -> the tasks the last placement runs there, each with its real use.

    Use is read from the live registry: frames served and last frame for a detector (one
    not yet used counts as used when it was placed, so a fresh one is not the first
    evicted); resize and draw serve every frame, so they count as used now. A placed
    task not yet live is loaded and starting. Without a placement of its own (a control
    agent just restarted) whatever runs is what is loaded; with one, a service still live
    that the last placement took away is on its way out, not loaded.
    """
    tasks = {task.name for task in workflow.tasks}
    ours = None if placed is None else {(p.node, p.task) for p in placed.placements.values()}
    found: dict[tuple[str, str], LoadedModel] = {}
    for s in services:
        task = (
            detect_task(s.quality) if s.stage is StageName.DETECT and s.quality else s.stage.value
        )
        if task not in tasks or (ours is not None and (s.node, task) not in ours):
            continue
        if s.stage is StageName.DETECT:
            last = (
                s.last_frame_ns / 1e9
                if s.last_frame_ns is not None
                else placed_s.get((s.node, task), now_s)
            )
            model = LoadedModel(task, last, s.frames_served)
        else:
            model = LoadedModel(task, now_s, s.frames_served)
        old = found.get((s.node, task))
        if old is None or (old.last_used_s, old.hits) < (model.last_used_s, model.hits):
            found[(s.node, task)] = model
    for p in placed.placements.values() if placed is not None else ():
        found.setdefault(
            (p.node, p.task), LoadedModel(p.task, placed_s.get((p.node, p.task), now_s))
        )
    out: dict[str, list[LoadedModel]] = {}
    for (node, _), model in sorted(found.items()):
        out.setdefault(node, []).append(model)
    return out


class Placer:
    """Places the deployment's workflow when the live nodes (or the demand) change.

    Args:
        settings: the policy (``control.placement_policy``), the workflow and how detectors
            are provisioned (``control.provision``, ``placement_mode``, ``demand_s``).
        send: publishes a record on ``control.placement``.
    """

    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self.workflow = deployment_workflow(settings)
        self.send = send
        self.epoch = 0
        self.last: PlacementResult | None = None
        self.demand = Demand(settings.control.demand_s)
        self._key: tuple[frozenset[str], frozenset[str]] | None = None
        self._published: set[str] = set()
        self._placed_s: dict[tuple[str, str], float] = {}

    @property
    def on_demand(self) -> bool:
        """Whether detectors follow the demand (the thesis's back end)."""
        return self.settings.control.provision == "demand"

    def demanded(self, now_s: float) -> frozenset[str]:
        """Tasks requested now: every task without a quality, detectors by the demand."""
        qualities = self.demand.qualities(now_s)
        return frozenset(
            t.name for t in self.workflow.tasks if t.quality is None or t.quality in qualities
        )

    async def place(
        self, nodes: list[NodeAnnouncement], services: Sequence[ServiceAnnouncement] = ()
    ) -> PlacementResult | None:
        """Place on ``nodes`` if they (or the demand) changed since the last; None if not.

        Args:
            nodes: the live nodes.
            services: the live services, with their use (``provision = demand`` only).
        """
        now_s = time.time()
        names = frozenset(n.node for n in nodes)
        demand = self.demanded(now_s) if self.on_demand else frozenset()
        idle = self._idle(services, now_s)
        if not nodes or (names, demand | idle) == self._key:
            return None
        c = self.settings.control
        metrics = [node_metrics(n) for n in nodes]
        if self.on_demand:
            loaded = loaded_models(self.workflow, services, self.last, self._placed_s, now_s)
            decided = await asyncio.to_thread(
                provision,
                self.workflow,
                metrics,
                demand,
                loaded,
                mode=Mode(c.placement_mode),
                time_limit_s=c.time_limit_s,
                evict_idle_s=c.evict_idle_s,
                now_s=now_s,
            )
            result = decided.result
        else:
            result = await asyncio.to_thread(place, self.workflow, metrics, c.placement_policy)
        unplaced = "; ".join(f"{u.instance}: {u.reason}" for u in result.unplaced)
        log.info(
            "placement (%s) of %s on %d nodes: %s, %d placed%s%s",
            result.policy,
            self.workflow.name,
            len(nodes),
            result.status.value,
            len(result.placements),
            f", unplaced: {unplaced}" if unplaced else "",
            f" ({result.message})" if result.message else "",
        )
        await self.publish(result)
        # Only once published: a failure is retried on the next call.
        self._key = (names, demand | self._idle(services, now_s))
        placed = {(p.node, p.task) for p in result.placements.values()}
        self._placed_s = {k: self._placed_s.get(k, now_s) for k in placed}
        return result

    def _idle(self, services: Sequence[ServiceAnnouncement], now_s: float) -> frozenset[str]:
        """Markers of detectors idle past ``control.evict_idle_s`` (they change the key)."""
        idle_s = self.settings.control.evict_idle_s
        if not self.on_demand or idle_s is None:
            return frozenset()
        loaded = loaded_models(self.workflow, services, self.last, self._placed_s, now_s)
        return frozenset(
            f"idle:{node}:{m.model}"
            for node, models in loaded.items()
            for m in models
            if now_s - m.last_used_s > idle_s
        )

    async def publish(self, result: PlacementResult) -> None:
        """Publish ``result`` under a new epoch; tombstone instances it no longer places."""
        self.epoch = max(self.epoch + 1, time.time_ns() // 1_000_000)
        placed = set()
        for p in result.placements.values():
            record = PlacementRecord(
                instance=p.instance,
                task=p.task,
                node=p.node,
                tier=p.tier.value,
                share=p.share,
                epoch=self.epoch,
                policy=result.policy,
                instances=len(result.placements),
            )
            await self.send(p.instance.encode(), record.to_bytes())
            placed.add(p.instance)
        for gone in sorted(self._published - placed):
            await self.send(gone.encode(), None)
        self._published = placed
        self.last = result
