"""The local Apache Kafka broker (KRaft, combined broker+controller) on this machine, no Docker.

The broker's jars come from Maven Central through ``pom.xml`` beside this file (the pom pins
the version) and are cached outside the repository (:mod:`.install`). ``LocalBroker`` is
the local cluster of ``settings.broker.brokers`` nodes (one by default, :mod:`.cluster`)
seen from its first node: it formats the log directory once, starts ``kafka.Kafka``
detached (it outlives ``tierflow kafka up``), waits until the broker answers metadata
requests, and stops it with SIGTERM (controlled shutdown) before SIGKILL.
"""

from __future__ import annotations

from tierflow.infra.kafka.cluster import BrokerStatus, LocalCluster
from tierflow.infra.kafka.install import BrokerInstall, kafka_version
from tierflow.settings import Settings

__all__ = ["BrokerInstall", "BrokerStatus", "LocalBroker", "kafka_version"]


class LocalBroker:
    """The local broker(s) on ``settings.broker.host``; files of node 1 as attributes.

    With one node, files live in ``state_dir/<port>/`` so brokers on different ports (a
    test session's and a user's) never share a log directory; a cluster's nodes live in
    ``state_dir/cluster-<port>/node-<id>/``.
    """

    def __init__(self, settings: Settings) -> None:
        self.cluster = LocalCluster(settings)
        self.settings = settings
        self.contract = self.cluster.contract
        self.conf = settings.broker
        self.install = self.cluster.install
        first = self.cluster.nodes[0]
        self.home = first.home
        self.data_dir = first.data_dir
        self.properties = first.properties
        self.pid_file = first.pid_file
        self.log_file = first.log_file
        self.console_file = first.console_file

    @property
    def bootstrap(self) -> str:
        """``host:port[,host:port]`` of the PLAINTEXT listeners."""
        return self.cluster.bootstrap

    def server_properties(self) -> dict[str, str]:
        """Node 1's configuration; size limits come from the contract's limits."""
        return self.cluster.server_properties(0)

    def pid(self) -> int | None:
        """Node 1's pid when one we started is alive, else None."""
        return self.cluster.nodes[0].pid()

    def start(self, wait: bool = True) -> int:
        """Start the broker(s) unless running; return node 1's pid.

        Args:
            wait: block until every node answers metadata requests (``start_timeout_s``).

        Raises:
            InfraError: a port is taken by something else, or the broker died on start
                (the tail of its log is in the message).
        """
        return self.cluster.start(wait=wait)[0]

    def wait_ready(self) -> None:
        """Block until every node answers metadata; InfraError if one dies or times out."""
        self.cluster.wait_ready()

    def stop(self) -> bool:
        """Stop the broker(s): SIGTERM, then SIGKILL after ``stop_timeout_s``.

        Returns:
            True when a running broker was stopped, False when none was running.
        """
        return self.cluster.stop() > 0

    def status(self) -> BrokerStatus:
        """Whether node 1 runs and answers metadata requests."""
        return self.cluster.status()[0]

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the broker log and console output."""
        return self.cluster.log_tail(lines)
