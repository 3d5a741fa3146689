"""Client configurations: the only place producer, consumer and admin settings are written.

confluent-kafka clients (cameras, tools, tests) and the faust app (workers) both read their
size limits from the contract's :class:`~tierflow.topics.limits.MessageLimits`, so a frame
one side may send the other side can always fetch, and authenticate as the contract's
:class:`~tierflow.topics.security.KafkaSettings` say.
"""

from __future__ import annotations

from typing import Any

from tierflow.topics.contract import Contract


def admin_config(contract: Contract, client_id: str = "tierflow-admin") -> dict[str, Any]:
    """confluent-kafka AdminClient configuration."""
    return {
        "bootstrap.servers": contract.bootstrap,
        "client.id": client_id,
        **contract.security.confluent(),
    }


def producer_config(contract: Contract, client_id: str, **overrides: Any) -> dict[str, Any]:
    """confluent-kafka Producer configuration for frames and records.

    Defaults favour latency (``linger.ms`` 2) and never lose an acknowledged record
    (``acks=all``, idempotence on); ``overrides`` win.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": contract.bootstrap,
        "client.id": client_id,
        **contract.security.confluent(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "compression.type": "none",  # frames are JPEG already; compressing them costs CPU only
        **contract.limits.confluent_producer(),
    }
    config.update(overrides)
    return config


def consumer_config(
    contract: Contract, group_id: str, client_id: str, **overrides: Any
) -> dict[str, Any]:
    """confluent-kafka Consumer configuration; offsets are committed by the caller."""
    config: dict[str, Any] = {
        "bootstrap.servers": contract.bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        **contract.security.confluent(),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **contract.limits.confluent_consumer(),
    }
    config.update(overrides)
    return config
