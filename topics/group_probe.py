"""Consumer-group descriptions from a child process, because librdkafka can abort on them.

librdkafka's DescribeConsumerGroups fails an assertion (``rd_kafka_enq_once_del_source_return:
eonce->refcnt > 0``, confluentinc/librdkafka#4605, open) when a describe request times out
and its late answer arrives: a coordinator killed or moving, as in the chaos soak and the
broker-kill tests. The assertion aborts the whole process, camera host or control agent
included, and keeping broker requests shorter than the call (the first mitigation) made it
rarer, not impossible. So the describe calls run in a spawned child process with its own
admin client (:class:`IsolatedGroupProbe`): when the child dies, the caller gets "unknown"
(None) for every group, which keeps what it knew, and the next call starts a new child.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

# The child imports this module alone: keep its imports to confluent-kafka and the stdlib.
log = logging.getLogger(__name__)

Answer = dict[str, set[str] | None]


def consumed_topics(
    admin: AdminClient, groups: Iterable[str], timeout_s: float = 5.0
) -> dict[str, set[str] | None]:
    """The topics assigned to the live members of each consumer group (blocking).

    A group the broker does not know, or one whose members have all left or timed out,
    maps to the empty set. A group in the middle of a rebalance with members maps to None:
    its assignment is being decided, and the caller should keep what it knew; so does a
    group the broker could not describe (its coordinator down or moving: in the chaos soak
    "no consumer" then deadlettered frames whose consumers were alive).
    """
    wanted = sorted(set(groups))
    if not wanted:
        return {}
    futures = admin.describe_consumer_groups(wanted, request_timeout=timeout_s)
    topics: dict[str, set[str] | None] = {}
    for group, future in futures.items():
        try:
            description = future.result()
        except KafkaException:
            topics[group] = None
            continue
        if description.members and description.state in REBALANCING:
            topics[group] = None
            continue
        topics[group] = {
            tp.topic
            for member in description.members
            if member.assignment is not None
            for tp in member.assignment.topic_partitions
        }
    return topics


REBALANCING = frozenset(
    {ConsumerGroupState.PREPARING_REBALANCING, ConsumerGroupState.COMPLETING_REBALANCING}
)


REPLY_GRACE_S = 5.0
"""Seconds a child may take beyond the call's own timeout before it is killed as hung."""


def _serve(conn: Connection, config: dict[str, Any]) -> None:
    """The child: answer ``(groups, timeout_s)`` requests until the parent closes the pipe."""
    admin = AdminClient(config)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone or closed the pipe
        groups, timeout_s = request
        try:
            conn.send(consumed_topics(admin, groups, timeout_s))
        except Exception as exc:
            conn.send(exc if _picklable(exc) else RuntimeError(repr(exc)))


def _picklable(exc: Exception) -> bool:
    import pickle

    try:
        pickle.dumps(exc)
    except Exception:
        return False
    return True


class IsolatedGroupProbe:
    """:func:`consumed_topics` run in a child process (blocking calls).

    Args:
        config: the admin client's configuration (librdkafka properties; picklable).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = dict(config)
        self._context = multiprocessing.get_context("spawn")  # no fork of librdkafka threads
        self._child: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.restarts = 0
        """Children that died or hung and were replaced."""
        self._closed = False

    def consumed_topics(self, groups: Iterable[str], timeout_s: float = 5.0) -> Answer:
        """The topics the live members of each group are assigned; None where unknown.

        Raises:
            Exception: what the child's describe call raised (a KafkaException), so that the
                caller's handling of a failed probe is the same as in process.
        """
        wanted = sorted(set(groups))
        if not wanted:
            return {}
        with self._lock:
            if self._closed:
                return dict.fromkeys(wanted)
            conn = self._connection()
            try:
                conn.send((wanted, timeout_s))
                if not conn.poll(timeout_s + REPLY_GRACE_S):
                    self._replace("did not answer in time")
                    return dict.fromkeys(wanted)
                answer = conn.recv()
            except (EOFError, OSError):
                self._replace("died")
                return dict.fromkeys(wanted)
        if isinstance(answer, Exception):
            raise answer
        result: Answer = answer
        return result

    def _connection(self) -> Connection:
        if self._conn is None or self._child is None or not self._child.is_alive():
            if self._child is not None:
                self._replace("died")
            parent, child = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(child, self._config), name="group-probe", daemon=True
            )
            process.start()
            child.close()
            self._child, self._conn = process, parent
        return self._conn

    def _replace(self, why: str) -> None:
        """Drop the current child (killing it if still there); the next call starts one."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        if conn is not None:
            conn.close()
        if child is None:
            return
        if child.is_alive():
            child.kill()
        child.join(timeout=5)
        if self._closed:
            return  # stopped on purpose
        self.restarts += 1
        log.warning(
            "consumer-group probe child %s (exit code %s): groups unknown this time, restarting",
            why,
            child.exitcode,
        )

    def close(self) -> None:
        """Stop the child; a call in flight answers "unknown", later calls do too."""
        self._closed = True
        child = self._child
        if child is not None and child.is_alive():
            child.terminate()  # a call waiting on it gets EOF at once, not after its timeout
        with self._lock:
            child, conn = self._child, self._conn
            self._child = self._conn = None
            if conn is not None:
                conn.close()
            if child is not None:
                child.join(timeout=5)
