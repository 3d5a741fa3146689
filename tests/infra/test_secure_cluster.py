"""Nobody in: a real broker with SASL_SSL on every listener and ACLs (issue 11, part 7).

One local KRaft broker for the module, started with a CA and certificate this test makes,
SASL/PLAIN users and KRaft's StandardAuthorizer. Each role gets the ACLs of
:mod:`tierflow.topics.acls`, and every client library tierflow uses (confluent-kafka for
cameras and admin, aiokafka for followers, faust for workers) connects with the ``[kafka]``
settings section alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from tests.brokers import free_port
from tests.cli import tierflow
from tests.waiting import eventually
from tierflow.infra.kafka.cluster import LocalCluster
from tierflow.infra.kafka.security import BrokerSecurity, make_certificates
from tierflow.settings import Settings, load_settings
from tierflow.streams.assignments import AssignmentFollower, publish_assignment
from tierflow.streams.smoke import round_trip
from tierflow.streams.workers import worker_env
from tierflow.topics.acls import grant, role_acls, row
from tierflow.topics.admin import create_catalogue, wait_for_cluster
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import BrokerUnreachableError
from tierflow.topics.follow import Follower
from tierflow.topics.records import Assignment

PREFIX = "secure"
USERS = {
    "admin": "admin-secret",
    "cam1": "cam-secret",
    "ctl": "ctl-secret",
    "wrk": "wrk-secret",
    "cam2": "cam2-secret",
}


class Secured:
    """The secured broker and a settings object per principal."""

    def __init__(self, base: Settings, ca_file: Path) -> None:
        self.base = base
        self.ca_file = ca_file

    def settings(self, user: str, password: str | None = None) -> Settings:
        """Settings that connect as ``user`` (with its password unless one is given)."""
        kafka = {
            "security_protocol": "SASL_SSL",
            "username": user,
            "password": password or USERS[user],
            "ca_file": str(self.ca_file),
        }
        return self.base.model_copy(update={"kafka": Settings(kafka=kafka).kafka})

    def contract(self, user: str, password: str | None = None) -> Contract:
        return Contract.of(self.settings(user, password))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    state = tmp_path_factory.mktemp("secure-broker")
    certs = make_certificates(state / "certs")
    ports = {"port": free_port(), "controller_port": free_port(), "state_dir": state}
    base = load_settings(bootstrap_servers=None, broker=ports, topics={"prefix": PREFIX})
    base = base.model_copy(update={"bootstrap_servers": f"127.0.0.1:{ports['port']}"})
    world = Secured(base, certs.ca_file)
    cluster = LocalCluster(world.settings("admin"), security=BrokerSecurity(certs, USERS))
    cluster.start()
    try:
        admin = world.contract("admin")
        create_catalogue(admin)
        for user, role in (("cam1", "camera"), ("ctl", "controller"), ("wrk", "worker")):
            grant(admin, role, f"User:{user}")
        yield world
    finally:
        cluster.stop()


def _deliver(contract: Contract, topic: str, value: bytes = b"x") -> KafkaError | None:
    """Produce one record as ``contract``'s principal; the delivery error, None when written."""
    outcome: list[KafkaError | None] = []
    producer = Producer(producer_config(contract, f"test-{topic}", **{"message.timeout.ms": 15000}))
    producer.produce(topic, key=b"k", value=value, on_delivery=lambda err, _m: outcome.append(err))
    producer.flush(20)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0]


def _refused(error: KafkaError | None) -> bool:
    return error is not None and error.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    )


def test_a_camera_writes_its_frames_and_cannot_forge_an_assignment(secured: Secured) -> None:
    camera = secured.contract("cam1")
    names = camera.names
    assert _deliver(camera, names.raw(512)) is None
    assert _deliver(camera, names.metrics_frames) is None
    for topic in (names.assignments, names.placement, names.ready(512), names.registry):
        assert _refused(_deliver(camera, topic)), topic


def test_only_the_controller_writes_assignments_and_placement(secured: Secured) -> None:
    controller, worker = secured.contract("ctl"), secured.contract("wrk")
    names = controller.names
    for topic in (names.assignments, names.placement):
        assert _deliver(controller, topic) is None, topic
        assert _refused(_deliver(worker, topic)), topic
    assert _deliver(worker, names.ready(512)) is None
    assert _deliver(worker, names.registry) is None


def test_a_camera_follows_the_controllers_assignment_over_sasl_ssl(secured: Secured) -> None:
    follower = AssignmentFollower(secured.contract("cam1"), max_skew_s=60.0).start()
    controller = Producer(producer_config(secured.contract("ctl"), "test-controller"))
    try:
        sent = Assignment(source="cam-secure", quality=416, epoch=time.time_ns() // 10**6)
        publish_assignment(controller, secured.contract("ctl"), sent)
        got = eventually(lambda: follower.get("cam-secure"), lambda a: a == sent, timeout_s=20.0)
        assert got == sent
    finally:
        follower.stop()


def test_an_aiokafka_follower_reads_as_the_worker(secured: Secured) -> None:
    contract = secured.contract("wrk")
    assert _deliver(contract, contract.names.registry, b"announced") is None
    seen: list[bytes | None] = []

    async def follow() -> None:
        def handle(_key: bytes | None, value: bytes | None) -> None:
            seen.append(value)

        follower = Follower(contract, contract.names.registry, handle)
        await follower.start()
        try:
            await follower.caught_up(timeout_s=20.0)
        finally:
            await follower.stop()

    asyncio.run(follow())
    assert b"announced" in seen


def test_a_faust_worker_relays_a_frame_over_sasl_ssl(secured: Secured) -> None:
    report = asyncio.run(round_trip(secured.settings("wrk"), quality=320, timeout_s=60.0))
    assert report.latency_s > 0


def test_wrong_or_missing_credentials_are_refused_with_a_clear_error(secured: Secured) -> None:
    refused = r"refused the credentials of user 'cam1' \(PLAIN\): .*Invalid username or password"
    with pytest.raises(BrokerUnreachableError, match=refused):
        wait_for_cluster(secured.contract("cam1", "wrong"), timeout_s=8.0)
    plaintext = secured.base.model_copy(update={"kafka": Settings().kafka})
    with pytest.raises(BrokerUnreachableError):
        wait_for_cluster(Contract.of(plaintext), timeout_s=3.0)


def test_role_acls_name_the_topics_of_their_prefix() -> None:
    names = Contract.of(load_settings(topics={"prefix": "p"})).names
    camera = {(r[4], r[1]) for r in map(row, role_acls(names, "camera", "User:c"))}
    assert ("p.frames.raw.", "WRITE") in camera
    assert ("p.control.assignments", "READ") in camera
    assert not any(name == "p.control.assignments" and op == "WRITE" for name, op in camera)
    with pytest.raises(ValueError, match="User:"):
        role_acls(names, "camera", "cam")
    with pytest.raises(ValueError, match="unknown role"):
        role_acls(names, "admin", "User:a")


def test_the_cli_grants_a_new_camera_its_rights(secured: Secured) -> None:
    """``tierflow topics acls camera User:cam2 --apply`` as the administrator."""
    env = worker_env(secured.settings("admin"))
    result = tierflow("topics", "acls", "camera", "User:cam2", "--apply", env=env)
    assert result.returncode == 0, result.stderr
    assert "ACLs in force for User:cam2" in result.stdout + result.stderr
    cam2 = secured.contract("cam2")
    assert _deliver(cam2, cam2.names.raw(320)) is None
    assert _refused(_deliver(cam2, cam2.names.assignments))
