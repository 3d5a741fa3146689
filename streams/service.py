"""A stage service: a faust app, its thread pool, discovery and outcomes, run as one unit.

The unit starts and stops together, in-process (tests, ``tierflow up``) or as a process of
its own (``tierflow worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import faust

from streams.app import faust_topic, faust_topics, make_app, running
from streams.discovery import Announcer, RegistryReader
from streams.nodes import local_node
from streams.outcomes import Outcomes
from tierflow.settings import Settings
from topics.catalogue import Catalogue
from topics.envelope import FrameCodec
from topics.names import TopicNames
from topics.records import ServiceAnnouncement

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


class Service:
    """Everything one stage instance runs.

    Args:
        settings: tierflow settings.
        stage: ``resize``, ``detect`` or ``draw``.
        app_id: faust app id, which is also the consumer group: instances of the same
            service share partitions, different services each see every frame.
        threads: size of the pool for blocking work (codec, inference, file writes).
    """

    def __init__(self, settings: Settings, stage: str, app_id: str, threads: int = 1) -> None:
        self.settings = settings
        self.stage = stage
        self.app = make_app(settings, app_id)
        self.names = TopicNames(settings.topics.prefix)
        self.catalogue = Catalogue.from_settings(settings)
        self.codec = FrameCodec.from_settings(settings)
        self.outcomes = Outcomes(self.app, settings, stage)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=stage)
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []

    def topic(self, name: str) -> faust.TopicT:
        """The faust topic for a catalogue topic name."""
        return faust_topic(self.app, self.catalogue[name])

    def topics(self, names: list[str]) -> faust.TopicT:
        """One faust channel over several catalogue topics."""
        return faust_topics(self.app, [self.catalogue[n] for n in names])

    async def offload(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn`` in the service's pool, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    def on_start(self, hook: Hook) -> None:
        """Run ``hook`` once the app runs (after agents are started)."""
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run ``hook`` on stop, before the app stops (hooks run in reverse order)."""
        self._on_stop.append(hook)

    def announce(self, make: Callable[[int], ServiceAnnouncement]) -> Announcer:
        """Heart-beat ``make(now_ns)`` on ``control.registry`` while the service runs.

        The machine is announced on ``control.nodes`` alongside (AVEC's node discovery).
        """
        heartbeat = self.settings.dataplane.heartbeat_s
        service_id = make(0).service_id
        announcer = Announcer(self.topic(self.names.registry), service_id, make, heartbeat)
        node = Announcer(
            self.topic(self.names.nodes),
            self.settings.dataplane.node,
            lambda now: local_node(self.settings, now),
            heartbeat,
            tombstone=False,
        )
        for each in (announcer, node):
            self.on_start(each.start)
            self.on_stop(each.stop)
        return announcer

    def follow_registry(self) -> RegistryReader:
        """A registry reader kept current while the service runs.

        Agents that route by it must ``await reader.caught_up()`` before their first
        decision: faust starts agents before the start hooks run.
        """
        reader = RegistryReader(self.settings)
        self.on_start(reader.start)
        self.on_stop(reader.stop)
        return reader

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[Service]:
        """Run the service until the block exits."""
        async with running(self.app):
            try:
                for hook in self._on_start:
                    await hook()
                yield self
            finally:
                for hook in reversed(self._on_stop):
                    try:
                        await hook()
                    except Exception:
                        log.exception("%s: a stop hook failed", self.stage)
                await self.outcomes.drain()
                await self.app.producer.flush()
        self.executor.shutdown(wait=True, cancel_futures=True)


async def serve_until_signalled(service: Service) -> None:
    """Run ``service`` until SIGINT or SIGTERM (the body of ``tierflow worker``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service.run():
        log.info("%s service running", service.stage)
        await stop.wait()
    log.info("%s service stopped", service.stage)
