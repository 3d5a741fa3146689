"""Group descriptions run in a child process: its death costs one unknown answer, not us."""

from __future__ import annotations

import os
import signal
import threading
import uuid

import pytest
from confluent_kafka import Consumer

from tierflow.settings import Settings
from tierflow.topics.clients import admin_config, consumer_config
from tierflow.topics.contract import Contract
from tierflow.topics.group_probe import IsolatedGroupProbe

pytestmark = pytest.mark.kafka


def test_the_child_answers_like_the_admin_and_a_killed_child_is_replaced(
    kafka_topics: Settings,
) -> None:
    contract = Contract.of(kafka_topics)
    group = f"test-isolated-{uuid.uuid4().hex[:6]}"
    topic = contract.names.ready(320)
    consumer = Consumer(consumer_config(contract, group, "test-member"))
    probe = IsolatedGroupProbe(admin_config(contract, "test-isolated-probe"))
    try:
        consumer.subscribe([topic])
        answer: dict[str, set[str] | None] = {}
        while answer.get(group) != {topic}:  # the member is assigned within a few polls
            consumer.poll(0.2)
            answer = probe.consumed_topics([group, "test-no-such-group"], timeout_s=10)
        assert answer["test-no-such-group"] == set()
        child = probe._child
        assert child is not None and child.pid is not None
        os.kill(child.pid, signal.SIGABRT)  # what librdkafka's failed assertion does
        child.join(timeout=10)
        assert probe.consumed_topics([group], timeout_s=10) == {group: {topic}}
        assert probe.restarts == 1
    finally:
        consumer.close()
        probe.close()


def test_a_child_dying_during_a_call_answers_unknown() -> None:
    # Nothing listens on port 1: the describe call waits for its whole timeout.
    probe = IsolatedGroupProbe({"bootstrap.servers": "127.0.0.1:1", "socket.timeout.ms": "30000"})
    try:
        assert probe.consumed_topics([], timeout_s=1) == {}
        answers: list[dict[str, set[str] | None]] = []
        call = threading.Thread(
            target=lambda: answers.append(probe.consumed_topics(["g1", "g2"], timeout_s=30))
        )
        call.start()
        while probe._child is None or probe._child.pid is None:  # the call starts the child
            call.join(0.05)
        os.kill(probe._child.pid, signal.SIGKILL)
        call.join(timeout=30)
        assert answers == [{"g1": None, "g2": None}]
        assert probe.restarts == 1
    finally:
        probe.close()
