"""The watermark read retries while a partition's leader settles, and only then."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as Partition

from tierflow.topics.snapshot import watermarks


class _Answers:
    """A consumer whose watermark answers are scripted: errors first, then offsets."""

    def __init__(self, *answers: KafkaError | tuple[int, int]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def get_watermark_offsets(self, tp: Partition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, KafkaError):
            raise KafkaException(answer)
        return answer


def _read(consumer: _Answers, timeout_s: float = 5.0) -> tuple[int, int]:
    fake: Any = consumer
    return watermarks(fake, Partition("t", 0), timeout_s)


def test_a_moving_leader_is_waited_for() -> None:
    consumer = _Answers(
        KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
        KafkaError(KafkaError.LEADER_NOT_AVAILABLE),
        (3, 17),
    )
    assert _read(consumer) == (3, 17)
    assert consumer.asked == 3


def test_another_refusal_is_raised_at_once() -> None:
    consumer = _Answers(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), (0, 1))
    with pytest.raises(KafkaException):
        _read(consumer)
    assert consumer.asked == 1


def test_a_leader_that_never_settles_fails_at_the_deadline() -> None:
    consumer = _Answers(*[KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)] * 50)
    with pytest.raises(KafkaException):
        _read(consumer, timeout_s=0.5)
    assert 1 < consumer.asked < 50
