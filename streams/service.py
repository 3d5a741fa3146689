"""A stage service: a faust app, its thread pool, discovery and outcomes, run as one unit.

The unit starts and stops together, in-process (tests, ``tierflow up``) or as a process of
its own (``tierflow worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import faust

from tierflow.errors import FrameFormatError, FrameProblem, TierflowError
from tierflow.settings import Settings
from tierflow.streams import metrics
from tierflow.streams.app import (
    Event,
    cancel,
    faust_topic,
    faust_topics,
    make_app,
    manual_ack_events,
    running,
)
from tierflow.streams.discovery import (
    Announcer,
    ProbedRegistryReader,
    RegistryView,
    TableReader,
    registry_reader,
)
from tierflow.streams.metrics import METRICS
from tierflow.streams.nodes import CpuMeter, local_node
from tierflow.streams.outcomes import Outcomes, latency_s, raw_header_bytes
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, decode_meta
from tierflow.topics.headers import H_QUALITY
from tierflow.topics.records import DropPolicy, ServiceAnnouncement
from tierflow.topics.stages import PIPELINE, StageName

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


class Service:
    """Everything one stage instance runs: the one shape of every tierflow service.

    Its faust app id, which is also the consumer group, is ``tierflow-<stage>[-<quality>]``:
    instances of the same service share partitions, different services each see every frame.

    Args:
        settings: tierflow settings.
        stage: the stage it runs.
        quality: the quality it serves, for a service per quality (detect); else None.
        threads: size of the pool for blocking work (codec, inference, file writes).
    """

    def __init__(
        self, settings: Settings, stage: StageName, quality: int | None = None, threads: int = 1
    ) -> None:
        self.settings = settings
        self.contract = Contract.of(settings)
        self.stage = stage
        self.quality = quality
        suffix = "" if quality is None else f"-{quality}"
        self.app = make_app(settings, self.contract, f"tierflow-{stage}{suffix}")
        node = settings.dataplane.node
        self.service_id = f"{stage}{suffix}-{node}-{uuid.uuid4().hex[:6]}"
        self.outcomes = Outcomes(self.app, self.contract, stage)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=stage)
        self._on_start: list[Hook] = []
        self._consumed: dict[tuple[str, int], int] = {}
        """The offset of the last record handed to the stage, per (topic, partition)."""
        self._on_stop: list[Hook] = []
        # Where Prometheus reaches this process; known once run() serves /metrics.
        self.metrics_host: str | None = None
        self.metrics_port: int | None = None
        self.group = self.app.conf.id
        self.failure: BaseException | None = None
        """What broke the service (:meth:`fail`); it then stops and must be restarted."""
        self.failed = asyncio.Event()

    def fail(self, exc: BaseException) -> None:
        """The service cannot go on: log it, stop announcing and end (the first call wins).

        A task that dies while the process still heart-beats its capacity is the worst
        failure: frames keep being routed to a service that never answers. So a dead task
        fails the whole service loudly, and its supervisor restarts it.
        """
        if self.failure is not None:
            return
        self.failure = exc
        log.critical("%s: the service failed and stops: %r", self.stage, exc, exc_info=exc)
        self.failed.set()

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task whose death (other than cancellation) fails the service."""

        async def body() -> None:
            await coro

        task = asyncio.create_task(body(), name=name)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and (exc := t.exception()) is not None:
                self.fail(exc)

        task.add_done_callback(done)
        return task

    def topic(self, name: str) -> faust.TopicT:
        """The faust topic for a catalogue topic name."""
        return faust_topic(self.app, self.contract.catalogue[name])

    def topics(self, names: list[str]) -> faust.TopicT:
        """One faust channel over several catalogue topics."""
        return faust_topics(self.app, [self.contract.catalogue[n] for n in names])

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

    def announce(
        self,
        topics: Sequence[str],
        *,
        input_size: int | None = None,
        model: str | None = None,
        threads: int = 1,
        remote: bool = False,
        capacity_fps: Callable[[], float | None] = lambda: None,
        usage: Callable[[], tuple[int, int | None]] = lambda: (0, None),
        as_group: bool = True,
    ) -> Announcer:
        """Heart-beat what this service consumes on ``control.registry`` while it runs.

        The machine is announced on ``control.nodes`` alongside (AVEC's node discovery).

        Args:
            topics: the topics it consumes.
            input_size: side in pixels of the frames it wants (detect).
            model: detector name (detect).
            threads: inference calls it runs at once.
            remote: its inference runs elsewhere (an inference server).
            capacity_fps: its measured throughput now, frames per busy second.
            usage: frames it served so far and when it served the last (ns, None before
                the first), which the provisioning back end evicts by.
            as_group: it consumes ``topics`` in its consumer group, which routers check
                with the broker; False for a group-less follower (the control agent).
        """
        dp = self.settings.dataplane
        heartbeat = dp.heartbeat_s

        def make(now: int) -> ServiceAnnouncement:
            served, last_ns = usage()
            return ServiceAnnouncement(
                service_id=self.service_id,
                stage=self.stage,
                quality=self.quality,
                input_size=input_size,
                topic=",".join(topics),
                model=model,
                tier=dp.tier,
                node=dp.node,
                capacity_fps=capacity_fps(),
                threads=threads,
                remote=remote,
                metrics_host=self.metrics_host,
                metrics_port=self.metrics_port,
                group=self.group if as_group else None,
                frames_served=served,
                last_frame_ns=last_ns,
                heartbeat_ns=now,
                ttl_s=dp.registry_ttl_s,
            )

        names = self.contract.names
        announcer = Announcer(self.topic(names.registry), self.service_id, make, heartbeat)
        node = Announcer(
            self.topic(names.nodes),
            self.settings.dataplane.node,
            functools.partial(local_node, self.settings, meter=CpuMeter()),
            heartbeat,
            tombstone=False,
        )
        for each in (announcer, node):
            self.on_start(each.start)
            self.on_stop(each.stop)
        return announcer

    def follow_registry(self, probed: bool = False) -> TableReader[RegistryView]:
        """A registry reader kept current while the service runs.

        Agents that route by it must ``await reader.caught_up()`` before their first
        decision: faust starts agents before the start hooks run.

        Args:
            probed: believe an announcement only while its consumer group consumes what it
                announced (:class:`~tierflow.streams.discovery.ProbedRegistryReader`), as
                routers must; probed every ``dataplane.heartbeat_s``.
        """
        reader: TableReader[RegistryView] = (
            ProbedRegistryReader(self.contract, self.settings.dataplane.heartbeat_s)
            if probed
            else registry_reader(self.contract)
        )
        self.on_start(reader.start)
        self.on_stop(reader.stop)
        return reader

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[Service]:
        """Run the service until the block exits."""
        self.metrics_host, self.metrics_port = metrics.serve_announced(self.settings.dataplane)
        lag = asyncio.create_task(self._report_lag(), name=f"{self.stage}-lag")
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
        await cancel(lag)
        self.executor.shutdown(wait=True, cancel_futures=True)

    def consume(
        self,
        channel: faust.TopicT,
        name: str,
        handle: Callable[[Event], Awaitable[None]],
        ready: Hook | None = None,
    ) -> None:
        """Register the agent that hands every record of ``channel`` to ``handle``.

        ``handle`` must account for its record (outputs then ack, a drop, a deadletter). An
        unexpected exception sends the record to deadletter as ``stage-error`` instead of
        stopping the stage: one bad record must never stop the others.

        Args:
            channel: the topic(s) consumed.
            name: the agent's name.
            handle: processes one record.
            ready: awaited before the first record (e.g. discovery caught up).
        """

        async def agent(stream: faust.StreamT[bytes]) -> None:
            # Redeliveries of frames a previous incarnation finished get no second outcome.
            await self.outcomes.seed()
            if ready is not None:
                await ready()
            async for event in self.events(stream):
                try:
                    await handle(event)
                except Exception as exc:
                    log.exception("%s: unexpected error", self.stage)
                    try:
                        await self.outcomes.deadletter(event, "stage-error", repr(exc))
                    except Exception as second:  # not even a deadletter: nothing is safe
                        self.fail(second)
                        raise

        self.app.agent(channel, name=name)(agent)

    async def admit(self, event: Event, may_drop: bool = True) -> FrameMeta | None:
        """Read a record's frame metadata as it enters this stage, or account for it.

        Returns the metadata stamped ``<stage>.in``; None when the record was sent to
        deadletter (unreadable headers) or, when ``may_drop``, dropped: older than
        ``dataplane.deadline_s`` (policy ``deadline``) or waiting in front of this stage
        longer than ``dataplane.max_lag_s`` (policy ``lag``).
        """
        enter = time.time_ns()
        readable: FrameMeta | None = None
        try:
            meta = self.checked_meta(event).stamped(f"{self.stage}.in", enter)
        except FrameFormatError as exc:
            # Readable headers (a frame too large, a lying tf-quality) still name the frame:
            # its outcome then counts for its own sequence, not the anonymous -1.
            with contextlib.suppress(FrameFormatError):
                readable = decode_meta(event.message.headers)
            await self.outcomes.deadletter(event, exc.problem.value, exc.detail, readable)
            return None
        METRICS.stage_frames.labels(self.stage, str(meta.quality)).inc()
        waited_s = wait_before(meta, self.stage)
        if waited_s is not None:
            METRICS.stage_wait.labels(self.stage).observe(max(waited_s, 0.0))
        if may_drop and latency_s(meta, enter) > self.settings.dataplane.deadline_s:
            await self.outcomes.dropped(event, meta, DropPolicy.DEADLINE)
            return None
        if may_drop and waited_s is not None and waited_s > self.settings.dataplane.max_lag_s:
            await self.outcomes.dropped(event, meta, DropPolicy.LAG)
            return None
        return meta

    def checked_meta(self, event: Event) -> FrameMeta:
        """The frame metadata of a record, once the record is known to be a frame here.

        One rule per way a record can lie: a value that is not bytes (a null) is
        WRONG_TYPE; a value over ``frames.max_message_bytes``, or a message the stage could
        not send on with its own headers added (:meth:`Outcomes.fits`), is TOO_LARGE (an
        independent producer may send up to the broker's margin above the frame limit); a
        header given twice is BAD_HEADER (read from the message's own header list, which
        keeps repeats); a ``tf-quality`` other than its per-quality topic's is BAD_HEADER
        (routing by the header would send it where its topic says it is not).

        Raises:
            FrameFormatError: naming the problem.
        """
        message = event.message
        value = message.value
        if not isinstance(value, bytes | bytearray):
            found = "null" if value is None else type(value).__name__
            msg = f"a frame's value must be bytes, got {found}"
            raise FrameFormatError(FrameProblem.WRONG_TYPE, msg)
        meta = decode_meta(message.headers)
        self.contract.codec.check_size(len(value))
        if not self.outcomes.fits(message.key, value, message.headers):
            size = len(value) + raw_header_bytes(message.headers)
            msg = f"a message of {size} bytes leaves no room for this stage's headers"
            raise FrameFormatError(FrameProblem.TOO_LARGE, msg)
        topic_quality = self.contract.names.quality_of(message.topic)
        if topic_quality is not None and topic_quality != meta.quality:
            msg = (
                f"{H_QUALITY} {meta.quality} on {message.topic}, a topic of quality {topic_quality}"
            )
            raise FrameFormatError(FrameProblem.BAD_HEADER, msg)
        return meta

    def lagging(self, meta: FrameMeta) -> bool:
        """Whether the frame waited in front of this stage longer than ``dataplane.max_lag_s``.

        The wait is from the previous stage's ``out`` stamp (the camera's for resize) to this
        stage's ``in``: the time the frame sat in the topic between them.
        """
        waited_s = wait_before(meta, self.stage)
        return waited_s is not None and waited_s > self.settings.dataplane.max_lag_s

    async def events(self, stream: faust.StreamT[bytes]) -> AsyncIterator[Event]:
        """The stream's events, acknowledged by the caller, with their lag recorded."""
        async for event in manual_ack_events(stream):
            self.consumed(event)
            yield event

    def consumed(self, event: Event) -> None:
        """Note that ``event`` is being consumed: the age of its record is the lag in seconds."""
        message = event.message
        age = max(0.0, time.time() - message.timestamp) if message.timestamp else 0.0
        METRICS.lag_seconds.labels(self.group, message.topic, str(message.partition)).set(age)
        self._consumed[(message.topic, message.partition)] = message.offset

    async def _report_lag(self, period_s: float = 2.0) -> None:
        """Every ``period_s``: records between this group's positions and the high watermarks.

        A partition with none left has a lag of 0 s too.
        """
        while True:
            await asyncio.sleep(period_s)
            consumer = getattr(self.app, "_consumer", None)
            if consumer is None:
                continue
            try:
                for tp in list(consumer.assignment()):
                    position = await consumer.position(tp)
                    highwater = consumer.highwater(tp)
                    if position is None or highwater is None:
                        continue  # not fetched yet: no lag to report
                    behind = max(0, highwater - position)
                    labels = (self.group, tp.topic, str(tp.partition))
                    METRICS.lag_messages.labels(*labels).set(behind)
                    consumed = self._consumed.get((tp.topic, tp.partition))
                    if consumed is not None and consumed + 1 >= highwater:
                        # The last record was handed to the stage: nothing waits, whatever
                        # its age was (a partition no camera writes any more would show
                        # that age for ever). Fetched is not enough: fetched records may
                        # still wait in the stream's buffer or a batch queue.
                        METRICS.lag_seconds.labels(*labels).set(0.0)
            except Exception:  # a rebalance may pull the assignment away mid-loop
                log.debug("%s: lag report skipped", self.stage, exc_info=True)


