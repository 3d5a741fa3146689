"""The topic catalogue: every topic of DESIGN.md's data-plane table with its configuration.

Frame topics are deleted by time and size (frames are perishable), ``control.*`` topics are
compacted (the latest value per key is the state), and every topic that carries frames
accepts messages of ``MessageLimits.batch_bytes``.

Replication follows the cluster: ``min(3, brokers)`` replicas unless the settings say
otherwise, and with three or more ``min.insync.replicas=2``, so an ``acks=all`` write
survives one dead broker and is refused (not silently under-replicated) when two are gone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tierflow.errors import ConfigError
from tierflow.settings import TopicSettings
from tierflow.topics.limits import MessageLimits
from tierflow.topics.names import TopicNames


class TopicKind(enum.StrEnum):
    """Families of topics that share a configuration."""

    FRAMES = "frames"
    METRICS = "metrics"
    CONTROL = "control"
    DEADLETTER = "deadletter"


@dataclass(frozen=True)
class TopicSpec:
    """What a topic must look like on the cluster.

    Attributes:
        name: full name, prefix included.
        kind: the family, which fixes the configuration.
        partitions: partition count (upper bound on consumer parallelism).
        replication_factor: replicas per partition.
        config: topic-level overrides of broker defaults.
        purpose: one line for ``tierflow topics describe``.
    """

    name: str
    kind: TopicKind
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)
    purpose: str = ""


MAX_DEFAULT_REPLICAS = 3


def replication_for(brokers: int) -> int:
    """The default replication factor on ``brokers`` brokers: ``min(3, brokers)``."""
    return max(1, min(MAX_DEFAULT_REPLICAS, brokers))


def min_insync_replicas(replication_factor: int) -> int | None:
    """The default ``min.insync.replicas``: 2 at 3+ replicas, else None (the broker's, 1).

    With 2 replicas a minimum of 2 would refuse every write while either broker is down.
    """
    return 2 if replication_factor >= MAX_DEFAULT_REPLICAS else None


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


@dataclass(frozen=True)
class Catalogue:
    """Every topic tierflow uses, built from the settings."""

    specs: tuple[TopicSpec, ...]

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, name: str) -> TopicSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        msg = f"{name!r} is not in the topic catalogue"
        raise KeyError(msg)

    @property
    def replication_factor(self) -> int:
        """Replicas per partition of the catalogue's topics (the largest, should they differ)."""
        return max((spec.replication_factor for spec in self.specs), default=1)

    @property
    def names(self) -> list[str]:
        """Topic names in catalogue order."""
        return [spec.name for spec in self.specs]

    @classmethod
    def build(
        cls, t: TopicSettings, names: TopicNames, limits: MessageLimits, brokers: int = 1
    ) -> Catalogue:
        """The catalogue for the topic settings ``t``, named by ``names``, sized by ``limits``.

        Args:
            t: topic settings; an unset ``replication_factor`` or ``min_insync_replicas``
                takes the default for ``brokers``.
            names: topic names under the prefix.
            limits: message-size limits.
            brokers: brokers of the cluster (``broker.brokers``).

        Raises:
            ConfigError: ``min_insync_replicas`` exceeds the replication factor (every
                ``acks=all`` write would be refused).
        """
        rf = t.replication_factor or replication_for(brokers)
        isr = t.min_insync_replicas or min_insync_replicas(rf)
        if isr is not None and isr > rf:
            msg = (
                f"topics.min_insync_replicas={isr} exceeds the replication factor {rf}: "
                "every acks=all write would be refused"
            )
            raise ConfigError(msg)
        durability = {} if isr is None else {"min.insync.replicas": str(isr)}
        frames = {
            "cleanup.policy": "delete",
            "retention.ms": _ms(t.frame_retention_s),
            "retention.bytes": str(t.frame_retention_bytes),
            **limits.topic_config(),
            **durability,
        }
        control = {
            "cleanup.policy": "compact",
            # Compact soon after a value changes so a restarted camera reads few stale epochs.
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": _ms(600),
            **durability,
        }
        specs: list[TopicSpec] = []

        def frame_topic(name: str, purpose: str) -> None:
            specs.append(TopicSpec(name, TopicKind.FRAMES, t.frame_partitions, rf, frames, purpose))

        for q in t.qualities:
            frame_topic(names.raw(q), f"frames published by cameras at quality {q}")
        for q in t.qualities:
            frame_topic(names.ready(q), f"frames resized for the detector of quality {q}")
        for q in t.qualities:
            frame_topic(names.detections(q), f"detections of quality {q} with their frame")
        frame_topic(names.annotated, "frames with boxes and labels drawn")
        records = {"cleanup.policy": "delete", "retention.ms": _ms(t.metrics_retention_s)}
        specs.append(
            TopicSpec(
                names.detections_json,
                TopicKind.METRICS,
                t.frame_partitions,
                rf,
                {**records, **durability},
                "detections alone: one JSON record per analysed frame, boxes in source pixels",
            )
        )
        specs.append(
            TopicSpec(
                names.metrics_frames,
                TopicKind.METRICS,
                t.metrics_partitions,
                rf,
                {**records, **durability},
                "one record per frame: stage times, latency, outcome, accuracy",
            )
        )
        for name, purpose in (
            (names.assignments, "source -> quality, pipeline, epoch"),
            (names.registry, "service -> what it consumes, heartbeat (discovery)"),
            (names.nodes, "node -> tier, resources, heartbeat"),
            (names.placement, "service -> node, share, instances, epoch"),
        ):
            specs.append(
                TopicSpec(name, TopicKind.CONTROL, t.control_partitions, rf, control, purpose)
            )
        specs.append(
            TopicSpec(
                names.deadletter,
                TopicKind.DEADLETTER,
                t.deadletter_partitions,
                rf,
                {
                    "cleanup.policy": "delete",
                    "retention.ms": _ms(t.deadletter_retention_s),
                    **limits.topic_config(),
                    **durability,
                },
                "records no stage could process; headers say topic, offset, stage, reason",
            )
        )
        return cls(tuple(specs))
