"""Where the test session's real Kafka broker comes from.

In order: ``KAFKA_BOOTSTRAP_SERVERS`` when set; testcontainers' Kafka module when a Docker
engine answers; else the local KRaft broker of ``infra.kafka`` on free ports, started once
per session and stopped at its end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from tierflow.settings import load_settings
from tierflow.topics.contract import Contract

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker_answers() -> bool:
    """True when a Docker engine answers ``GET /_ping`` (the client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port))
        else:
            return False
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def kafka_for_tests(state_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(bootstrap, how)`` for a real broker, cleaning up what it started."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external, "KAFKA_BOOTSTRAP_SERVERS"
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        limits = Contract.of(load_settings()).limits
        container = (
            KafkaContainer()
            .with_kraft()
            .with_env("KAFKA_MESSAGE_MAX_BYTES", str(limits.batch_bytes))
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        )
        with container:
            yield container.get_bootstrap_server(), "testcontainers"
        return
    from tierflow.infra.kafka import LocalBroker

    settings = load_settings(
        bootstrap_servers=None,
        broker={"port": free_port(), "controller_port": free_port(), "state_dir": state_dir},
    )
    broker = LocalBroker(settings)
    broker.start()
    try:
        yield broker.bootstrap, f"local broker (pid {broker.pid()})"
    finally:
        broker.stop()
