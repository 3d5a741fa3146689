"""Idempotent topic creation and description against a real cluster (confluent-kafka admin).

``ensure_topics`` brings the cluster to the catalogue: it creates missing topics, raises
partition counts that are too low and sets topic configs that differ. It never deletes,
never lowers a partition count and never changes a replication factor; those differences
are reported as conflicts for a human to resolve.
"""

from __future__ import annotations

import enum
import logging
import socket
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from tierflow.topics.catalogue import Catalogue, TopicSpec
from tierflow.topics.clients import admin_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import BrokerUnreachableError, TopicAdminError

log = logging.getLogger(__name__)

REFUSALS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
"""librdkafka errors that waiting longer cannot cure: bad credentials, a TLS mismatch."""


class Action(enum.StrEnum):
    """What ``ensure_topics`` did to a topic."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class TopicChange:
    """The outcome of ``ensure_topics`` for one topic."""

    name: str
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it, next to what the catalogue wants.

    Attributes:
        spec: the catalogue entry.
        exists: whether the cluster has the topic.
        partitions: partitions on the cluster (0 when missing).
        replication_factor: replicas of partition 0 on the cluster (0 when missing).
        config: the cluster's values of the keys the spec sets.
    """

    spec: TopicSpec
    exists: bool
    partitions: int
    replication_factor: int
    config: dict[str, str]

    @property
    def differences(self) -> list[str]:
        """Human-readable differences from the spec; empty when the topic matches."""
        if not self.exists:
            return ["missing"]
        diffs: list[str] = []
        if self.partitions != self.spec.partitions:
            diffs.append(f"partitions {self.partitions} (want {self.spec.partitions})")
        if self.replication_factor != self.spec.replication_factor:
            diffs.append(
                f"replication {self.replication_factor} (want {self.spec.replication_factor})"
            )
        for key, want in self.spec.config.items():
            have = self.config.get(key)
            if have != want:
                diffs.append(f"{key}={have} (want {want})")
        return diffs


