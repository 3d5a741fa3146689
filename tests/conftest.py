"""Fixtures shared by every test folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import kafka_for_tests
from tierflow.settings import Settings, load_settings
from tierflow.topics.admin import create_catalogue
from tierflow.topics.contract import Contract


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real Kafka broker for the whole test session."""
    with kafka_for_tests(tmp_path_factory.mktemp("kafka")) as (bootstrap, how):
        print(f"\nKafka for tests: {bootstrap} ({how})")
        yield bootstrap


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Broker-free settings isolated from the user's environment."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(workers={"data_dir": tmp_path / "workers"})


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings on the session's broker with a topic prefix of this test's own."""
    return load_settings(
        bootstrap_servers=kafka_bootstrap,
        topics={"prefix": f"t-{uuid.uuid4().hex[:10]}"},
        workers={"data_dir": tmp_path / "workers"},
    )


@pytest.fixture
def kafka_topics(kafka_settings: Settings) -> Settings:
    """``kafka_settings`` with the whole catalogue created on the broker."""
    create_catalogue(Contract.of(kafka_settings))
    return kafka_settings
