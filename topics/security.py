"""How every Kafka client authenticates: the ``[kafka]`` settings section and its translations.

One section (``[kafka]`` in the TOML file, ``TIERFLOW_KAFKA__*`` in the environment) says
how this process talks to the cluster: the security protocol, the SASL mechanism and
credentials, and the TLS files. It is translated here, and only here, for the three client
libraries tierflow uses, so a camera (confluent-kafka), a worker (faust over aiokafka), a
follower (aiokafka) and the admin tools authenticate the same way:

- :meth:`KafkaSettings.confluent` for librdkafka's dotted properties,
- :meth:`KafkaSettings.aiokafka` for ``AIOKafkaConsumer``/``Producer`` keyword arguments,
- :meth:`KafkaSettings.faust_credentials` for faust's ``broker_credentials``.

The password comes from ``TIERFLOW_KAFKA__PASSWORD`` or, better for secrets managers and
Kubernetes, from ``password_file``; it is never printed (``repr`` and JSON show
``**********``) except in the environment a parent hands its own child process.
"""

from __future__ import annotations

import ssl
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    SecretStr,
    field_serializer,
    model_validator,
)

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

REVEAL = "reveal_secrets"
"""Serialisation context key that writes the password in clear (a child's environment only)."""


class KafkaSettings(BaseModel):
    """How this process connects to the Kafka cluster (TLS, SASL); plaintext by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    security_protocol: Protocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    )
    sasl_mechanism: Mechanism = Field(
        default="PLAIN", description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    username: str | None = Field(default=None, description="SASL user name (the principal).")
    password: SecretStr | None = Field(
        default=None, description="SASL password (prefer password_file for secrets)."
    )
    password_file: Path | None = Field(
        default=None, description="File whose first line is the SASL password."
    )
    ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that signs the brokers' certificates."
    )
    cert_file: Path | None = Field(
        default=None, description="PEM client certificate (mutual TLS), with key_file."
    )
    key_file: Path | None = Field(default=None, description="PEM private key of cert_file.")
    check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host dialled."
    )

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_PLAINTEXT and SASL_SSL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """True for SSL and SASL_SSL."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.password is not None and self.password_file is not None:
            msg = "give kafka.password or kafka.password_file, not both"
            raise ValueError(msg)
        if self.uses_sasl and (not self.username or not self.secret):
            msg = f"security_protocol {self.security_protocol} needs kafka.username and a password"
            raise ValueError(msg)
        tls_files = {
            "ca_file": self.ca_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
        }
        given = [name for name, path in tls_files.items() if path is not None]
        if given and not self.uses_tls:
            msg = (
                f"kafka.{given[0]} is set but security_protocol {self.security_protocol} has no TLS"
            )
            raise ValueError(msg)
        for name in given:
            path = tls_files[name]
            if path is not None and not path.is_file():
                msg = f"kafka.{name} {path} is not a readable file"
                raise ValueError(msg)
        if (self.cert_file is None) != (self.key_file is None):
            msg = "kafka.cert_file and kafka.key_file go together (mutual TLS)"
            raise ValueError(msg)
        return self

    @cached_property
    def secret(self) -> str | None:
        """The SASL password, from ``password`` or the first line of ``password_file``."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        try:
            text = self.password_file.read_text()
        except OSError as exc:
            msg = f"kafka.password_file {self.password_file} cannot be read: {exc.strerror}"
            raise ValueError(msg) from exc
        return text.splitlines()[0] if text.strip() else None

    @field_serializer("password", when_used="always")
    def _password(self, value: SecretStr | None, info: FieldSerializationInfo) -> Any:
        if value is None:
            return None
        context = info.context or {}
        return value.get_secret_value() if context.get(REVEAL) else str(value)

    def confluent(self) -> dict[str, Any]:
        """librdkafka properties (producer, consumer and admin alike)."""
        config: dict[str, Any] = {"security.protocol": self.security_protocol.lower()}
        if self.uses_sasl:
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username,
                "sasl.password": self.secret,
            }
        if self.uses_tls:
            if self.ca_file is not None:
                config["ssl.ca.location"] = str(self.ca_file)
            if self.cert_file is not None and self.key_file is not None:
                config["ssl.certificate.location"] = str(self.cert_file)
                config["ssl.key.location"] = str(self.key_file)
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.check_hostname else "none"
            )
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the Python clients (aiokafka, faust); None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.check_hostname = self.check_hostname
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of ``AIOKafkaConsumer``/``AIOKafkaProducer``."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_sasl:
            kwargs |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.secret,
            }
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def faust_credentials(self) -> Any:
        """faust's ``broker_credentials`` (None for PLAINTEXT).

        Imported lazily: cameras use this module and must not import faust.
        """
        if self.security_protocol == "PLAINTEXT":
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            return SASLCredentials(
                username=self.username,
                password=self.secret,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        return SSLCredentials(self.ssl_context())
