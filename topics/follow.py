"""Group-less followers of a topic (aiokafka), for processes that must see every record.

Routers, the control agent, reporters and ``tierflow status`` each need every record of a
control or metrics topic, which one consumer group would split between its members; they
assign every partition themselves. Kept apart from ``topics.clients`` so a camera (an
edge device) never imports aiokafka.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tierflow.settings import Settings
from tierflow.topics.clients import admin_config
from tierflow.topics.errors import TopicAdminError
from tierflow.topics.limits import MessageLimits


async def partitions_of(settings: Settings, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partition ids of ``topic``.

    Raises:
        TopicAdminError: the topic does not exist.
    """

    def lookup() -> list[int]:
        admin = AdminClient(admin_config(settings, "tierflow-metadata"))
        found = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            msg = f"topic {topic} does not exist; run 'tierflow topics create'"
            raise TopicAdminError(msg)
        return sorted(found.partitions)

    return await asyncio.to_thread(lookup)


async def follow_topic(
    settings: Settings, topic: str, client_id: str, from_end: bool = False
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A started aiokafka consumer outside any group, assigned every partition of ``topic``.

    Group-less because every follower (routers, cameras, reporters) must see every record,
    which one consumer group would split between its members. Positions start at the
    beginning, or at the current end when ``from_end`` (resolved before returning, so
    nothing produced afterwards is missed).

    Raises:
        TopicAdminError: the topic does not exist.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=client_id,
        max_partition_fetch_bytes=MessageLimits.from_settings(settings).batch_bytes,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
        consumer.assign(tps)
        if from_end:
            await consumer.seek_to_end(*tps)
        else:
            await consumer.seek_to_beginning(*tps)
        for tp in tps:
            await consumer.position(tp)
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tps
