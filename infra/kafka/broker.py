"""A real Apache Kafka broker (KRaft, combined broker+controller) on this machine, no Docker.

The broker's jars come from Maven Central through ``pom.xml`` beside this file (the pom pins
the version) and are cached outside the repository. ``LocalBroker`` formats the log
directory once, starts ``kafka.Kafka`` detached (it outlives ``tierflow kafka up``), waits
until the broker answers metadata requests, and stops it with SIGTERM (controlled shutdown)
before SIGKILL.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tierflow.infra.errors import InfraError, ToolMissingError
from tierflow.settings import LocalBrokerSettings, Settings
from tierflow.topics.admin import port_open, wait_for_cluster
from tierflow.topics.contract import Contract
from tierflow.topics.errors import BrokerUnreachableError

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


def _tool(name: str) -> str:
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
        mvn = _tool("mvn")
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


@dataclass(frozen=True)
class BrokerStatus:
    """What ``tierflow kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    state_dir: Path
    answering: bool


def _cluster_id() -> str:
    # Kafka's Uuid.toString: URL-safe base64 of 16 random bytes without padding; Kafka
    # avoids ids starting with '-' because they read as command-line flags.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
    return state != "Z"


class LocalBroker:
    """One combined broker+controller on ``settings.broker.host``.

    Files live in ``state_dir/<port>/`` so brokers on different ports (a test session's and
    a user's) never share a log directory.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.contract = Contract.of(settings)
        self.conf = settings.broker
        self.install = BrokerInstall.from_settings(self.conf)
        self.home = self.conf.state_dir / str(self.conf.port)
        self.data_dir = self.home / "data"
        self.properties = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"
        self.log_file = self.home / "broker.log"
        self.console_file = self.home / "console.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener."""
        return f"{self.conf.host}:{self.conf.port}"

    def server_properties(self) -> dict[str, str]:
        """The broker configuration; size limits come from the contract's limits."""
        c = self.conf
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{c.host}:{c.controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics come from the catalogue only; a typo must fail, not create a topic.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Lets workers ask for session timeouts of a few seconds (fast failover).
            "group.min.session.timeout.ms": "1000",
            "log.retention.check.interval.ms": "60000",
            "log.cleaner.backoff.ms": "5000",
            **self.contract.limits.broker_properties(),
        }

    def _write_properties(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.server_properties().items()]
        self.properties.write_text(
            "# written by tierflow; edits are overwritten\n" + "\n".join(lines) + "\n"
        )

    def _java_cmd(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            _tool("java"),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{LOG4J}",
            f"-Dtierflow.broker.log={self.log_file}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp",
            str(self.install.libs / "*"),
            main,
            *args,
        ]

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(self.properties),
            "--ignore-formatted",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            msg = f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}"
            raise InfraError(msg)

    def pid(self) -> int | None:
        """The broker's pid when one we started is alive, else None."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:  # a recycled pid must not be mistaken for our broker
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if str(self.properties).encode() in cmdline else None

    def start(self, wait: bool = True) -> int:
        """Start the broker unless it runs already; return its pid.

        Args:
            wait: block until it answers metadata requests (``start_timeout_s``).

        Raises:
            InfraError: the port is taken by something else, or the broker died on start
                (the tail of its log is in the message).
        """
        running = self.pid()
        if running is not None:
            if wait:
                self.wait_ready()
            return running
        for port in (self.conf.port, self.conf.controller_port):
            if port_open(f"{self.conf.host}:{port}"):
                msg = (
                    f"port {port} on {self.conf.host} is taken by another process; stop it or "
                    "choose other ports (TIERFLOW_BROKER__PORT, TIERFLOW_BROKER__CONTROLLER_PORT)"
                )
                raise InfraError(msg)
        self.install.ensure()
        self._write_properties()
        self._format()
        cmd = self._java_cmd("kafka.Kafka", str(self.properties), heap=self.conf.heap)
        with self.console_file.open("ab") as console:
            # A session of its own: the broker survives the CLI that started it and a
            # Ctrl-C in that terminal does not reach it.
            self._proc = subprocess.Popen(
                cmd, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        if wait:
            self.wait_ready()
        return self._proc.pid

    def wait_ready(self) -> None:
        """Block until the broker answers metadata; InfraError if it dies or times out."""
        deadline = time.monotonic() + self.conf.start_timeout_s
        while True:
            if self.pid() is None:
                msg = f"the Kafka broker exited during start-up; log tail:\n{self.log_tail()}"
                raise InfraError(msg)
            try:
                wait_for_cluster(self.contract, timeout_s=min(5.0, deadline - time.monotonic()))
            except BrokerUnreachableError as exc:
                if time.monotonic() >= deadline:
                    msg = f"{exc}; log tail:\n{self.log_tail()}"
                    raise InfraError(msg) from exc
                continue
            return

    def stop(self) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after ``stop_timeout_s``.

        Returns:
            True when a running broker was stopped, False when none was running.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, self.conf.stop_timeout_s):
            log.warning(
                "broker %d ignored SIGTERM for %.0f s; killing it", pid, self.conf.stop_timeout_s
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return True

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def status(self) -> BrokerStatus:
        """Whether the broker runs and answers metadata requests."""
        pid = self.pid()
        answering = False
        if pid is not None:
            try:
                wait_for_cluster(self.contract, timeout_s=3.0)
                answering = True
            except BrokerUnreachableError:
                answering = False
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            version=self.install.version,
            state_dir=self.home,
            answering=answering,
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the broker log and console output."""
        chunks = []
        for path in (self.console_file, self.log_file):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log yet)"
