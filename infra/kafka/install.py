"""The broker's jars: resolved from Maven Central by ``pom.xml`` and cached outside the repo."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tierflow.infra.errors import InfraError, ToolMissingError
from tierflow.settings import LocalBrokerSettings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j.properties"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_DONE_MARKER = ".complete"


def kafka_version(pom: Path = POM) -> str:
    """The broker version pinned by ``pom.xml``'s ``kafka.version`` property."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)  # noqa: S314 - our own file
    if node is None or not node.text:
        msg = f"{pom} does not set the kafka.version property"
        raise InfraError(msg)
    return node.text.strip()


def tool(name: str) -> str:
    """Path of ``name`` (``java`` prefers ``$JAVA_HOME``); ToolMissingError when absent."""
    if name == "java" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    path = shutil.which(name)
    if path is None:
        msg = f"{name!r} is not on PATH; the local Kafka broker needs a JDK 17+ and Maven"
        raise ToolMissingError(msg)
    return path


@dataclass(frozen=True)
class BrokerInstall:
    """The broker's jars in the cache, resolved from Maven Central on first use."""

    jar_cache: Path
    version: str

    @classmethod
    def from_settings(cls, broker: LocalBrokerSettings) -> BrokerInstall:
        """The install of the pinned version under ``broker.jar_cache``."""
        return cls(jar_cache=broker.jar_cache, version=kafka_version())

    @property
    def libs(self) -> Path:
        """Directory holding every runtime jar of the broker."""
        return self.jar_cache / self.version / "libs"

    @property
    def installed(self) -> bool:
        """True when a previous install finished."""
        return (self.libs / _DONE_MARKER).is_file()

    def ensure(self) -> Path:
        """Resolve the jars with Maven unless cached; return the libs directory.

        Raises:
            ToolMissingError: Maven is not installed.
            InfraError: Maven failed (its output is in the message).
        """
        if self.installed:
            return self.libs
        mvn = tool("mvn")
        staging = self.libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        log.info("resolving Kafka %s from Maven Central into %s", self.version, self.libs)
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            msg = f"mvn could not resolve Kafka {self.version}:\n{result.stdout}{result.stderr}"
            raise InfraError(msg)
        (staging / _DONE_MARKER).write_text(self.version + "\n")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        return self.libs