def _split(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def port_open(bootstrap: str) -> bool:
    """True when any server of a ``host:port[,host:port]`` list accepts a TCP connection."""
    for host, port in _split(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            continue
    return False


def wait_for_cluster(contract: Contract, timeout_s: float = 30.0) -> AdminClient:
    """Block until a broker of ``contract.bootstrap`` answers a metadata request.

    A broker counts only once the metadata lists it (in KRaft a broker that accepts
    connections may still be fenced and refuse to host partitions).

    Args:
        contract: where the cluster is.
        timeout_s: seconds before giving up.

    Returns:
        An admin client connected to that cluster.

    Raises:
        BrokerUnreachableError: no broker answered within ``timeout_s``, or the cluster
            refused this client's credentials or TLS handshake (at once, with the reason).
    """
    deadline = time.monotonic() + timeout_s
    # Probe the TCP port first: librdkafka logs every refused connection to stderr.
    while not port_open(contract.bootstrap):
        if time.monotonic() >= deadline:
            msg = f"no Kafka broker listens at {contract.bootstrap} (waited {timeout_s:.0f} s)"
            raise BrokerUnreachableError(msg)
        time.sleep(0.2)
    refused: list[KafkaError] = []

    def on_error(error: KafkaError) -> None:
        if error.code() in REFUSALS:
            refused.append(error)

    # librdkafka's retries go to our logger (debug), not to the terminal line by line.
    config = {**admin_config(contract), "error_cb": on_error, "logger": log}
    admin = AdminClient(config)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        admin.poll(0)  # serves error_cb and the logger
        if refused:
            raise BrokerUnreachableError(_refusal(contract, refused[0]))
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            last_error = exc
            continue
        if metadata.brokers:
            return admin
        time.sleep(0.2)
    msg = f"the broker at {contract.bootstrap} did not answer metadata requests: {last_error}"
    raise BrokerUnreachableError(msg)


def _refusal(contract: Contract, error: KafkaError) -> str:
    """One line saying who was refused and how to fix it."""
    security = contract.security
    who = f"user {security.username!r} ({security.sasl_mechanism})" if security.uses_sasl else ""
    what = "refused the credentials of " + who if who else "refused the TLS handshake"
    return (
        f"the cluster at {contract.bootstrap} {what}: {error.str()}; check the [kafka] "
        "settings (TIERFLOW_KAFKA__USERNAME, TIERFLOW_KAFKA__PASSWORD, TIERFLOW_KAFKA__CA_FILE)"
    )


def _result(future: Any, what: str) -> Any:
    try:
        return future.result()
    except KafkaException as exc:
        msg = f"{what}: {exc.args[0] if exc.args else exc}"
        raise TopicAdminError(msg) from exc


def describe_topics(
    admin: AdminClient, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[TopicState]:
    """The cluster's view of every topic in ``specs``, in the same order."""
    specs = list(specs)
    metadata = admin.list_topics(timeout=timeout_s)
    existing = [s for s in specs if s.name in metadata.topics]
    configs: dict[str, dict[str, str]] = {}
    if existing:
        resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in existing]
        for resource, future in admin.describe_configs(
            resources, request_timeout=timeout_s
        ).items():
            entries = _result(future, f"describing configs of {resource.name}")
            configs[resource.name] = {k: str(v.value) for k, v in entries.items()}
    states = []
    for spec in specs:
        topic = metadata.topics.get(spec.name)
        if topic is None:
            states.append(TopicState(spec, False, 0, 0, {}))
            continue
        partitions = topic.partitions
        replicas = len(partitions[0].replicas) if 0 in partitions else 0
        have = configs.get(spec.name, {})
        states.append(
            TopicState(
                spec, True, len(partitions), replicas, {k: have.get(k, "") for k in spec.config}
            )
        )
    return states


def ensure_topics(
    admin: AdminClient, catalogue: Catalogue, timeout_s: float = 30.0
) -> list[TopicChange]:
    """Make the cluster match ``catalogue``; safe to run any number of times.

    Raises:
        TopicAdminError: the cluster refused a creation or change (the message says which).
    """
    states = describe_topics(admin, catalogue, timeout_s)
    missing = [s.spec for s in states if not s.exists]
    changes: dict[str, TopicChange] = {}
    if missing:
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
            for s in missing
        ]
        for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                future.result()
            except KafkaException as exc:
                # Another process created it between our describe and create: fine.
                if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    changes[name] = TopicChange(name, Action.UNCHANGED, "created concurrently")
                    continue
                msg = f"creating topic {name}: {exc.args[0] if exc.args else exc}"
                raise TopicAdminError(msg) from exc
            changes[name] = TopicChange(name, Action.CREATED)
    for state in states:
        if state.exists:
            changes[state.spec.name] = _reconcile(admin, state, timeout_s)
    wait_for_leaders(admin, catalogue.names, timeout_s)
    return [changes[spec.name] for spec in catalogue]


METADATA_SETTLE_S = 3.0
"""Seconds a topic may stay unknown to the broker asked before it counts as missing: in
KRaft each broker applies the metadata log on its own, so one created a moment ago through
another broker may not be listed yet."""


def known_partitions(
    client: AdminClient | Consumer, topic: str, timeout_s: float = 10.0
) -> list[int] | None:
    """``topic``'s partition ids once a broker lists it; None if none does within the settle time.

    Raises:
        KafkaException: no broker answered the metadata request within ``timeout_s``.
    """
    deadline = time.monotonic() + METADATA_SETTLE_S
    while True:
        found = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Block until every partition of ``names`` has a leader (a new topic is usable then).

    Raises:
        TopicAdminError: some partition still has no leader after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        waiting = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or not topics[name].partitions
            or any(p.leader < 0 or p.error is not None for p in topics[name].partitions.values())
        ]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            msg = f"topics without a partition leader after {timeout_s:.0f} s: {waiting}"
            raise TopicAdminError(msg)
        time.sleep(0.1)


