"""Following a topic outside any consumer group (aiokafka), for services that must see it all.

Routers, the control agent, reporters and ``tierflow status`` each need every record of a
control or metrics topic, which one consumer group would split between its members; a
:class:`Follower` assigns every partition itself and hands each record to a handler (a
:class:`~tierflow.topics.tables.LatestTable`, a tally...). Cameras, which must not import
aiokafka or faust, use the same shape on confluent-kafka: :mod:`tierflow.topics.follow_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tierflow.topics.admin import known_partitions
from tierflow.topics.clients import admin_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import TopicAdminError
from tierflow.topics.tables import RecordHandler

log = logging.getLogger(__name__)


def topic_partitions(contract: Contract, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partition ids of ``topic`` (blocking).

    Raises:
        TopicAdminError: the topic does not exist.
    """
    admin = AdminClient(admin_config(contract, "tierflow-metadata"))
    found = known_partitions(admin, topic, timeout_s)
    if found is None:
        msg = f"topic {topic} does not exist; run 'tierflow topics create'"
        raise TopicAdminError(msg)
    return found


class Follower:
    """Hands every record of ``topic`` to ``handle``, from its beginning or its current end.

    Args:
        contract: the cluster and its limits.
        topic: the topic to follow (every partition).
        handle: called for each record, on the event loop; must not block.
        client_id: the client's name in broker logs.
        from_end: start at the end as of :meth:`start` (nothing produced later is missed)
            instead of the beginning (a compacted topic's whole state).

    Attributes:
        changed: set after each fetch that delivered records; clear it to wait for more.
    """

    def __init__(
        self,
        contract: Contract,
        topic: str,
        handle: RecordHandler,
        *,
        client_id: str | None = None,
        from_end: bool = False,
    ) -> None:
        self.contract = contract
        self.topic = topic
        self.handle = handle
        self.client_id = client_id or f"tierflow-follow-{uuid.uuid4().hex[:6]}"
        self.from_end = from_end
        self.changed = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._end: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Connect, position every partition, then follow in the background.

        Raises:
            TopicAdminError: the topic does not exist.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.contract.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=self.client_id,
            max_partition_fetch_bytes=self.contract.limits.batch_bytes,
            **self.contract.security.aiokafka(),
        )
        await consumer.start()
        try:
            ids = await asyncio.to_thread(topic_partitions, self.contract, self.topic)
            tps = [TopicPartition(self.topic, p) for p in ids]
            consumer.assign(tps)
            if self.from_end:
                await consumer.seek_to_end(*tps)
            else:
                await consumer.seek_to_beginning(*tps)
            for tp in tps:  # resolve positions now, so nothing produced after start is missed
                await consumer.position(tp)
            self._end = await consumer.end_offsets(tps)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name=f"follow-{self.topic}")

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until the records present at :meth:`start` have been handled."""
        await asyncio.wait_for(self._caught_up.wait(), timeout_s)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except Exception:  # a broker restart must not end the follower
                log.warning("following %s: fetch failed; retrying", self.topic, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        self.handle(record.key, record.value)
                    except Exception:
                        log.exception("following %s: the handler failed on a record", self.topic)
            if not self._caught_up.is_set():
                positions = [await consumer.position(tp) for tp in self._end]
                if all(pos >= end for pos, end in zip(positions, self._end.values(), strict=True)):
                    self._caught_up.set()
            if batches:
                self.changed.set()

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
