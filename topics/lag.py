"""Consumer-group lag per stage, as ``kafka-consumer-groups --describe`` shows it.

For each consumer group of this deployment (``[<prefix>.]tierflow-<stage>...``, the faust
apps of :mod:`tierflow.streams.app`) and each partition it has committed an offset on: the
committed offset, the log end, the lag in messages, and the lag in seconds — the age of
the oldest message not yet consumed (its Kafka timestamp), which is what a frame waiting
there has waited.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from tierflow.topics.admin import wait_for_cluster
from tierflow.topics.clients import consumer_config
from tierflow.topics.contract import Contract
from tierflow.topics.snapshot import watermarks

GROUP_STEM = "tierflow-"
"""Every tierflow service's faust app id starts with this (``tierflow-detect-416``)."""


@dataclass(frozen=True)
class PartitionLag:
    """One partition a group consumes.

    Attributes:
        group: the consumer group id.
        topic: the topic.
        partition: the partition number.
        committed: the group's committed offset (the next message it will read).
        end: the log end offset (the offset the next message written gets).
        lag: ``end - committed``, messages.
        lag_s: seconds since the oldest unconsumed message was written (None: no lag, or
            its timestamp could not be read).
    """

    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int
    lag_s: float | None


def deployment_groups(contract: Contract, timeout_s: float = 10.0) -> list[str]:
    """The consumer groups of this deployment's prefix on the cluster, sorted."""
    admin = wait_for_cluster(contract, timeout_s)
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result()
    stem = contract.names.group(GROUP_STEM)
    return sorted(g.group_id for g in listed.valid if g.group_id.startswith(stem))


def group_lag(contract: Contract, timeout_s: float = 10.0) -> list[PartitionLag]:
    """The lag of every partition the deployment's groups have committed offsets on.

    Blocking (admin and consumer calls); run it off the event loop. The age of the oldest
    unconsumed message costs one fetch per lagging partition (at most 5 s each).

    Raises:
        KafkaException: the cluster did not answer a request (the CLI reports it).
    """
    groups = deployment_groups(contract, timeout_s)
    if not groups:
        return []
    admin = wait_for_cluster(contract, timeout_s)
    committed: list[tuple[str, TopicPartition]] = []
    for group in groups:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)
        result = futures[group].result()
        committed.extend((group, tp) for tp in result.topic_partitions if tp.offset >= 0)
    config = consumer_config(
        contract,
        group_id=f"tierflow-lag-{uuid.uuid4().hex[:8]}",
        client_id="tierflow-lag",
    )
    reader = Consumer(config)
    try:
        rows = []
        for group, tp in committed:
            _, end = watermarks(reader, TopicPartition(tp.topic, tp.partition), timeout_s)
            lag = max(0, end - tp.offset)
            age = _age_s(reader, tp, timeout_s) if lag else None
            rows.append(PartitionLag(group, tp.topic, tp.partition, tp.offset, end, lag, age))
        return rows
    finally:
        reader.close()


def _age_s(reader: Consumer, tp: TopicPartition, timeout_s: float) -> float | None:
    """Seconds since the message at ``tp.offset`` was written; None if it cannot be read."""
    reader.assign([TopicPartition(tp.topic, tp.partition, tp.offset)])
    message = reader.poll(min(timeout_s, 5.0))
    if message is None or message.error() is not None:
        return None
    if (message.topic(), message.partition()) != (tp.topic, tp.partition):
        return None  # assign() replaced the last partition's: nothing else can arrive
    kind, stamp_ms = message.timestamp()
    if kind == 0 or stamp_ms <= 0:  # TIMESTAMP_NOT_AVAILABLE
        return None
    return max(0.0, time.time() - stamp_ms / 1000)
