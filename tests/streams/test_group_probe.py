"""The registry believes a service only while the broker shows its group consuming."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer

from tierflow.settings import Settings
from tierflow.streams.discovery import ProbedRegistryReader
from tierflow.topics.clients import consumer_config, producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.records import ServiceAnnouncement

pytestmark = pytest.mark.kafka


def _announce(contract: Contract, group: str | None, quality: int) -> None:
    from confluent_kafka import Producer

    record = ServiceAnnouncement(
        service_id=f"detect-{quality}-forged",
        stage="detect",
        quality=quality,
        topic=contract.names.ready(quality),
        group=group,
        heartbeat_ns=time.time_ns(),
        ttl_s=3600.0,
    )
    producer = Producer(producer_config(contract, "test-forger"))
    producer.produce(contract.names.registry, key=record.service_id, value=record.to_bytes())
    assert producer.flush(10) == 0


async def test_a_forged_announcement_counts_only_once_its_group_consumes_the_topic(
    kafka_topics: Settings,
) -> None:
    contract = Contract.of(kafka_topics)
    group = f"test-detect-320-{uuid.uuid4().hex[:6]}"
    _announce(contract, group, 320)
    reader = ProbedRegistryReader(contract, period_s=0.2)
    await reader.start()
    consumer = Consumer(consumer_config(contract, group, "test-member"))
    try:
        await reader.caught_up()
        await reader.probe()
        assert reader.view.get("detect-320-forged") is not None
        assert reader.view.detector_for(320, time.time_ns()) is None  # nobody consumes it

        consumer.subscribe([contract.names.ready(320)])
        deadline = time.monotonic() + 30
        while not consumer.assignment():  # poll until the group assigned the partitions
            assert time.monotonic() < deadline, "the consumer never got partitions"
            await asyncio.to_thread(consumer.poll, 0.2)
        await reader.probe()
        assert reader.view.detector_for(320, time.time_ns()) is not None
    finally:
        await asyncio.to_thread(consumer.close)
        await reader.stop()
    await reader_probe_after_close(contract, group)


async def reader_probe_after_close(contract: Contract, group: str) -> None:
    """After the member left, a fresh reader sees nobody consuming: not live."""
    reader = ProbedRegistryReader(contract, period_s=0.2)
    await reader.start()
    try:
        await reader.caught_up()
        await reader.probe()
        assert reader.view.detector_for(320, time.time_ns()) is None
    finally:
        await reader.stop()
