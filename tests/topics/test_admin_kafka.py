"""Topic creation against the real broker: idempotent, reconciling, and described truthfully."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from tests.waiting import eventually
from tierflow.settings import Settings
from tierflow.topics.admin import Action, describe_topics, ensure_topics, wait_for_cluster
from tierflow.topics.contract import Contract

pytestmark = pytest.mark.kafka


def test_create_is_idempotent_and_describe_matches_the_catalogue(kafka_settings: Settings) -> None:
    admin = wait_for_cluster(Contract.of(kafka_settings))
    catalogue = Contract.of(kafka_settings).catalogue
    first = ensure_topics(admin, catalogue)
    assert [c.action for c in first] == [Action.CREATED] * len(catalogue)
    second = ensure_topics(admin, catalogue)
    assert [c.action for c in second] == [Action.UNCHANGED] * len(catalogue)
    states = describe_topics(admin, catalogue)
    assert all(s.exists and not s.differences for s in states), [s.differences for s in states]
    by_name = {s.spec.name: s for s in states}
    assignments = by_name[f"{kafka_settings.topics.prefix}.control.assignments"]
    assert assignments.config["cleanup.policy"] == "compact"
    raw = by_name[f"{kafka_settings.topics.prefix}.frames.raw.512"]
    assert raw.partitions == kafka_settings.topics.frame_partitions


def test_drifted_config_and_missing_partitions_are_reconciled(kafka_settings: Settings) -> None:
    admin = wait_for_cluster(Contract.of(kafka_settings))
    catalogue = Contract.of(kafka_settings).catalogue
    ensure_topics(admin, catalogue)
    name = f"{kafka_settings.topics.prefix}.frames.raw.416"
    resource = ConfigResource(
        ResourceType.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()
    want = catalogue[name].config["retention.ms"]
    eventually(
        lambda: {s.spec.name: s for s in describe_topics(admin, catalogue)}[name].differences,
        lambda diffs: diffs == [f"retention.ms=1000 (want {want})"],
    )

    more = Contract.of(
        kafka_settings.model_copy(
            update={"topics": kafka_settings.topics.model_copy(update={"frame_partitions": 8})}
        )
    ).catalogue
    changes = {c.name: c for c in ensure_topics(admin, more)}
    assert changes[name].action is Action.UPDATED
    assert "retention.ms" in changes[name].detail and "partitions 6->8" in changes[name].detail
    eventually(
        lambda: describe_topics(admin, more), lambda states: all(not s.differences for s in states)
    )

    fewer = {c.name: c for c in ensure_topics(admin, catalogue)}
    assert fewer[name].action is Action.CONFLICT
    assert "8 partitions" in fewer[name].detail
