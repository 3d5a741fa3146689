"""``control.assignments`` on the camera side: following it, and writing one assignment.

Epochs are the controller's wall clock in ms; one further ahead of this machine's clock
than ``camera.epoch_skew_s`` is ignored (:class:`AssignmentFollower`). Light like the
camera (confluent-kafka, no faust): edge devices import it.
"""

from __future__ import annotations

import time
from typing import Protocol

from confluent_kafka import Producer

from tierflow.settings import CameraSettings
from tierflow.topics.contract import Contract
from tierflow.topics.follow_thread import ThreadFollower
from tierflow.topics.records import Assignment
from tierflow.topics.tables import LatestTable


class Assignments(Protocol):
    """Where a camera looks up its current assignment."""

    def get(self, source: str) -> Assignment | None:
        """The newest assignment for ``source``, if any."""
        ...


def now_ms() -> int:
    """This machine's wall clock in ms: the unit of assignment epochs."""
    return time.time_ns() // 1_000_000


class AssignmentFollower:
    """``control.assignments`` followed from its beginning in a thread; the newest epoch wins.

    An epoch is the controller's wall clock in ms at its decision. One more than
    ``max_skew_s`` ahead of this machine's clock is ignored with one warning per source,
    as it arrives: a forged epoch (9e18) would otherwise outrank every real assignment
    for good. One follower serves every camera of a process.

    Args:
        contract: the cluster and the topic names.
        max_skew_s: how far ahead of this clock an epoch may be (``camera.epoch_skew_s``).
    """

    def __init__(
        self,
        contract: Contract,
        max_skew_s: float = CameraSettings.model_fields["epoch_skew_s"].default,
    ) -> None:
        skew_ms = round(max_skew_s * 1000)
        self.table = LatestTable(Assignment, lambda a: a.epoch, lambda: now_ms() + skew_ms)
        self._follower = ThreadFollower(
            contract, contract.names.assignments, self.table.handle, client_id="camera-follower"
        )

    def start(self) -> AssignmentFollower:
        """Start following; returns self."""
        self._follower.start()
        return self

    def get(self, source: str) -> Assignment | None:
        """The newest assignment for ``source`` seen so far."""
        return self.table.get(source)

    def stop(self) -> None:
        """Stop following and close the consumer."""
        self._follower.stop()


def publish_assignment(producer: Producer, contract: Contract, assignment: Assignment) -> None:
    """Write ``assignment`` to ``control.assignments`` and wait for the broker's ack."""
    topic = contract.names.assignments
    producer.produce(topic, key=assignment.source.encode(), value=assignment.to_bytes())
    producer.flush(10)
