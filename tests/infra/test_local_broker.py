"""The local KRaft broker through the CLI, as a user on a fresh machine runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.brokers import free_port
from tests.cli import tierflow
from tierflow.infra.errors import InfraError
from tierflow.infra.kafka import LocalBroker, kafka_version
from tierflow.settings import load_settings

pytestmark = pytest.mark.kafka


def test_kafka_up_topics_create_describe_down(tmp_path: Path) -> None:
    env = {
        "TIERFLOW_BROKER__PORT": str(free_port()),
        "TIERFLOW_BROKER__CONTROLLER_PORT": str(free_port()),
        "TIERFLOW_BROKER__STATE_DIR": str(tmp_path / "state"),
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # The local broker is under test, whatever cluster the session uses.
        return tierflow(*args, env=env, unset=("KAFKA_BOOTSTRAP_SERVERS",))

    try:
        up = run("kafka", "up")
        assert up.returncode == 0, up.stderr
        status = run("kafka", "status")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert state["running"] and state["answering"] and state["version"] == kafka_version()

        again = run("kafka", "up")
        assert again.returncode == 0 and f"pid {state['pid']}" in again.stderr

        created = run("topics", "create")
        assert created.returncode == 0, created.stderr
        assert created.stdout.count("created") >= 17
        described = run("topics", "describe", "--json")
        assert described.returncode == 0, described.stderr
        topics = json.loads(described.stdout)["topics"]
        assert len(topics) == 17 and all(t["exists"] and not t["differences"] for t in topics)

        down = run("kafka", "down")
        assert down.returncode == 0 and "stopped" in down.stderr
        gone = run("kafka", "status")
        assert gone.returncode == 1 and not json.loads(gone.stdout)["running"]

        # A restart keeps the log directory: the catalogue is still there.
        assert run("kafka", "up").returncode == 0
        kept = json.loads(run("topics", "describe", "--json").stdout)["topics"]
        assert all(t["exists"] for t in kept)
    finally:
        run("kafka", "down")


def test_a_taken_port_is_named_in_the_error(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = load_settings(
            broker={"port": port, "controller_port": free_port(), "state_dir": tmp_path}
        )
        with pytest.raises(InfraError, match=f"port {port}"):
            LocalBroker(settings).start()


def test_a_recycled_pid_is_not_taken_for_the_broker(tmp_path: Path) -> None:
    settings = load_settings(broker={"port": free_port(), "state_dir": tmp_path})
    broker = LocalBroker(settings)
    broker.home.mkdir(parents=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a Kafka broker
    assert broker.pid() is None
    assert broker.stop() is False
    assert not broker.pid_file.exists()
