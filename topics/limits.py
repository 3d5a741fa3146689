"""Message-size limits of broker, topics, producers and consumers, derived from one number.

A frame that fits the producer but not the consumer's fetch size is skipped by aiokafka
(RecordTooLargeError), which would be silent loss; so every limit below is computed here
from ``FrameSettings.max_message_bytes`` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

# A record batch of one record carries ~70 bytes of batch header and varints beyond the
# key, value and headers; the margin keeps a frame of exactly max_message_bytes sendable.
BATCH_OVERHEAD_BYTES = 16 * 1024
# librdkafka requires receive.message.max.bytes >= fetch.max.bytes + 512.
_LIBRDKAFKA_RECEIVE_MARGIN = 512


@dataclass(frozen=True)
class MessageLimits:
    """Byte limits that must agree across the whole path of a frame.

    Attributes:
        frame_bytes: largest frame message (value plus headers) the envelope accepts.
        batch_bytes: broker ``message.max.bytes``, topic ``max.message.bytes``, producer
            request size and consumer per-partition fetch size.
        fetch_bytes: consumer total fetch size per request (several partitions).
    """

    frame_bytes: int
    batch_bytes: int
    fetch_bytes: int

    @classmethod
    def for_frames(cls, frame: int) -> MessageLimits:
        """Derive every limit from the largest frame message, ``frame`` bytes.

        Args:
            frame: ``FrameSettings.max_message_bytes``: value plus headers of one frame.
        """
        batch = frame + BATCH_OVERHEAD_BYTES
        return cls(frame_bytes=frame, batch_bytes=batch, fetch_bytes=max(4 * batch, 64 * 1024**2))

    def broker_properties(self) -> dict[str, str]:
        """Entries for the broker's server.properties."""
        return {
            "message.max.bytes": str(self.batch_bytes),
            "replica.fetch.max.bytes": str(self.batch_bytes),
            "replica.fetch.response.max.bytes": str(self.fetch_bytes),
        }

    def topic_config(self) -> dict[str, str]:
        """The per-topic override, so a cluster with a smaller default still takes frames."""
        return {"max.message.bytes": str(self.batch_bytes)}

    def confluent_producer(self) -> dict[str, str | int]:
        """librdkafka producer properties."""
        return {"message.max.bytes": self.batch_bytes}

    def confluent_consumer(self) -> dict[str, str | int]:
        """librdkafka consumer properties."""
        return {
            "max.partition.fetch.bytes": self.batch_bytes,
            "fetch.max.bytes": self.fetch_bytes,
            "receive.message.max.bytes": self.fetch_bytes + _LIBRDKAFKA_RECEIVE_MARGIN,
        }

    def faust_settings(self) -> dict[str, int]:
        """faust App settings; the aiokafka driver maps them to its request and fetch sizes."""
        return {
            "producer_max_request_size": self.batch_bytes,
            "consumer_max_fetch_size": self.batch_bytes,
        }
