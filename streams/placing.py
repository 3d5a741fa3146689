"""Placement as records: the workflow placed on the live nodes, published on ``control.placement``.

The control agent places whenever the set of live nodes changes; ``tierflow up --no-control``
places once, the same way. Node agents (:mod:`tierflow.streams.node`) run what the newest
placement assigns to their node.

Records are keyed by instance (``<task>#<index>``) and carry the placement's epoch (its time in
ms, so it only grows, also across restarts); an instance the new placement no longer has gets
a tombstone, so the compacted topic holds exactly the current placement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tierflow.operators.planning.placement import PlacementResult, place
from tierflow.operators.planning.workflow import (
    NodeMetrics,
    Tier,
    Workflow,
    load_workflow,
    pipeline_workflow,
)
from tierflow.settings import Settings
from tierflow.topics.records import NodeAnnouncement, PlacementRecord

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


class Placer:
    """Places the deployment's workflow when the live nodes change and publishes it.

    Args:
        settings: the policy (``control.placement_policy``) and the workflow.
        send: publishes a record on ``control.placement``.
    """

    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self.workflow = deployment_workflow(settings)
        self.send = send
        self.epoch = 0
        self.last: PlacementResult | None = None
        self._nodes: frozenset[str] = frozenset()
        self._published: set[str] = set()

    async def place(self, nodes: list[NodeAnnouncement]) -> PlacementResult | None:
        """Place on ``nodes`` if they differ from the last placement's; None if unchanged."""
        names = frozenset(n.node for n in nodes)
        if not nodes or names == self._nodes:
            return None
        policy = self.settings.control.placement_policy
        metrics = [node_metrics(n) for n in nodes]
        result = await asyncio.to_thread(place, self.workflow, metrics, policy)
        unplaced = "; ".join(f"{u.instance}: {u.reason}" for u in result.unplaced)
        log.info(
            "placement (%s) of %s on %d nodes: %s, %d placed%s",
            result.policy,
            self.workflow.name,
            len(nodes),
            result.status.value,
            len(result.placements),
            f", unplaced: {unplaced}" if unplaced else "",
        )
        await self.publish(result)
        self._nodes = names  # only once published: a failure is retried on the next call
        return result

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
