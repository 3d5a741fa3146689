"""The foundation's end-to-end check: one frame through the real broker and a faust agent.

A confluent-kafka producer (what cameras use) publishes a generated frame to
``frames.raw.<q>``; a faust agent (what workers use) decodes it, stamps it and forwards the
same bytes to ``frames.annotated``; a confluent-kafka consumer reads it back and checks the
payload is byte-identical and the headers survived. ``tierflow check`` runs it: a health
check of the broker and the client size limits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import cv2
import faust
import numpy as np
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from tierflow.errors import TierflowError
from tierflow.operators.vision.codec import Image
from tierflow.settings import Settings
from tierflow.streams.app import faust_topic, make_app, running
from tierflow.topics.clients import consumer_config, producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import (
    FrameMeta,
    decode_meta,
    encode_headers,
    producer_headers,
)
from tierflow.topics.headers import H_SOURCE

SMOKE_APP_ID = "tierflow-smoke"


class RoundTripError(TierflowError):
    """The sample frame did not come back intact."""


@dataclass(frozen=True)
class RoundTripReport:
    """What the round trip measured.

    Attributes:
        source: the sample source id.
        topic_in: where the frame was produced.
        topic_out: where it came back.
        frame_bytes: size of the encoded frame in bytes.
        latency_s: produce to consume, seconds.
        agent_s: time inside the faust agent (decode and forward), seconds.
    """

    source: str
    topic_in: str
    topic_out: str
    frame_bytes: int
    latency_s: float
    agent_s: float


def sample_image(side: int, seed: int = 0) -> Image:
    """A deterministic BGR test card of ``side`` x ``side`` pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    image = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), ramp[:, None].repeat(side, 1)], -1
    )
    image = image.astype(np.uint8)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, side - side // 4, 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + side // 5, y + side // 6), color, -1)
    cv2.putText(
        image,
        "tierflow",
        (side // 10, side // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        side / 300,
        (255, 255, 255),
        2,
    )
    return image


def _relay_agent(app: faust.App, contract: Contract, quality: int, source: str) -> None:
    """Register the agent forwarding ``source``'s frames from raw to annotated."""
    catalogue, names, codec = contract.catalogue, contract.names, contract.codec
    raw = faust_topic(app, catalogue[names.raw(quality)])
    out = faust_topic(app, catalogue[names.annotated])

    @app.agent(raw, name="smoke-relay")
    async def relay(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.headers.get(H_SOURCE) != source.encode():
                continue  # other traffic on the topic is not ours to touch
            enter = time.time_ns()
            frame = await asyncio.to_thread(codec.decode, event.value, event.headers)
            meta = frame.meta.stamped("relay.in", enter).stamped("relay.out", time.time_ns())
            await out.send(key=event.key, value=event.value, headers=encode_headers(meta))


async def round_trip(
    settings: Settings, quality: int = 512, timeout_s: float = 60.0
) -> RoundTripReport:
    """Send one frame camera -> faust agent -> consumer through the real broker.

    The topics must exist (``topics.admin.create_catalogue``).

    Raises:
        RoundTripError: the frame did not come back within ``timeout_s`` or came back changed.
    """
    contract = Contract.of(settings)
    if quality not in contract.qualities:
        msg = f"quality {quality} has no topics; configured qualities: {contract.qualities}"
        raise RoundTripError(msg)
    names = contract.names
    source = f"smoke-{uuid.uuid4().hex[:8]}"
    codec = contract.codec
    meta = FrameMeta(
        source=source,
        sequence=0,
        capture_ns=time.time_ns(),
        quality=quality,
        content_type=codec.content_type,
    )
    value, headers = codec.encode(sample_image(quality), meta)

    consumer = Consumer(
        consumer_config(contract, group_id=names.group(f"{SMOKE_APP_ID}-reader"), client_id=source)
    )
    # Assign at the end of the output topic before producing, so the reply cannot be missed.
    partitions = (
        consumer.list_topics(names.annotated, timeout=10).topics[names.annotated].partitions
    )
    consumer.assign([TopicPartition(names.annotated, p, OFFSET_END) for p in partitions])
    app = make_app(settings, contract, SMOKE_APP_ID)
    _relay_agent(app, contract, quality, source)
    try:
        async with running(app):
            return await _send_and_await(contract, consumer, source, value, headers, timeout_s)
    finally:
        consumer.close()


async def _send_and_await(
    contract: Contract,
    consumer: Consumer,
    source: str,
    value: bytes,
    headers: list[tuple[str, bytes]],
    timeout_s: float,
) -> RoundTripReport:
    names = contract.names
    sent_meta = decode_meta(headers)
    topic_in = names.raw(sent_meta.quality)
    producer = Producer(producer_config(contract, client_id=source))
    sent = time.monotonic()
    producer.produce(topic_in, key=source.encode(), value=value, headers=producer_headers(headers))
    if producer.flush(timeout_s) != 0:
        msg = f"the broker at {contract.bootstrap} did not acknowledge the sample frame"
        raise RoundTripError(msg)
    deadline = sent + timeout_s
    while time.monotonic() < deadline:
        message = await asyncio.to_thread(consumer.poll, 0.5)
        if message is None or message.error() or message.key() != source.encode():
            continue
        latency = time.monotonic() - sent
        back = decode_meta(message.headers())
        if message.value() != value:
            msg = "the sample frame came back with different bytes"
            raise RoundTripError(msg)
        if (back.source, back.sequence, back.capture_ns) != (
            source,
            sent_meta.sequence,
            sent_meta.capture_ns,
        ):
            msg = f"the sample frame came back with different headers: {back}"
            raise RoundTripError(msg)
        agent_ns = back.stamps.get("relay.out", 0) - back.stamps.get("relay.in", 0)
        return RoundTripReport(
            source, topic_in, names.annotated, len(value), latency, agent_ns / 1e9
        )
    msg = f"the sample frame did not come back on {names.annotated} within {timeout_s:.0f} s"
    raise RoundTripError(msg)