def _reconcile(admin: AdminClient, state: TopicState, timeout_s: float) -> TopicChange:
    spec = state.spec
    done: list[str] = []
    conflicts: list[str] = []
    if state.partitions < spec.partitions:
        futures = admin.create_partitions(
            [NewPartitions(spec.name, spec.partitions)], request_timeout=timeout_s
        )
        _result(futures[spec.name], f"adding partitions to {spec.name}")
        done.append(f"partitions {state.partitions}->{spec.partitions}")
    elif state.partitions > spec.partitions:
        conflicts.append(f"has {state.partitions} partitions, catalogue wants {spec.partitions}")
    if state.replication_factor != spec.replication_factor:
        conflicts.append(
            f"replication factor {state.replication_factor}, catalogue wants "
            f"{spec.replication_factor}"
        )
    stale = {k: v for k, v in spec.config.items() if state.config.get(k) != v}
    if stale:
        resource = ConfigResource(
            ResourceType.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in stale.items()
            ],
        )
        altered = admin.incremental_alter_configs([resource], request_timeout=timeout_s)
        for future in altered.values():
            _result(future, f"altering configs of {spec.name}")
        done.append(", ".join(f"{k}={v}" for k, v in stale.items()))
    if conflicts:
        return TopicChange(spec.name, Action.CONFLICT, "; ".join(conflicts + done))
    if done:
        return TopicChange(spec.name, Action.UPDATED, "; ".join(done))
    return TopicChange(spec.name, Action.UNCHANGED)


def create_catalogue(contract: Contract, timeout_s: float = 30.0) -> list[TopicChange]:
    """Connect to the cluster of ``contract`` and ensure its whole catalogue."""
    admin = wait_for_cluster(contract, timeout_s)
    return ensure_topics(admin, contract.catalogue, timeout_s)


def delete_catalogue(contract: Contract, timeout_s: float = 30.0) -> list[str]:
    """Delete the catalogue's topics of ``contract``'s prefix (an experiment's, once read).

    Refuses the unprefixed catalogue: deleting the deployment's own topics is never a
    clean-up. Returns the topics deleted (those that existed).

    Raises:
        TopicAdminError: no prefix, or the broker refused a deletion.
    """
    if not contract.names.prefix:
        msg = "refusing to delete the topics of the unprefixed catalogue"
        raise TopicAdminError(msg)
    admin = wait_for_cluster(contract, timeout_s)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    return delete_topics(admin, [s.name for s in contract.catalogue if s.name in existing])


def prefixed_topics(contract: Contract, prefix: str, timeout_s: float = 30.0) -> list[str]:
    """The topics on the cluster named ``<prefix>.<anything>``, sorted.

    Raises:
        TopicAdminError: ``prefix`` is empty (that would be every topic).
    """
    if not prefix.strip(". "):
        msg = "a prefix is needed: an empty one would name every topic of the cluster"
        raise TopicAdminError(msg)
    admin = wait_for_cluster(contract, timeout_s)
    head = prefix.rstrip(".") + "."
    return sorted(t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(head))


def delete_topics(admin: AdminClient, names: list[str], timeout_s: float = 30.0) -> list[str]:
    """Delete ``names`` and wait for the broker to confirm each; returns them sorted.

    Raises:
        TopicAdminError: the broker refused a deletion.
    """
    names = sorted(names)
    if not names:
        return []
    futures = admin.delete_topics(names, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        _result(future, f"delete {name}")
    return names


def delete_prefixed(
    contract: Contract,
    prefix: str,
    only: Collection[str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Delete every topic under ``prefix`` (``prefixed_topics``) and wait until they are gone.

    Catalogue topics, faust's changelogs and anything else named ``<prefix>.*`` go.

    Args:
        contract: the cluster.
        prefix: the deployment's prefix, with or without its trailing dot.
        only: delete no topic outside these names: those the user was shown and confirmed,
            so a topic created since the listing is not deleted unseen.
        timeout_s: seconds for the deletions and for the topics to leave the metadata.

    Returns:
        The topics deleted, sorted.

    Raises:
        TopicAdminError: the prefix is empty, the cluster refused a deletion, or a topic is
            still listed after ``timeout_s``.
    """
    names = prefixed_topics(contract, prefix, timeout_s)
    if only is not None:
        names = [n for n in names if n in only]
    if not names:
        return []
    admin = wait_for_cluster(contract, timeout_s)
    deleted = delete_topics(admin, names, timeout_s)
    # Deletion completes asynchronously on the brokers: wait, so that "deleted" means a
    # topic of the same name can be created again at once, not "marked for deletion".
    deadline = time.monotonic() + timeout_s
    while remaining := set(deleted) & set(admin.list_topics(timeout=timeout_s).topics):
        if time.monotonic() >= deadline:
            msg = f"topics still listed {timeout_s:.0f} s after deletion: {sorted(remaining)}"
            raise TopicAdminError(msg)
        time.sleep(0.1)
    return deleted
