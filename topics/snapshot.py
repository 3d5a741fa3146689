"""Reading topics as they stand: every message from a starting point up to the end offsets.

An experiment's report reads a prefix's ``metrics.frames`` once its run is over; a recording
reads frame topics. Neither joins a consumer group: partitions are assigned directly, so
nothing is committed and no other reader is disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as Partition

from tierflow.errors import TierflowError
from tierflow.topics.clients import consumer_config
from tierflow.topics.contract import Contract


class SnapshotError(TierflowError):
    """A topic could not be read to its end in time."""


def partitions_of(consumer: Consumer, topics: Sequence[str], timeout_s: float) -> list[Partition]:
    """Every partition of ``topics`` (topics that do not exist are left out)."""
    metadata = consumer.list_topics(timeout=timeout_s)
    found: list[Partition] = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            continue
        found += [Partition(topic, p) for p in sorted(described.partitions)]
    return found


# A partition just created, or whose leader just moved, answers these until its metadata
# settles (seconds, under load): retry them rather than fail the read.
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def watermarks(consumer: Consumer, tp: Partition, timeout_s: float) -> tuple[int, int]:
    """The low and high watermark offsets of ``tp``, retrying while its leader settles.

    Args:
        consumer: any consumer of the cluster.
        tp: the partition.
        timeout_s: give up after this many seconds in all.

    Raises:
        KafkaException: the broker refused for another reason, or kept refusing past
            ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    pause_s = 0.1
    while True:
        left = max(0.5, deadline - time.monotonic())
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=left)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if code not in _SETTLING or time.monotonic() + pause_s > deadline:
                raise
            time.sleep(pause_s)  # blocking by contract: callers run off the event loop
            pause_s = min(1.0, pause_s * 2)
            continue
        return low, high


def read_to_end(
    contract: Contract,
    topics: Sequence[str],
    handle: Callable[[Message], None],
    *,
    timeout_s: float = 60.0,
    client_id: str = "tierflow-snapshot",
    until: Callable[[], bool] = lambda: False,
    last: int | None = None,
) -> int:
    """Hand every message of ``topics`` to ``handle``, first retained offset to the end at the call.

    Args:
        contract: the cluster and limits.
        topics: topic names; missing ones are skipped.
        handle: called once per message, in partition order.
        timeout_s: give up after this many seconds.
        client_id: the consumer's client id, for broker logs.
        until: checked after each message (and while waiting): True ends the read early.
        last: read only the last ``last`` messages of each partition (None: all retained).

    Returns:
        Messages handed over.

    Raises:
        SnapshotError: the end was not reached within ``timeout_s``.
    """
    config = consumer_config(contract, f"{client_id}-unused", client_id)
    consumer = Consumer(config)
    try:
        partitions = partitions_of(consumer, topics, timeout_s)
        ends: dict[tuple[str, int], int] = {}
        starts: list[Partition] = []
        for tp in partitions:
            low, high = watermarks(consumer, tp, timeout_s)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
                start = OFFSET_BEGINNING if last is None else max(low, high - last)
                starts.append(Partition(tp.topic, tp.partition, start))
        if not ends:
            return 0
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        count = 0
        while ends and not until():
            if time.monotonic() > deadline:
                msg = f"{sorted(ends)} not read to their end in {timeout_s:g} s"
                raise SnapshotError(msg)
            message = consumer.poll(0.5)
            if message is None:
                continue
            if (error := message.error()) is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            key = (message.topic() or "", message.partition() or 0)
            handle(message)
            count += 1
            if key in ends and (message.offset() or 0) + 1 >= ends[key]:
                del ends[key]
        return count
    finally:
        consumer.close()
