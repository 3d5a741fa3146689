"""Data-driven discovery over ``control.registry`` and ``control.nodes``.

Seed paper §VI-D ("data-driven discovery") for services, AVEC's node discovery for nodes.

Services announce what they consume with heartbeats (:class:`Announcer`); stages that route
frames keep a :class:`RegistryView` fed by :func:`registry_reader`. A frame's quality
chooses its topic; the view says whether a live detector consumes that quality. A service
that stops heart-beating for ``ttl_s`` is forgotten; a graceful stop publishes a tombstone
so it is forgotten at once.

Routers go one step further (:class:`ProbedRegistryReader`): an announcement is believed
only while its consumer group has members assigned the topic it announced, checked with
the broker every heartbeat. A stale record of a crashed service, or a stray one written
by hand, cannot make a quality look served; a crashed static member that is being
restarted still holds its partitions, so its frames wait for it instead of being refused.

The reader is a group-less follower: every router must see every announcement, which a
consumer group (one partition to one member) would not give.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import faust

from tierflow.streams.app import cancel
from tierflow.topics.clients import admin_config
from tierflow.topics.contract import Contract
from tierflow.topics.follow import Follower
from tierflow.topics.group_probe import IsolatedGroupProbe
from tierflow.topics.records import Heartbeat, NodeAnnouncement, Record, ServiceAnnouncement
from tierflow.topics.stages import StageName
from tierflow.topics.tables import LatestTable

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Heartbeat)


HEARTBEAT_SKEW_S = 60.0
"""How far ahead of this machine's clock a heartbeat may be stamped, seconds.

Heartbeats order the records of one key, so a forged one stamped far in the future
(``heartbeat_ns`` 9e18) would otherwise outrank every real heartbeat of that service for
good and keep it live after it died; it is ignored with one warning instead (the bound
assignments get from ``camera.epoch_skew_s``, for the same reason)."""

MAX_TTL_S = 600.0
"""The longest a heartbeat keeps its service live, seconds, whatever ``ttl_s`` it claims:
a record claiming 1e18 s must not make a crashed service immortal."""


class LiveTable(LatestTable[H]):
    """The latest heartbeat per key of ``control.registry`` or ``control.nodes``."""

    def __init__(self, kind: type[H]) -> None:
        super().__init__(
            kind,
            lambda record: record.heartbeat_ns,
            ceiling=lambda: time.time_ns() + int(HEARTBEAT_SKEW_S * 1e9),
        )

    def live(self, now_ns: int) -> list[H]:
        """Records whose heartbeat is younger than their ``ttl_s`` (at most ``MAX_TTL_S``)."""
        return [r for r in self.values() if _fresh(r, now_ns)]


def _fresh(record: Heartbeat, now_ns: int) -> bool:
    return now_ns - record.heartbeat_ns <= min(record.ttl_s, MAX_TTL_S) * 1e9


class RegistryView(LiveTable[ServiceAnnouncement]):
    """The live services of ``control.registry``.

    ``consumers`` (group -> topics its members are assigned), when set by a
    :class:`ProbedRegistryReader`, replaces the heartbeat age as the test of liveness for
    every service that announced a group; a detector must have one (frames are routed to
    it), other services without one (the control agent follows its topic group-less) are
    judged by their heartbeat.
    """

    def __init__(self) -> None:
        super().__init__(ServiceAnnouncement)
        self.consumers: dict[str, set[str]] | None = None

    def live(self, now_ns: int) -> list[ServiceAnnouncement]:
        """Services heard within their ``ttl_s`` or, when probed, whose group consumes them."""
        if self.consumers is None:
            return super().live(now_ns)
        consumers = self.consumers
        return [s for s in self.values() if _believed(s, consumers, now_ns)]

    def detector_for(self, quality: int, now_ns: int) -> ServiceAnnouncement | None:
        """A live detect service for ``quality``, the most recently heard first; None if none."""
        candidates = [
            s for s in self.live(now_ns) if s.stage is StageName.DETECT and s.quality == quality
        ]
        return max(candidates, key=lambda s: s.heartbeat_ns, default=None)

    def live_qualities(self, now_ns: int) -> set[int]:
        """Qualities with at least one live detector."""
        return {
            s.quality
            for s in self.live(now_ns)
            if s.stage is StageName.DETECT and s.quality is not None
        }


def _believed(service: ServiceAnnouncement, consumers: dict[str, set[str]], now_ns: int) -> bool:
    """Whether a router believes ``service``.

    With a group: its members are assigned every topic it announced. Without one: it is
    not a detector and was heard within its ``ttl_s``.
    """
    if service.group is None:
        return service.stage is not StageName.DETECT and _fresh(service, now_ns)
    announced = set(service.topic.split(","))
    return bool(announced) and announced <= consumers.get(service.group, set())


Table = TypeVar("Table", bound=LiveTable[Any])


class TableReader(Generic[Table]):
    """A table kept current by a :class:`~tierflow.topics.follow.Follower` of its topic.

    Starts at the topic's beginning: a compacted control topic's records are its state.
    """

    def __init__(self, contract: Contract, topic: str, view: Table) -> None:
        self.view = view
        self._follower = Follower(contract, topic, view.handle, client_id=f"tierflow-{topic}")

    async def start(self) -> None:
        """Connect, replay the compacted topic, then follow it in the background."""
        await self._follower.start()

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until the records present at start have been read."""
        await self._follower.caught_up(timeout_s)

    async def stop(self) -> None:
        """Stop following."""
        await self._follower.stop()


