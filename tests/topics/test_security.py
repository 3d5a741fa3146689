"""The ``[kafka]`` settings section: validated at load, translated alike for every client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierflow.errors import ConfigError
from tierflow.settings import load_settings
from tierflow.streams.workers import worker_env

SASL = {"security_protocol": "SASL_PLAINTEXT", "username": "cam1"}


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    kafka = load_settings().kafka
    assert kafka.confluent() == {"security.protocol": "plaintext"}
    assert kafka.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert kafka.faust_credentials() is None


def test_the_password_comes_from_a_file_and_is_never_printed(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\nignored second line\n")
    kafka = load_settings(kafka={**SASL, "password_file": secret}).kafka
    assert kafka.confluent()["sasl.password"] == "s3cret-from-file"
    assert kafka.aiokafka()["sasl_plain_password"] == "s3cret-from-file"
    inline = load_settings(kafka={**SASL, "password": "inline-secret"}).kafka
    assert "inline-secret" not in repr(inline)
    assert "inline-secret" not in inline.model_dump_json()


def test_a_child_process_gets_the_password_its_parent_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = load_settings(kafka={**SASL, "password": "inline-secret"})
    for name in [k for k in os.environ if k.startswith("TIERFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in worker_env(parent).items():
        monkeypatch.setenv(name, value)
    assert load_settings().kafka.secret == "inline-secret"


def test_the_environment_sets_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TIERFLOW_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("TIERFLOW_KAFKA__USERNAME", "ctl")
    monkeypatch.setenv("TIERFLOW_KAFKA__PASSWORD", "env-secret")
    config = load_settings().kafka.confluent()
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("ctl", "env-secret")


def test_tls_files_become_every_clients_trust(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made\n")
    kafka = load_settings(kafka={"security_protocol": "SSL", "ca_file": ca}).kafka
    assert kafka.confluent()["ssl.ca.location"] == str(ca)
    assert kafka.confluent()["ssl.endpoint.identification.algorithm"] == "https"


@pytest.mark.parametrize(
    ("kafka", "says"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.username and a password"),
        ({**SASL}, "needs kafka.username and a password"),
        ({**SASL, "password": "a", "password_file": "/etc/hostname"}, "not both"),
        ({"ca_file": "/etc/hostname"}, "has no TLS"),
        ({"security_protocol": "SSL", "ca_file": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"security_protocol": "SSL", "cert_file": "/etc/hostname"}, "go together"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"usernme": "x"}, "usernme"),
    ],
)
def test_inconsistent_kafka_settings_are_refused_naming_the_field(
    kafka: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(kafka=kafka)
