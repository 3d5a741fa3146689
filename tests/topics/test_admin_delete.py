"""Deleting every topic under a prefix, against the real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import NewTopic

from tierflow.settings import Settings, load_settings
from tierflow.topics.admin import (
    Action,
    delete_prefixed,
    ensure_topics,
    prefixed_topics,
    wait_for_cluster,
    wait_for_leaders,
)
from tierflow.topics.contract import Contract
from tierflow.topics.errors import TopicAdminError


def _create(settings: Settings, *names: str) -> None:
    admin = wait_for_cluster(Contract.of(settings))
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result()
    wait_for_leaders(admin, list(names))


@pytest.mark.parametrize("prefix", ["", ".", "  ", " . "])
def test_an_empty_prefix_is_refused_before_the_cluster_is_asked(prefix: str) -> None:
    # Nothing listens on port 1: a call that dialled would fail as unreachable instead.
    contract = Contract.of(load_settings(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(TopicAdminError, match="prefix"):
        delete_prefixed(contract, prefix, timeout_s=1.0)


@pytest.mark.kafka
def test_deletes_every_topic_under_the_prefix_and_nothing_else(kafka_topics: Settings) -> None:
    contract = Contract.of(kafka_topics)
    prefix = kafka_topics.topics.prefix
    # Not in the catalogue but under the prefix (a faust changelog, say): deleted too. A
    # topic whose name merely starts with the same characters is another prefix's.
    extra, neighbour = f"{prefix}.tierflow-draw-changelog", f"{prefix}x.deadletter"
    _create(kafka_topics, extra, neighbour)
    catalogue = sorted(contract.catalogue.names)
    assert prefixed_topics(contract, prefix) == sorted([*catalogue, extra])

    deleted = delete_prefixed(contract, f"{prefix}.")  # the trailing dot is the same prefix
    assert deleted == sorted([*catalogue, extra])
    # Gone from the metadata once it returns, and not merely marked for deletion: the
    # catalogue can be created again at once.
    listed = set(wait_for_cluster(contract).list_topics(timeout=10).topics)
    assert not listed & set(deleted)
    assert neighbour in listed
    admin = wait_for_cluster(contract)
    assert {c.action for c in ensure_topics(admin, contract.catalogue)} == {Action.CREATED}
    assert delete_prefixed(contract, f"{prefix}x") == [neighbour]


@pytest.mark.kafka
def test_only_the_confirmed_names_are_deleted(kafka_topics: Settings) -> None:
    contract = Contract.of(kafka_topics)
    prefix = kafka_topics.topics.prefix
    confirmed = [contract.names.deadletter, contract.names.registry]
    assert delete_prefixed(contract, prefix, only=confirmed) == sorted(confirmed)
    left = prefixed_topics(contract, prefix)
    assert not set(left) & set(confirmed)
    assert sorted(left) == sorted(set(contract.catalogue.names) - set(confirmed))
    assert delete_prefixed(contract, prefix, only=confirmed) == []
    delete_prefixed(contract, prefix)