def registry_reader(contract: Contract) -> TableReader[RegistryView]:
    """Follows ``control.registry``: the services and what they consume."""
    return TableReader(contract, contract.names.registry, RegistryView())


PROBE_SOCKET_TIMEOUT_S = 4.0
"""Seconds a group probe's request to one broker may take before it fails."""
PROBE_CALL_TIMEOUT_S = 10.0
"""Seconds a group probe's describe call may take: longer than any one request of it."""


class ProbedRegistryReader(TableReader[RegistryView]):
    """A registry reader that also asks the broker which announced groups consume what.

    Every ``period_s`` it describes the consumer groups named by the announcements (off the
    event loop) and sets :attr:`RegistryView.consumers`; a probe that fails keeps the last
    answer and is logged.
    """

    def __init__(self, contract: Contract, period_s: float) -> None:
        super().__init__(contract, contract.names.registry, RegistryView())
        # A broker request must fail before the describe call does: librdkafka aborts the
        # process (enq_once refcnt assertion, confluentinc/librdkafka#4605) on a group
        # description answered after its call timed out, which a killed coordinator caused
        # in the chaos soak. That made it rarer, not impossible; so the calls also run in a
        # child process, whose abort costs one probe's answer (topics/group_probe.py).
        config = admin_config(contract, "tierflow-group-probe")
        config["socket.timeout.ms"] = round(PROBE_SOCKET_TIMEOUT_S * 1000)
        self._groups = IsolatedGroupProbe(config)
        self._period_s = period_s
        self._task: asyncio.Task[None] | None = None
        self._probed = asyncio.Event()

    async def start(self) -> None:
        """Follow the registry and start probing its groups."""
        await super().start()
        self._task = asyncio.create_task(self._probe_forever(), name="group-probe")

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until the registry is read and its groups were probed once."""
        await super().caught_up(timeout_s)
        await asyncio.wait_for(self._probed.wait(), timeout_s)

    async def probe(self) -> None:
        """Describe the announced groups now and update the view."""
        groups = {s.group for s in self.view.values() if s.group is not None}
        answer = await asyncio.to_thread(self._groups.consumed_topics, groups, PROBE_CALL_TIMEOUT_S)
        known = self.view.consumers or {}
        # A group mid-rebalance (a member joining or leaving, a migration) keeps what it
        # consumed: its frames will have a consumer once the assignment is done.
        self.view.consumers = {
            group: known.get(group, set()) if topics is None else topics
            for group, topics in answer.items()
        }
        self._probed.set()

    async def _probe_forever(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # the broker may be briefly away; the last answer stands
                log.warning("consumer-group probe failed", exc_info=True)
            await asyncio.sleep(self._period_s)

    async def stop(self) -> None:
        """Stop probing and following."""
        await cancel(self._task)
        await asyncio.to_thread(self._groups.close)
        await super().stop()


def nodes_reader(contract: Contract) -> TableReader[LiveTable[NodeAnnouncement]]:
    """Follows ``control.nodes``: the machines and their resources."""
    return TableReader(contract, contract.names.nodes, LiveTable(NodeAnnouncement))


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