async def serve_until_signalled(service: Service) -> None:
    """Run ``service`` until SIGINT or SIGTERM (the body of ``tierflow worker``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service.run():
        log.info("%s service running (pid %d)", service.stage, os.getpid())
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(service.failed.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        await cancel(*waits)
        # A graceful stop commits offsets and publishes tombstones; should it hang (a
        # broker gone away), the process must still end: nothing acked is lost by exiting.
        timeout = service.settings.workers.stop_timeout_s
        watchdog = threading.Timer(timeout, _exit_stuck, args=(service.stage, timeout))
        watchdog.daemon = True
        watchdog.start()
    watchdog.cancel()
    if service.failure is not None:
        msg = f"{service.stage} service failed: {service.failure!r} (see the log above)"
        raise ServiceFailedError(msg)
    log.info("%s service stopped", service.stage)


class ServiceFailedError(TierflowError):
    """A service stopped because one of its tasks died (:meth:`Service.fail`)."""


def _exit_stuck(stage: str, timeout_s: float) -> None:
    log.error("%s service did not stop within %.0f s; exiting", stage, timeout_s)
    os._exit(1)


def wait_before(meta: FrameMeta, stage: StageName) -> float | None:
    """Seconds ``meta``'s frame waited between the stage before ``stage`` and ``stage``.

    None when either stamp is missing (a stage outside the pipeline, a hand-made frame).
    """
    if stage not in PIPELINE or stage is PIPELINE[0]:
        return None
    previous = PIPELINE[PIPELINE.index(stage) - 1]
    out, enter = meta.stamps.get(f"{previous}.out"), meta.stamps.get(f"{stage}.in")
    return None if out is None or enter is None else (enter - out) / 1e9
