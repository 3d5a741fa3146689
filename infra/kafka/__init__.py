"""The local Apache Kafka broker or cluster (KRaft) resolved from Maven Central."""

from tierflow.infra.kafka.broker import LocalBroker
from tierflow.infra.kafka.cluster import BrokerStatus, LocalCluster
from tierflow.infra.kafka.install import BrokerInstall, kafka_version

__all__ = ["BrokerInstall", "BrokerStatus", "LocalBroker", "LocalCluster", "kafka_version"]
