"""Data-driven discovery over ``control.registry`` (seed paper §VI, "data-driven discovery").

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
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from tierflow.settings import Settings
from topics.clients import follow_topic
from topics.names import TopicNames
from topics.records import RecordError, ServiceAnnouncement, parse_record

log = logging.getLogger(__name__)


@dataclass
class RegistryView:
    """The live services, as far as announcements received so far tell.

    Not thread-safe: one event loop owns it.
    """

    services: dict[str, ServiceAnnouncement] = field(default_factory=dict)

    def apply(self, service_id: str, announcement: ServiceAnnouncement | None) -> None:
        """Record an announcement, or forget the service on a tombstone (None)."""
        if announcement is None:
            self.services.pop(service_id, None)
            return
        known = self.services.get(service_id)
        if known is None or announcement.heartbeat_ns >= known.heartbeat_ns:
            self.services[service_id] = announcement

    def live(self, now_ns: int) -> list[ServiceAnnouncement]:
        """Services whose last heartbeat is younger than their ``ttl_s``."""
        return [s for s in self.services.values() if _alive(s, now_ns)]

    def detector_for(self, quality: int, now_ns: int) -> ServiceAnnouncement | None:
        """A live detect service for ``quality``, the most recently heard first; None if none."""
        candidates = [s for s in self.live(now_ns) if s.stage == "detect" and s.quality == quality]
        return max(candidates, key=lambda s: s.heartbeat_ns, default=None)

    def live_qualities(self, now_ns: int) -> set[int]:
        """Qualities with at least one live detector."""
        return {
            s.quality for s in self.live(now_ns) if s.stage == "detect" and s.quality is not None
        }


def _alive(service: ServiceAnnouncement, now_ns: int) -> bool:
    return now_ns - service.heartbeat_ns <= service.ttl_s * 1e9


class RegistryReader:
    """Follows ``control.registry`` from its beginning into a :class:`RegistryView`."""

    def __init__(self, settings: Settings, view: RegistryView | None = None) -> None:
        self.settings = settings
        self.view = view or RegistryView()
        self.topic = TopicNames(settings.topics.prefix).registry
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._caught_up = asyncio.Event()
        self.listeners: list[Callable[[RegistryView], None]] = []

    async def start(self) -> None:
        """Connect, replay the compacted topic, then follow it in the background."""
        consumer, tps = await follow_topic(self.settings, self.topic, "tierflow-registry-reader")
        self._end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="registry-reader")

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until the announcements present at start have been read."""
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
        service_id = key.decode(errors="replace")
        if value is None:
            self.view.apply(service_id, None)
            return
        try:
            self.view.apply(service_id, parse_record(ServiceAnnouncement, value))
        except RecordError as exc:
            log.warning("ignoring a malformed registry record for %s: %s", service_id, exc)

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class Announcer:
    """Publishes a service's heartbeat every ``heartbeat_s`` and a tombstone when it stops."""

    def __init__(
        self,
        topic: faust.TopicT,
        make: Callable[[int], ServiceAnnouncement],
        heartbeat_s: float,
    ) -> None:
        self.topic = topic
        self.make = make
        self.heartbeat_s = heartbeat_s
        self._task: asyncio.Task[None] | None = None
        self.service_id = make(time.time_ns()).service_id

    async def start(self) -> None:
        """Announce now, then keep announcing."""
        await self._announce()
        self._task = asyncio.create_task(self._run(), name=f"announce-{self.service_id}")

    async def _announce(self) -> None:
        announcement = self.make(time.time_ns())
        await self.topic.send(key=self.service_id.encode(), value=announcement.to_bytes())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._announce()
            except Exception:  # a missed heartbeat must not stop the next one
                log.exception("heartbeat of %s failed", self.service_id)

    async def stop(self) -> None:
        """Stop heart-beating and publish a tombstone so routers forget us at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        fut = await self.topic.send(key=self.service_id.encode(), value=None)
        await fut
