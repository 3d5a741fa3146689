"""A local cluster that authenticates and authorizes: SASL_SSL listeners and ACLs.

:class:`BrokerSecurity` turns a certificate, a CA and a table of SASL/PLAIN users into the
broker properties of a cluster whose every listener, the KRaft controller's included, is
``SASL_SSL``, with KRaft's ``StandardAuthorizer`` on and
``allow.everyone.if.no.acl.found=false``: a client without credentials cannot connect, and
an authenticated one may do only what an ACL (:mod:`tierflow.topics.acls`) allows. The
brokers talk to each other as the ``admin`` user, the only super user.

:func:`make_certificates` makes a throw-away CA and a broker certificate for
``localhost``/``127.0.0.1`` with Debian's ``openssl`` (tests and local trials; a real
deployment brings its own PKI).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tierflow.infra.errors import InfraError

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
LISTENER = "SASL_SSL"


@dataclass(frozen=True)
class Certificates:
    """PEM files of a CA and one broker certificate signed by it.

    Attributes:
        ca_file: the CA certificate clients trust (``kafka.ca_file``).
        keystore_file: the broker's encrypted PKCS#8 key followed by its certificate, the
            layout of Kafka's PEM key store (``ssl.keystore.type=PEM``).
        key_password: the key's password (``ssl.key.password``).
    """

    ca_file: Path
    keystore_file: Path
    key_password: str


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        msg = "openssl is not installed (Debian package openssl; make install adds it)"
        raise InfraError(msg)
    result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        msg = f"openssl {args[0]} failed: {result.stderr.strip()}"
        raise InfraError(msg)


def make_certificates(directory: Path, days: int = 2) -> Certificates:
    """A fresh CA and a broker certificate for ``localhost`` and ``127.0.0.1`` in ``directory``.

    Args:
        directory: where the PEM files go (created).
        days: validity of both certificates.

    Raises:
        InfraError: openssl is missing or failed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    valid = str(days)
    password = secrets.token_urlsafe(16)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", valid, "-subj", "/CN=tierflow test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "broker.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "basicConstraints=CA:FALSE\n"
    )
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.pem", "-days", valid, "-extfile", "broker.ext",
        cwd=directory,
    )  # fmt: skip
    # Kafka's PEM key store reads an encrypted PKCS#8 key when it is given as a file, and
    # Java decrypts PBES1 (PBE-SHA1-3DES) but not openssl's default PBES2 ("PBES2
    # SecretKeyFactory not available").
    _openssl(
        "pkcs8", "-topk8", "-in", "broker.key", "-out", "broker.p8",
        "-v1", "PBE-SHA1-3DES", "-passout", f"pass:{password}",
        cwd=directory,
    )  # fmt: skip
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(
        (directory / "broker.p8").read_text() + (directory / "broker.pem").read_text()
    )
    for private in ("ca.key", "broker.key", "broker.p8", "broker-keystore.pem"):
        (directory / private).chmod(0o600)
    return Certificates(directory / "ca.pem", keystore, password)


def _plain_jaas(username: str, password: str, users: Mapping[str, str]) -> str:
    """A PlainLoginModule entry: the broker's own login and the users it accepts."""
    accepted = " ".join(f'user_{name}="{secret}"' for name, secret in sorted(users.items()))
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{username}" password="{password}" {accepted};'
    )


@dataclass(frozen=True)
class BrokerSecurity:
    """SASL_SSL on every listener, SASL/PLAIN users, and the StandardAuthorizer.

    Attributes:
        certificates: the broker's key store and the CA.
        users: SASL/PLAIN user name -> password; must include ``admin``.
        admin: the super user, also the brokers' own login to each other.
    """

    certificates: Certificates
    users: Mapping[str, str] = field(default_factory=dict)
    admin: str = "admin"

    def __post_init__(self) -> None:
        bad = [name for name in self.users if not name.isidentifier()]
        if self.admin not in self.users or bad:
            msg = f"users need {self.admin!r} and names made of letters, digits, _ (bad: {bad})"
            raise InfraError(msg)

    def properties(self) -> dict[str, str]:
        """The security part of ``server.properties`` (listeners are named by the caller)."""
        jaas = _plain_jaas(self.admin, self.users[self.admin], self.users)
        certs = self.certificates
        return {
            "listener.security.protocol.map": f"{LISTENER}:SASL_SSL,CONTROLLER:SASL_SSL",
            "inter.broker.listener.name": LISTENER,
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            f"listener.name.{LISTENER.lower()}.plain.sasl.jaas.config": jaas,
            "listener.name.controller.plain.sasl.jaas.config": jaas,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs.keystore_file),
            "ssl.key.password": certs.key_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(certs.ca_file),
            "ssl.client.auth": "none",
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "super.users": f"User:{self.admin}",
            "allow.everyone.if.no.acl.found": "false",
        }
