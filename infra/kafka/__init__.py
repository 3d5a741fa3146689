"""The local Apache Kafka broker (KRaft) resolved from Maven Central."""

from infra.kafka.broker import BrokerInstall, BrokerStatus, LocalBroker, kafka_version

__all__ = ["BrokerInstall", "BrokerStatus", "LocalBroker", "kafka_version"]
