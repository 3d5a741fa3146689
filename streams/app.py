"""The faust app every tierflow worker runs, configured from the settings.

faust uses its default aiokafka driver (``kafka://``): the confluent driver ignores
``producer_max_request_size`` (DESIGN.md, Kafka facts), and frames need it. Its producer
is made idempotent with ``acks=all`` (faust turns idempotence on only inside
transactions), like the confluent-kafka producers of ``topics.clients``: a retry after a
broker failover must not write an outcome or a forwarded frame twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT, ProducerT, TransportT

from tierflow.settings import Settings
from tierflow.topics.catalogue import TopicSpec
from tierflow.topics.contract import Contract


def broker_urls(bootstrap: str) -> list[str]:
    """faust broker URLs for a ``host:port[,host:port]`` bootstrap list."""
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


class IdempotentProducer(faust_aiokafka.Producer):
    """faust's aiokafka producer with ``acks=all`` and ``enable_idempotence`` always on."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread with the app's fetch wait instead of its fixed 1500 ms.

    aiokafka keeps one fetch in flight per broker, for the partitions with nothing
    buffered. Under load the busy partitions still hold records when the next fetch is
    formed, so it asks only for idle ones (frames keyed by 5 sources fill 3 of 6
    partitions), and the broker holds it for the whole wait: the busy partitions' records
    then sat 1.5 s in the broker. The attribute is read when the consumer starts.
    """

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        if isinstance(app, TierflowApp) and app.fetch_max_wait_s is not None:
            consumer._fetch_max_wait_ms = max(1, round(app.fetch_max_wait_s * 1000))
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class TierflowApp(faust.App):
    """A faust app with :class:`IdempotentProducer` and a bounded fetch wait.

    Its consumer's fetches wait at most :attr:`fetch_max_wait_s` (:class:`_ConsumerThread`).
    """

    fetch_max_wait_s: float | None = None
    """Seconds the broker may hold a fetch; None keeps faust's 1.5 s."""

    def _new_transport(self) -> TransportT:
        urls = self.conf.broker_consumer
        if urls and urls[0].scheme not in ("kafka", "aiokafka"):
            return super()._new_transport()  # another driver: faust's own transport
        return _Transport(urls, self)

    def _new_producer(self) -> ProducerT:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)


def make_app(settings: Settings, contract: Contract, app_id: str, **overrides: Any) -> faust.App:
    """A faust app for ``app_id`` (also its consumer group) on the contract's cluster.

    Args:
        settings: tierflow settings (worker group membership, topic defaults).
        contract: the cluster and its message limits.
        app_id: faust app id; prefixed with the topic prefix so experiments sharing a
            cluster do not share consumer groups.
        **overrides: faust settings that win over the derived ones.
    """
    w = settings.workers
    full_id = contract.names.group(app_id)
    w.data_dir.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        "broker": broker_urls(contract.bootstrap),
        "broker_credentials": contract.security.faust_credentials(),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "store": "memory://",
        "web_enabled": False,
        "datadir": str(w.data_dir / full_id),
        "topic_replication_factor": contract.catalogue.replication_factor,
        "producer_acks": -1,  # all in-sync replicas; IdempotentProducer insists on it too
        "topic_partitions": settings.topics.frame_partitions,
        "consumer_auto_offset_reset": w.offset_reset,
        "broker_session_timeout": w.session_timeout_s,
        "broker_heartbeat_interval": w.heartbeat_s,
        # Acked offsets are committed this often: what a crashed or rebalanced-away worker
        # had finished but not committed is processed again (a duplicate outcome record).
        "broker_commit_interval": w.commit_interval_s,
        # Stages ack a record only after its outputs are delivered; a frame still waiting
        # for the detector at shutdown stays unacknowledged, so its offset is not committed
        # and the next consumer gets it. faust's default would wait for that ack forever.
        "stream_wait_empty": False,
        **contract.limits.faust_settings(),
    }
    if w.instance_id is not None:
        conf["consumer_group_instance_id"] = w.instance_id
    conf.update(overrides)
    app = TierflowApp(full_id, **conf)
    app.fetch_max_wait_s = w.fetch_max_wait_s
    return app


Event = EventT[bytes]
"""A consumed Kafka record as faust hands it to an agent (key and value are raw bytes)."""


async def manual_ack_events(stream: faust.StreamT[bytes]) -> AsyncIterator[Event]:
    """The stream's events with acknowledgement left to the caller.

    Stages ack a record only once its outputs are delivered (``streams.outcomes``), so
    faust must not ack it when the loop moves on.
    """
    if not isinstance(stream, faust.Stream):
        msg = f"expected a faust Stream, got {type(stream).__name__}"
        raise TypeError(msg)
    async for event in stream.noack().events():
        yield event


def faust_topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    """Declare ``spec`` in ``app`` exactly as the catalogue creates it (raw bytes in and out).

    faust declares the topics it consumes on start; passing the catalogue's partitions and
    config means it creates the same topic the catalogue would if it runs first.
    """
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        partitions=spec.partitions,
        replicas=spec.replication_factor,
        config=dict(spec.config),
    )


def faust_topics(app: faust.App, specs: Sequence[TopicSpec]) -> faust.TopicT:
    """One faust channel over several catalogue topics of the same kind (e.g. every quality).

    faust cannot subscribe by pattern (faust issue #62), so the per-quality topics are
    listed from the catalogue.
    """
    if not specs:
        msg = "faust_topics needs at least one topic"
        raise ValueError(msg)
    first = specs[0]
    if any((s.partitions, dict(s.config)) != (first.partitions, dict(first.config)) for s in specs):
        msg = f"topics {[s.name for s in specs]} differ in partitions or config"
        raise ValueError(msg)
    return app.topic(
        *[s.name for s in specs],
        key_type=bytes,
        value_type=bytes,
        partitions=first.partitions,
        replicas=first.replication_factor,
        config=dict(first.config),
    )


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel background tasks and wait until they have finished."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running(app: faust.App) -> AsyncIterator[faust.App]:
    """Run ``app`` (agents, consumer, producer) inside the current event loop.

    For embedding a worker in a larger program or a test; ``faust worker`` is the
    stand-alone way. The app is finalized here, so declare agents before entering.
    """
    app.finalize()
    await app.start()
    try:
        yield app
    finally:
        leave_group_on_stop(app)
        await app.stop()


def leave_group_on_stop(app: faust.App) -> None:
    """Make a static group member (``workers.instance_id``) leave its group when it stops.

    Static members (KIP-345) do not leave on close, so a restarted one takes its partitions
    back without a rebalance: right for a crash, wrong for a planned stop (a migration, a
    scale-down), where the partitions would wait out the session timeout. aiokafka sends
    LeaveGroup by member id when it knows no instance id, which removes a static member too;
    so the id is forgotten just before a graceful stop. A crash never gets here.
    """
    consumer = getattr(getattr(getattr(app, "_consumer", None), "_thread", None), "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None and getattr(coordinator, "_group_instance_id", None) is not None:
        coordinator._group_instance_id = None
