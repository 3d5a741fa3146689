"""Data-driven discovery over ``control.registry`` and ``control.nodes``.

Seed paper §VI-D ("data-driven discovery") for services, AVEC's node discovery for nodes.

Services announce what they consume with heartbeats (:class:`Announcer`); stages that route
frames keep a :class:`RegistryView` fed by a :class:`RegistryReader`. A frame's quality
chooses its topic; the view says whether a live detector consumes that quality. A service
that stops heart-beating for ``ttl_s`` is forgotten; a graceful stop publishes a tombstone
so it is forgotten at once.

The reader is a group-less consumer: every router must see every announcement, which a
consumer group (one partition to one member) would not give.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from tierflow.settings import Settings
from tierflow.streams.app import cancel
from tierflow.topics.follow import follow_topic
from tierflow.topics.names import TopicNames
from tierflow.topics.records import (
    NodeAnnouncement,
    Record,
    RecordError,
    ServiceAnnouncement,
    parse_record,
)

log = logging.getLogger(__name__)


class Heartbeating(Protocol):
    """A record that says when it was made and how long it stays valid."""

    @property
    def heartbeat_ns(self) -> int:
        """When the record was made, ns since the Unix epoch."""
        ...

    @property
    def ttl_s(self) -> float:
        """Seconds the record stays valid without a newer one."""
        ...


H = TypeVar("H", bound=Heartbeating)


@dataclass
class LiveTable(Generic[H]):
    """The latest heartbeat per key of a compacted control topic. One event loop owns it."""

    records: dict[str, H] = field(default_factory=dict)

    def apply(self, key: str, record: H | None) -> None:
        """Keep ``record`` unless a newer one is known; forget ``key`` on a tombstone (None)."""
        if record is None:
            self.records.pop(key, None)
            return
        known = self.records.get(key)
        if known is None or record.heartbeat_ns >= known.heartbeat_ns:
            self.records[key] = record

    def live(self, now_ns: int) -> list[H]:
        """Records whose heartbeat is younger than their ``ttl_s``."""
        return [r for r in self.records.values() if now_ns - r.heartbeat_ns <= r.ttl_s * 1e9]


class RegistryView(LiveTable[ServiceAnnouncement]):
    """The live services of ``control.registry``."""

    def detector_for(self, quality: int, now_ns: int) -> ServiceAnnouncement | None:
        """A live detect service for ``quality``, the most recently heard first; None if none."""
        candidates = [s for s in self.live(now_ns) if s.stage == "detect" and s.quality == quality]
        return max(candidates, key=lambda s: s.heartbeat_ns, default=None)

    def live_qualities(self, now_ns: int) -> set[int]:
        """Qualities with at least one live detector."""
        return {
            s.quality for s in self.live(now_ns) if s.stage == "detect" and s.quality is not None
        }


V = TypeVar("V", bound=LiveTable[Any])


class TableReader(Generic[V]):
    """Follows a compacted control topic from its beginning into a :class:`LiveTable`."""

    def __init__(self, settings: Settings, topic: str, kind: type[Record], view: V) -> None:
        self.settings = settings
        self.topic = topic
        self.kind = kind
        self.view = view
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._caught_up = asyncio.Event()
        self.listeners: list[Callable[[V], None]] = []

    async def start(self) -> None:
        """Connect, replay the compacted topic, then follow it in the background."""
        consumer, tps = await follow_topic(self.settings, self.topic, f"tierflow-{self.topic}")
        self._end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"follow-{self.topic}")

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until the records present at start have been read."""
        await asyncio.wait_for(self._caught_up.wait(), timeout_s)

    async def _run(self) -> None:
        consumer = self._consumer
        if consumer is None:  # start() sets it before creating this task
            return
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._apply(record.key, record.value)
            if not self._caught_up.is_set():
                positions = [await consumer.position(tp) for tp in self._end]
                if all(pos >= end for pos, end in zip(positions, self._end.values(), strict=True)):
                    self._caught_up.set()
            if batches:
                for listener in self.listeners:
                    listener(self.view)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:
            self.view.apply(name, None)
            return
        try:
            self.view.apply(name, parse_record(self.kind, value))
        except RecordError as exc:
            log.warning("ignoring a malformed %s record for %s: %s", self.topic, name, exc)

    async def stop(self) -> None:
        """Stop following."""
        await cancel(self._task)
        if self._consumer is not None:
            await self._consumer.stop()


class RegistryReader(TableReader[RegistryView]):
    """Follows ``control.registry``: the services and what they consume."""

    def __init__(self, settings: Settings) -> None:
        names = TopicNames(settings.topics.prefix)
        super().__init__(settings, names.registry, ServiceAnnouncement, RegistryView())


class NodesReader(TableReader[LiveTable[NodeAnnouncement]]):
    """Follows ``control.nodes``: the machines and their resources."""

    def __init__(self, settings: Settings) -> None:
        names = TopicNames(settings.topics.prefix)
        super().__init__(settings, names.nodes, NodeAnnouncement, LiveTable[NodeAnnouncement]())


class Announcer:
    """Publishes a heartbeat record under ``key`` every ``heartbeat_s``.

    Args:
        topic: a compacted control topic (``control.registry``, ``control.nodes``).
        key: the record key (service id, node id).
        make: builds the record for a time in ns.
        heartbeat_s: seconds between heartbeats.
        tombstone: publish a tombstone on stop so followers forget the key at once; off for
            keys other processes still announce (a node runs several services).
    """

    def __init__(
        self,
        topic: faust.TopicT,
        key: str,
        make: Callable[[int], Record],
        heartbeat_s: float,
        tombstone: bool = True,
    ) -> None:
        self.topic = topic
        self.key = key
        self.make = make
        self.heartbeat_s = heartbeat_s
        self.tombstone = tombstone
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Announce now, then keep announcing."""
        await self._announce()
        self._task = asyncio.create_task(self._run(), name=f"announce-{self.key}")

    async def _announce(self) -> None:
        record = self.make(time.time_ns())
        await self.topic.send(key=self.key.encode(), value=record.to_bytes())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._announce()
            except Exception:  # a missed heartbeat must not stop the next one
                log.exception("heartbeat of %s failed", self.key)

    async def stop(self) -> None:
        """Stop heart-beating (and publish the tombstone, when asked to)."""
        await cancel(self._task)
        if self.tombstone:
            fut = await self.topic.send(key=self.key.encode(), value=None)
            await fut
