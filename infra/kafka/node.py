"""One KRaft node (combined broker+controller) as a detached JVM process, no Docker.

A node owns a home directory (``server.properties``, ``data/``, ``broker.pid``,
``broker.log``, ``console.log``). It formats its log directory once with the cluster id it
is given, starts ``kafka.Kafka`` in a session of its own (it outlives the CLI that started
it), and stops with SIGTERM (controlled shutdown) before SIGKILL. What the properties say
and how many nodes form a cluster is :mod:`tierflow.infra.kafka.cluster`'s business.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tierflow.infra.errors import InfraError
from tierflow.infra.kafka.install import LOG4J, BrokerInstall, tool
from tierflow.infra.processes import pid_alive, wait_gone
from tierflow.topics.admin import port_open

log = logging.getLogger(__name__)


def new_cluster_id() -> str:
    """A fresh KRaft cluster id.

    Kafka's ``Uuid.toString``: URL-safe base64 of 16 random bytes without padding; Kafka
    avoids ids starting with '-' because they read as command-line flags.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class NodeAddress:
    """Where one node listens.

    Attributes:
        node_id: KRaft ``node.id`` (1-based).
        host: interface of both listeners.
        port: PLAINTEXT (client and inter-broker) port.
        controller_port: CONTROLLER (quorum) port.
    """

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener."""
        return f"{self.host}:{self.port}"

    @property
    def voter(self) -> str:
        """This node's entry of ``controller.quorum.voters`` (``id@host:port``)."""
        return f"{self.node_id}@{self.host}:{self.controller_port}"


class KafkaNode:
    """The process of one node and the files in its ``home``."""

    def __init__(self, install: BrokerInstall, address: NodeAddress, home: Path, heap: str) -> None:
        self.install = install
        self.address = address
        self.heap = heap
        self.home = home
        self.data_dir = home / "data"
        self.properties = home / "server.properties"
        self.pid_file = home / "broker.pid"
        self.log_file = home / "broker.log"
        self.console_file = home / "console.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def write_properties(self, properties: Mapping[str, str]) -> None:
        """Write ``server.properties`` (overwriting: the settings are the source of truth)."""
        self.home.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in properties.items()]
        self.properties.write_text(
            "# written by tierflow; edits are overwritten\n" + "\n".join(lines) + "\n"
        )

    def java_cmd(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        """The JVM command line running ``main`` on the broker's classpath."""
        return [
            tool("java"),
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

    def format(self, cluster_id: str) -> None:
        """Format the log directory for ``cluster_id`` unless it is formatted already."""
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = self.java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties),
            "--ignore-formatted",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            msg = f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}"
            raise InfraError(msg)

    def pid(self) -> int | None:
        """The node's pid when one we started is alive, else None."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        try:  # a recycled pid must not be mistaken for our broker
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if str(self.properties).encode() in cmdline else None

    def check_ports_free(self) -> None:
        """InfraError naming the port when another process listens on one of ours."""
        a = self.address
        for port in (a.port, a.controller_port):
            if port_open(f"{a.host}:{port}"):
                msg = (
                    f"port {port} on {a.host} is taken by another process; stop it or "
                    "choose other ports (TIERFLOW_BROKER__PORT, TIERFLOW_BROKER__CONTROLLER_PORT)"
                )
                raise InfraError(msg)

    def launch(self, properties: Mapping[str, str], cluster_id: str) -> int:
        """Write the properties, format if new, start the JVM; return its pid (no waiting)."""
        self.check_ports_free()
        self.write_properties(properties)
        self.format(cluster_id)
        cmd = self.java_cmd("kafka.Kafka", str(self.properties), heap=self.heap)
        with self.console_file.open("ab") as console:
            # A session of its own: the broker survives the CLI that started it and a
            # Ctrl-C in that terminal does not reach it.
            self._proc = subprocess.Popen(
                cmd, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return self._proc.pid

    def terminate(self) -> int | None:
        """Send SIGTERM (controlled shutdown); return the pid signalled, None if not running."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return pid

    def kill(self) -> bool:
        """SIGKILL the node (no controlled shutdown) and wait until it is gone.

        Returns:
            True when a running node was killed, False when none was running.
        """
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return True

    def finish_stop(self, pid: int, timeout_s: float) -> None:
        """Wait ``timeout_s`` seconds for a terminated node to exit, then SIGKILL it."""
        if not self.wait_exit(pid, timeout_s):
            log.warning("broker %d did not finish its shutdown; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None

    def wait_exit(self, pid: int, timeout_s: float) -> bool:
        """True once ``pid`` has exited (reaped if we started it), False after ``timeout_s``."""
        return wait_gone(pid, self._proc, timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the node's log and console output."""
        chunks = []
        for path in (self.console_file, self.log_file):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log yet)"
