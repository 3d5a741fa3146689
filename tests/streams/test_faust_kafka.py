"""Frames cross the real broker between confluent-kafka and a faust agent, byte for byte."""

from __future__ import annotations

import asyncio
import time
import uuid

import faust
import pytest
from confluent_kafka import Consumer, Producer

from tests.frames import build_frames
from tierflow.settings import Settings
from tierflow.streams.app import faust_topic, make_app, running
from tierflow.topics.clients import consumer_config, producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import producer_headers

pytestmark = pytest.mark.kafka


async def test_confluent_producer_to_faust_agent_is_byte_exact(kafka_topics: Settings) -> None:
    settings = kafka_topics
    contract = Contract.of(settings)
    topic = contract.names.raw(512)
    frames = build_frames(contract.codec, "cam-a")
    assert max(len(v) for v, _ in frames) > 4 * 1024 * 1024  # 1080p crosses the 1 MB defaults

    received: asyncio.Queue[tuple[bytes, bytes, list[tuple[str, bytes]]]] = asyncio.Queue()
    app = make_app(settings, contract, f"test-{uuid.uuid4().hex[:8]}")

    @app.agent(faust_topic(app, contract.catalogue[topic]))
    async def collect(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await received.put((event.key, event.value, list(event.message.headers)))

    producer = Producer(producer_config(contract, client_id="test-camera"))
    async with running(app):
        for value, headers in frames:
            producer.produce(topic, key=b"cam-a", value=value, headers=producer_headers(headers))
        assert producer.flush(30) == 0
        got = [await asyncio.wait_for(received.get(), 60) for _ in frames]

    for (value, headers), (key, got_value, got_headers) in zip(frames, got, strict=True):
        assert key == b"cam-a"
        assert got_value == value
        assert got_headers == headers


async def test_faust_agent_to_confluent_consumer_is_byte_exact(kafka_topics: Settings) -> None:
    settings = kafka_topics
    contract = Contract.of(settings)
    names = contract.names
    frames = build_frames(contract.codec, "cam-b")
    app = make_app(settings, contract, f"test-{uuid.uuid4().hex[:8]}")
    out = faust_topic(app, contract.catalogue[names.annotated])
    async with running(app):
        for value, headers in frames:
            await out.send(key=b"cam-b", value=value, headers=headers)
        await app.producer.flush()

    consumer = Consumer(
        consumer_config(contract, group_id=uuid.uuid4().hex, client_id="test-reader")
    )
    consumer.subscribe([names.annotated])
    got: list[tuple[bytes | None, bytes | None, object]] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(frames) and time.monotonic() < deadline:
            message = await asyncio.to_thread(consumer.poll, 1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append((message.key(), message.value(), message.headers()))
    finally:
        consumer.close()
    assert len(got) == len(frames), f"only {len(got)} of {len(frames)} frames came back"
    for (value, headers), (key, got_value, got_headers) in zip(frames, got, strict=True):
        assert key == b"cam-b"
        assert got_value == value
        assert got_headers == headers


def test_a_frame_over_the_broker_limit_is_refused_not_lost(kafka_topics: Settings) -> None:
    """The producer gets an error for a record above the topic limit: nothing vanishes."""
    settings = kafka_topics
    contract = Contract.of(settings)
    topic = contract.names.raw(320)
    limit = contract.limits.batch_bytes
    errors: list[str] = []
    producer = Producer(
        producer_config(contract, client_id="test-oversize", **{"message.max.bytes": 4 * limit})
    )
    producer.produce(
        topic,
        key=b"big",
        value=bytes(limit + 1024),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
    )
    producer.flush(30)
    assert errors and "too large" in errors[0].lower()
