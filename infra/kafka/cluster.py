"""N local KRaft nodes (each a combined broker+controller) forming one cluster.

Every node listens on its own port and controller port, keeps its files in a home of its
own, and all are formatted with one cluster id and list each other in
``controller.quorum.voters``. One node is today's single local broker (same directory,
same properties); with three, internal topics are replicated three times with
``min.insync.replicas=2``, so one node may die (``kill``) and the cluster keeps accepting
``acks=all`` writes. Ports: node ``i`` (0-based) listens on ``broker.port + 2 i`` and
``broker.controller_port + 2 i`` unless explicit ports are given.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tierflow.infra.errors import InfraError
from tierflow.infra.kafka.install import BrokerInstall
from tierflow.infra.kafka.node import KafkaNode, NodeAddress, new_cluster_id
from tierflow.infra.kafka.security import LISTENER, BrokerSecurity
from tierflow.settings import Settings
from tierflow.topics.admin import port_open
from tierflow.topics.catalogue import min_insync_replicas, replication_for
from tierflow.topics.clients import admin_config
from tierflow.topics.contract import Contract

log = logging.getLogger(__name__)

QUORUMLESS_GRACE_S = 3.0
"""Seconds a stopping node without a controller majority gets before SIGKILL."""


@dataclass(frozen=True)
class BrokerStatus:
    """What ``tierflow kafka status`` reports for one node."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    state_dir: Path
    answering: bool


