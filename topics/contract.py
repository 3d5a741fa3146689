"""The topic contract of one process, built once from the settings and handed down.

A :class:`Contract` holds what every Kafka-facing piece must agree on: where the cluster
is, the topic names under the prefix, the qualities that have frame topics, the message
limits, the catalogue (names with their configs) and the frame codec. A process builds it
once (:meth:`Contract.of`) at its entry point (a service, the camera host, a CLI command)
and passes it to whatever needs topics; nothing else derives names, limits or configs
from raw settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierflow.settings import Settings
from tierflow.topics.catalogue import Catalogue
from tierflow.topics.envelope import FrameCodec
from tierflow.topics.limits import MessageLimits
from tierflow.topics.names import TopicNames
from tierflow.topics.security import KafkaSettings


@dataclass(frozen=True)
class Contract:
    """Everything Kafka-facing code needs to agree on, for one settings object.

    Attributes:
        bootstrap: ``host:port[,host:port]`` of the cluster every client connects to.
        names: topic names under the configured prefix.
        qualities: qualities (pixels of the side) that have frame topics, ascending.
        limits: message-size limits of broker, topics, producers and consumers.
        catalogue: every topic with its partitions, replication and configs.
        codec: the frame encoding and its size limit.
        security: how clients authenticate to the cluster (TLS, SASL).
    """

    bootstrap: str
    names: TopicNames
    qualities: tuple[int, ...]
    limits: MessageLimits
    catalogue: Catalogue
    codec: FrameCodec
    security: KafkaSettings

    @classmethod
    def of(cls, settings: Settings) -> Contract:
        """The contract of ``settings`` (call once per process and pass it on)."""
        names = TopicNames(settings.topics.prefix)
        limits = MessageLimits.for_frames(settings.frames.max_message_bytes)
        return cls(
            bootstrap=settings.bootstrap,
            names=names,
            qualities=settings.topics.qualities,
            limits=limits,
            catalogue=Catalogue.build(settings.topics, names, limits, settings.broker.brokers),
            codec=FrameCodec.of(settings.frames, limits),
            security=settings.kafka,
        )
