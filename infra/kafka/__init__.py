"""The local Apache Kafka broker (KRaft) resolved from Maven Central."""

from tierflow.infra.kafka.broker import BrokerInstall, BrokerStatus, LocalBroker, kafka_version

__all__ = ["BrokerInstall", "BrokerStatus", "LocalBroker", "kafka_version"]
