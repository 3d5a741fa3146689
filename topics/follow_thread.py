"""Following a topic outside any consumer group in a thread (confluent-kafka only).

The same shape as :class:`tierflow.topics.follow.Follower` for processes that must stay
light (a camera on an edge device imports neither aiokafka nor faust): every partition is
assigned explicitly and offsets are never committed, so every follower sees every record.
"""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from tierflow.topics.admin import known_partitions
from tierflow.topics.clients import consumer_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import BrokerUnreachableError, TopicAdminError
from tierflow.topics.tables import RecordHandler

log = logging.getLogger(__name__)


class ThreadFollower:
    """Hands every record of ``topic``, from its beginning, to ``handle`` in a daemon thread.

    Args:
        contract: the cluster and its limits.
        topic: the topic to follow (every partition).
        handle: called for each record from the follower's thread; must be thread-safe.
        client_id: the client's name in broker logs.

    Raises:
        BrokerUnreachableError: no broker answered within 10 s.
        TopicAdminError: the topic does not exist.
    """

    def __init__(
        self, contract: Contract, topic: str, handle: RecordHandler, *, client_id: str
    ) -> None:
        self.topic = topic
        self.handle = handle
        # A group id is required by librdkafka; it is unique and never commits, so no
        # group ever shares partitions with this follower.
        group = f"tierflow-follower-{uuid.uuid4().hex}"
        self._consumer = Consumer(consumer_config(contract, group_id=group, client_id=client_id))
        try:
            found = known_partitions(self._consumer, topic)
        except KafkaException as exc:
            self._consumer.close()
            msg = f"cannot follow {topic}: no broker answered at {contract.bootstrap}: {exc}"
            raise BrokerUnreachableError(msg) from exc
        if found is None:
            self._consumer.close()
            msg = f"topic {topic} does not exist; run 'tierflow topics create'"
            raise TopicAdminError(msg)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in found])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{topic}", daemon=True)

    def start(self) -> ThreadFollower:
        """Start following; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("following %s: %s", self.topic, error)
                continue
            try:
                self.handle(message.key(), message.value())
            except Exception:
                log.exception("following %s: the handler failed on a record", self.topic)

    def stop(self) -> None:
        """Stop following and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
