from __future__ import annotations

import pytest

from tierflow.settings import Settings, load_settings
from tierflow.topics.catalogue import TopicKind
from tierflow.topics.contract import Contract
from tierflow.topics.names import TopicNames


def test_catalogue_holds_every_topic_of_the_design_table(settings: Settings) -> None:
    names = Contract.of(settings).catalogue.names
    for q in (320, 416, 512):
        assert {f"frames.raw.{q}", f"frames.ready.{q}", f"detections.{q}"} <= set(names)
    assert {
        "frames.annotated",
        "detections.json",
        "metrics.frames",
        "control.assignments",
        "control.registry",
        "control.nodes",
        "control.placement",
        "deadletter",
    } <= set(names)
    assert len(names) == len(set(names)) == 17


def test_control_topics_are_compacted_and_frame_topics_expire(settings: Settings) -> None:
    for spec in Contract.of(settings).catalogue:
        policy = spec.config["cleanup.policy"]
        assert policy == ("compact" if spec.kind is TopicKind.CONTROL else "delete"), spec.name
        if spec.kind is TopicKind.FRAMES:
            assert int(spec.config["retention.ms"]) == 3_600_000
            assert int(spec.config["retention.bytes"]) > 0


def test_every_topic_that_carries_frames_accepts_the_frame_limit(settings: Settings) -> None:
    limits = Contract.of(settings).limits
    for spec in Contract.of(settings).catalogue:
        if spec.kind in (TopicKind.FRAMES, TopicKind.DEADLETTER):
            assert int(spec.config["max.message.bytes"]) >= limits.frame_bytes, spec.name


def test_prefix_qualities_and_replication_come_from_settings() -> None:
    s = load_settings(topics={"prefix": "exp1", "qualities": [640, 320], "replication_factor": 3})
    catalogue = Contract.of(s).catalogue
    assert all(n.startswith("exp1.") for n in catalogue.names)
    assert "exp1.frames.raw.640" in catalogue.names
    assert "exp1.frames.raw.512" not in catalogue.names
    assert {spec.replication_factor for spec in catalogue} == {3}


def test_limits_agree_along_the_whole_path(settings: Settings) -> None:
    limits = Contract.of(settings).limits
    broker = int(limits.broker_properties()["message.max.bytes"])
    producer = int(limits.confluent_producer()["message.max.bytes"])
    consumer = limits.confluent_consumer()
    faust = limits.faust_settings()
    assert limits.frame_bytes < broker
    assert producer == broker == faust["producer_max_request_size"]
    # A consumer whose fetch size is below the broker's limit skips records (aiokafka).
    assert int(consumer["max.partition.fetch.bytes"]) >= broker
    assert faust["consumer_max_fetch_size"] >= broker
    assert int(consumer["receive.message.max.bytes"]) > int(consumer["fetch.max.bytes"])


def test_a_1080p_raw_frame_fits_the_default_limit(settings: Settings) -> None:
    assert Contract.of(settings).limits.frame_bytes > 1920 * 1080 * 3


@pytest.mark.parametrize(
    ("prefix", "topic", "quality"),
    [
        ("", "frames.raw.512", 512),
        ("", "detections.320", 320),
        ("exp", "exp.frames.ready.416", 416),
        ("exp", "frames.raw.416", None),
        ("", "frames.annotated", None),
        ("", "metrics.frames", None),
    ],
)
def test_quality_is_read_back_from_per_quality_names(
    prefix: str, topic: str, quality: int | None
) -> None:
    assert TopicNames(prefix).quality_of(topic) == quality


def test_unknown_topic_lookup_names_the_topic(settings: Settings) -> None:
    with pytest.raises(KeyError, match=r"frames\.raw\.999"):
        Contract.of(settings).catalogue["frames.raw.999"]
