"""``tierflow topics delete`` and ``tierflow lag`` on the real broker."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.cli import tierflow
from tierflow.settings import Settings
from tierflow.streams.cli import main
from tierflow.topics.admin import prefixed_topics
from tierflow.topics.clients import consumer_config, producer_config
from tierflow.topics.contract import Contract

pytestmark = pytest.mark.kafka


@pytest.fixture
def cli_env(kafka_topics: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that points ``tierflow`` (in this process and in children) at them."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_topics.bootstrap,
        "TIERFLOW_TOPICS__PREFIX": kafka_topics.topics.prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(kafka_topics.workers.data_dir),
    }
    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_delete_lists_asks_and_keeps_the_topics_on_no(
    kafka_topics: Settings,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contract = Contract.of(kafka_topics)
    prefix = kafka_topics.topics.prefix
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["topics", "delete", "--prefix", prefix]) == 1
    out, err = capsys.readouterr()
    assert out.split() == sorted(contract.catalogue.names)
    assert f"delete these {len(contract.catalogue.names)} topics" in err
    assert "nothing deleted" in err
    assert prefixed_topics(contract, prefix) == sorted(contract.catalogue.names)

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["topics", "delete", "--prefix", prefix]) == 0
    assert f"{len(contract.catalogue.names)} topics deleted" in capsys.readouterr().err
    assert prefixed_topics(contract, prefix) == []


def test_delete_at_end_of_input_is_a_no(
    kafka_topics: Settings,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["topics", "delete", "--prefix", kafka_topics.topics.prefix]) == 1
    assert prefixed_topics(Contract.of(kafka_topics), kafka_topics.topics.prefix)


def test_delete_with_yes_does_not_ask(kafka_topics: Settings, cli_env: dict[str, str]) -> None:
    contract = Contract.of(kafka_topics)
    result = tierflow("topics", "delete", "--prefix", kafka_topics.topics.prefix, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == sorted(contract.catalogue.names)
    assert f"{len(contract.catalogue.names)} topics deleted" in result.stderr
    assert prefixed_topics(contract, kafka_topics.topics.prefix) == []
    again = tierflow("topics", "delete", "--prefix", kafka_topics.topics.prefix, "--yes")
    assert again.returncode == 0 and "no topic" in again.stderr


def test_delete_refuses_an_empty_prefix(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "delete", "--prefix", "", "--yes"]) == 2
    assert "prefix" in capsys.readouterr().err


AGE_S = 120.0
"""How old the test's records are (their producer timestamps), s."""


def _fill_and_commit(settings: Settings) -> dict[str, Any]:
    """10 records 2 minutes old on metrics partition 0; a stage group 4 in, caught up on 1."""
    contract = Contract.of(settings)
    names = contract.names
    topic = names.metrics_frames
    producer = Producer(producer_config(contract, "lag-test"))
    stamp_ms = int((time.time() - AGE_S) * 1000)
    for i in range(10):
        producer.produce(topic, value=b"r%d" % i, partition=0, timestamp=stamp_ms + i)
    assert producer.flush(30) == 0
    committed = {
        names.group("tierflow-resize"): [TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 0)],
        # Not a service's group, and another deployment's service: neither is listed.
        names.group("someone-else"): [TopicPartition(topic, 0, 1)],
        f"other-{uuid.uuid4().hex[:6]}.tierflow-resize": [TopicPartition(topic, 0, 2)],
    }
    for group, offsets in committed.items():
        consumer = Consumer(consumer_config(contract, group, "lag-test"))
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            consumer.close()
    return {"topic": topic, "group": names.group("tierflow-resize")}


def test_lag_json_reports_offsets_lag_and_age_of_the_stage_groups(
    kafka_topics: Settings, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    made = _fill_and_commit(kafka_topics)
    assert main(["lag", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["prefix"] == kafka_topics.topics.prefix
    assert [(g["group"], g["stage"], g["lag"]) for g in doc["groups"]] == [
        (made["group"], "resize", 6)
    ]
    behind, caught_up = doc["groups"][0]["partitions"]
    assert behind["topic"] == caught_up["topic"] == made["topic"]
    assert (behind["partition"], behind["committed"], behind["end"], behind["lag"]) == (0, 4, 10, 6)
    # The oldest unconsumed record (offset 4) is AGE_S old; the run itself takes seconds.
    assert AGE_S <= behind["lag_s"] < AGE_S + 60
    assert behind["consumed"] is False  # offsets committed, but no member is live
    assert (caught_up["partition"], caught_up["end"], caught_up["lag"]) == (1, 0, 0)
    assert caught_up["lag_s"] is None


def test_lag_table_names_the_stage_and_the_lag(
    kafka_topics: Settings, cli_env: dict[str, str]
) -> None:
    made = _fill_and_commit(kafka_topics)
    result = tierflow("lag")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if made["topic"] in line]
    cells = [[c for c in row if c not in ("│", "┃", "|")] for row in rows]
    assert len(cells) == 2, result.stdout
    stage, topic, partition, committed, end, lag, age, consumer = cells[0]
    assert (stage, topic, partition, committed, end, lag) == (
        "resize",
        made["topic"],
        "0",
        "4",
        "10",
        "6",
    )
    assert float(age) >= AGE_S and consumer == "none"


def test_lag_without_groups_says_so(
    kafka_topics: Settings, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lag", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == []
    assert main(["lag"]) == 0
    assert "no consumer group" in capsys.readouterr().err
