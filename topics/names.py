"""Topic names, the contract of DESIGN.md's data-plane table, with an optional prefix.

Nothing outside this module formats a topic name: every producer, agent and test asks a
:class:`TopicNames` built from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    """Names of every tierflow topic under one prefix.

    Args:
        prefix: '' for the bare names of the design table, else prepended with a dot.
    """

    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}.{base}" if self.prefix else base

    def group(self, name: str) -> str:
        """A consumer group (or faust app) id under the prefix.

        Deployments sharing a cluster share no group, and one prefixed ACL covers them all.
        """
        return self._name(name)

    def raw(self, quality: int) -> str:
        """Frames as cameras publish them at ``quality`` (pixels of the square side)."""
        return self._name(f"frames.raw.{quality}")

    def ready(self, quality: int) -> str:
        """Frames resized for the detector that serves ``quality``."""
        return self._name(f"frames.ready.{quality}")

    def detections(self, quality: int) -> str:
        """Detections of the detector that serves ``quality``, with the frame."""
        return self._name(f"detections.{quality}")

    @property
    def detections_json(self) -> str:
        """Detections alone, one JSON record per analysed frame, boxes in source pixels."""
        return self._name("detections.json")

    @property
    def annotated(self) -> str:
        """Frames with boxes drawn."""
        return self._name("frames.annotated")

    @property
    def metrics_frames(self) -> str:
        """One record per frame: stage times, latency, outcome, accuracy."""
        return self._name("metrics.frames")

    @property
    def assignments(self) -> str:
        """Compacted: source id -> quality, pipeline, epoch."""
        return self._name("control.assignments")

    @property
    def registry(self) -> str:
        """Compacted: service id -> what it consumes, heartbeat."""
        return self._name("control.registry")

    @property
    def nodes(self) -> str:
        """Compacted: node id -> tier, resources, heartbeat."""
        return self._name("control.nodes")

    @property
    def placement(self) -> str:
        """Compacted: service id -> node, share, instances, epoch."""
        return self._name("control.placement")

    @property
    def deadletter(self) -> str:
        """Records no stage could process, with the reason in headers."""
        return self._name("deadletter")

    def quality_of(self, topic: str) -> int | None:
        """The quality encoded in a per-quality topic name, or None for other topics."""
        base = topic[len(self.prefix) + 1 :] if self.prefix else topic
        if self.prefix and not topic.startswith(self.prefix + "."):
            return None
        head, _, tail = base.rpartition(".")
        if head in ("frames.raw", "frames.ready", "detections") and tail.isdigit():
            return int(tail)
        return None