class LocalCluster:
    """``brokers`` local KRaft nodes; node ``index`` (0-based) has ``node.id`` index + 1.

    Args:
        settings: tierflow settings; ``settings.broker`` gives host, ports, heap, dirs.
        brokers: node count; ``settings.broker.brokers`` by default.
        ports: explicit ``(port, controller_port)`` per node (tests on free ports).
        security: SASL_SSL listeners and ACLs (:mod:`tierflow.infra.kafka.security`); None
            for PLAINTEXT. Its clients (``answers``, ``leaders``) authenticate with
            ``settings.kafka``, which must then be an administrator's.
        listeners: more PLAINTEXT listeners of a one-node cluster, name -> (port on
            ``broker.host``, advertised ``host:port``): an emulated host's, behind the
            proxy on its link (:mod:`tierflow.infra.tiers`).
    """

    def __init__(
        self,
        settings: Settings,
        brokers: int | None = None,
        ports: Sequence[tuple[int, int]] | None = None,
        security: BrokerSecurity | None = None,
        listeners: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.security = security
        self.conf = settings.broker
        count = brokers if brokers is not None else self.conf.brokers
        if ports is None:
            ports = [
                (self.conf.port + 2 * i, self.conf.controller_port + 2 * i) for i in range(count)
            ]
        flat = [p for pair in ports for p in pair]
        if count < 1 or len(ports) != count or len(set(flat)) != len(flat):
            msg = f"a local cluster needs {count} >= 1 nodes with distinct ports, got {list(ports)}"
            raise InfraError(msg)
        self.listeners = dict(listeners or {})
        if self.listeners and (count != 1 or security is not None):
            msg = "extra listeners are for one PLAINTEXT node (an emulated continuum's broker)"
            raise InfraError(msg)
        self.install = BrokerInstall.from_settings(self.conf)
        first = ports[0][0]
        self.home = self.conf.state_dir / (str(first) if count == 1 else f"cluster-{first}")
        self.nodes = [
            KafkaNode(
                self.install,
                NodeAddress(i + 1, self.conf.host, port, controller),
                self.home if count == 1 else self.home / f"node-{i + 1}",
                self.conf.heap,
            )
            for i, (port, controller) in enumerate(ports)
        ]
        self.contract = replace(Contract.of(settings), bootstrap=self.bootstrap)

    @property
    def bootstrap(self) -> str:
        """``host:port,...`` of every node's client listener."""
        return ",".join(node.address.bootstrap for node in self.nodes)

    @property
    def replicas(self) -> int:
        """Replication factor of the internal topics: ``min(3, nodes)``."""
        return replication_for(len(self.nodes))

    def server_properties(self, index: int = 0) -> dict[str, str]:
        """Node ``index``'s configuration; size limits come from the contract's limits."""
        node = self.nodes[index]
        a = node.address
        rf = self.replicas
        isr = min_insync_replicas(rf)
        listener = "PLAINTEXT" if self.security is None else LISTENER
        props = {
            "process.roles": "broker,controller",
            "node.id": str(a.node_id),
            "controller.quorum.voters": ",".join(n.address.voter for n in self.nodes),
            "listeners": f"{listener}://{a.host}:{a.port},CONTROLLER://{a.host}:{a.controller_port}",
            "advertised.listeners": f"{listener}://{a.host}:{a.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.data_dir),
            # Topics come from the catalogue only; a typo must fail, not create a topic.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(isr or 1),
            "group.initial.rebalance.delay.ms": "0",
            # Lets workers ask for session timeouts of a few seconds (fast failover).
            "group.min.session.timeout.ms": "1000",
            "log.retention.check.interval.ms": "60000",
            "log.cleaner.backoff.ms": "5000",
            **self.contract.limits.broker_properties(),
        }
        if self.security is not None:
            props |= self.security.properties()
        for name, (port, advertised) in self.listeners.items():
            props["listeners"] += f",{name}://{a.host}:{port}"
            props["advertised.listeners"] += f",{name}://{advertised}"
            props["listener.security.protocol.map"] += f",{name}:PLAINTEXT"
        if len(self.nodes) > 1:
            props |= {
                "default.replication.factor": str(rf),
                # A dead node is fenced (its partitions get new leaders and leave the ISR)
                # after 3 s without a heartbeat instead of the default 9 s.
                "broker.heartbeat.interval.ms": "500",
                "broker.session.timeout.ms": "3000",
            }
            if isr is not None:
                props["min.insync.replicas"] = str(isr)
        return props

    def _cluster_id(self) -> str:
        path = self.home / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        cluster_id = new_cluster_id()
        self.home.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id + "\n")
        return cluster_id

    def pids(self) -> list[int | None]:
        """Each node's pid, None for a node that is not running."""
        return [node.pid() for node in self.nodes]

    def start(self, index: int | None = None, wait: bool = True) -> list[int]:
        """Start every node (or node ``index``) that is not running; return their pids.

        Args:
            index: 0-based node to start; None for all.
            wait: block until the started nodes answer metadata (``start_timeout_s``).

        Raises:
            InfraError: a port is taken by something else, or a node died on start (the
                tail of its log is in the message).
        """
        chosen = range(len(self.nodes)) if index is None else [index]
        starting = [i for i in chosen if self.nodes[i].pid() is None]
        if starting:
            for i in starting:
                self.nodes[i].check_ports_free()
            self.install.ensure()
            cluster_id = self._cluster_id()
            for i in starting:
                self.nodes[i].launch(self.server_properties(i), cluster_id)
        if wait:
            self.wait_ready(chosen)
        return [pid for i in chosen if (pid := self.nodes[i].pid()) is not None]

    def _admin(self, indices: Iterable[int]) -> AdminClient | None:
        bootstrap = ",".join(self.nodes[i].address.bootstrap for i in indices)
        if not bootstrap or not port_open(bootstrap):
            return None
        contract = replace(self.contract, bootstrap=bootstrap)
        # librdkafka's connection errors go to our logger, not the terminal.
        config: dict[str, Any] = {**admin_config(contract, "tierflow-cluster"), "logger": log}
        return AdminClient(config)

    def answers(self, index: int, timeout_s: float = 3.0) -> bool:
        """True when node ``index`` accepts connections and the metadata lists it.

        The listener opens only once the node has caught up with the metadata log, so an
        open port rules out the stale view the others keep of a killed node until it is
        fenced (``broker.session.timeout.ms``).
        """
        node = self.nodes[index]
        if node.pid() is None:
            return False
        admin = self._admin([index])
        if admin is None:
            return False
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return node.address.node_id in metadata.brokers

    def wait_ready(self, indices: Iterable[int] | None = None) -> None:
        """Block until nodes ``indices`` (all by default) are listed in the metadata.

        Raises:
            InfraError: a node died, or they were not all listed within ``start_timeout_s``.
        """
        wanted = list(range(len(self.nodes)) if indices is None else indices)
        deadline = time.monotonic() + self.conf.start_timeout_s
        while True:
            for i in wanted:
                if self.nodes[i].pid() is None:
                    msg = (
                        f"Kafka node {i + 1} exited during start-up; log tail:\n"
                        f"{self.nodes[i].log_tail()}"
                    )
                    raise InfraError(msg)
            missing = [i + 1 for i in wanted if not self.answers(i, timeout_s=2.0)]
            if not missing:
                return
            if time.monotonic() >= deadline:
                msg = (
                    f"Kafka nodes {missing} at {self.bootstrap} did not register within "
                    f"{self.conf.start_timeout_s:.0f} s; log tail:\n{self.log_tail()}"
                )
                raise InfraError(msg)
            time.sleep(0.2)

    def kill(self, index: int) -> bool:
        """SIGKILL node ``index`` (0-based): a crash, no controlled shutdown.

        Returns:
            True when it was running.
        """
        return self.nodes[index].kill()

    def stop(self) -> int:
        """Stop every node: SIGTERM to all at once, SIGKILL after ``stop_timeout_s``.

        A node left without a controller majority cannot finish its controlled shutdown
        (it waits for the quorum); it gets ``QUORUMLESS_GRACE_S`` seconds, then SIGKILL
        (a killed node recovers its logs on the next start).

        Returns:
            How many running nodes were stopped.
        """
        signalled = [(node, pid) for node in self.nodes if (pid := node.terminate()) is not None]
        for node in self.nodes:
            if node.pid() is None:
                node.pid_file.unlink(missing_ok=True)
        majority = len(self.nodes) // 2 + 1
        deadline = time.monotonic() + self.conf.stop_timeout_s
        quorumless_since: float | None = None
        while time.monotonic() < deadline:
            alive = [node for node, _ in signalled if node.pid() is not None]
            if not alive:
                break
            if len(self.nodes) > 1 and len(alive) < majority:
                quorumless_since = quorumless_since or time.monotonic()
                if time.monotonic() - quorumless_since >= QUORUMLESS_GRACE_S:
                    break
            time.sleep(0.1)
        for node, pid in signalled:
            node.finish_stop(pid, 0.0 if node.pid() is None else 0.1)
        return len(signalled)

    def status(self) -> list[BrokerStatus]:
        """Whether each node runs and is listed in the cluster's metadata."""
        return [
            BrokerStatus(
                running=pid is not None,
                pid=pid,
                bootstrap=node.address.bootstrap,
                version=self.install.version,
                state_dir=node.home,
                answering=pid is not None and self.answers(i),
            )
            for i, (node, pid) in enumerate(zip(self.nodes, self.pids(), strict=True))
        ]

    def leaders(self, topics: Iterable[str]) -> Counter[int]:
        """Partitions of ``topics`` each ``node.id`` leads now (-1: no leader)."""
        admin = self._admin(i for i, pid in enumerate(self.pids()) if pid is not None)
        if admin is None:
            return Counter()
        metadata = admin.list_topics(timeout=10.0)
        counts: Counter[int] = Counter()
        for name in topics:
            topic = metadata.topics.get(name)
            if topic is not None:
                counts.update(p.leader for p in topic.partitions.values())
        return counts

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of every node's log and console output."""
        return "\n".join(node.log_tail(lines) for node in self.nodes)
