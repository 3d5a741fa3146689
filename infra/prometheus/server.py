"""Start, query and stop a real Prometheus server (Debian's ``prometheus`` package).

The configuration is rendered from ``prometheus.yml`` beside this file into the state
directory, with the scrape interval from the settings and file-based discovery of the
targets tierflow writes (:mod:`infra.prometheus.targets`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import string
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tierflow.infra.errors import InfraError, ToolMissingError
from tierflow.infra.processes import die_with_parent
from tierflow.settings import PrometheusSettings

log = logging.getLogger(__name__)
TEMPLATE = Path(__file__).resolve().parent / "prometheus.yml"


class PrometheusError(InfraError):
    """Prometheus could not start or answered a query with an error."""


class LocalPrometheus:
    """One Prometheus process with its own storage under ``state_dir/<port>``."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.conf = settings
        self.home = settings.state_dir / str(settings.port)
        self.config_file = self.home / "prometheus.yml"
        self.targets_file = self.home / "targets.json"
        self.log_file = self.home / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the web UI and HTTP API."""
        return f"http://{self.conf.host}:{self.conf.port}"

    def _binary(self) -> str:
        path = shutil.which(self.conf.binary) or (
            self.conf.binary if Path(self.conf.binary).is_file() else None
        )
        if path is None:
            msg = (
                f"{self.conf.binary!r} not found; install Debian's prometheus package "
                "(infra/system/install.sh does)"
            )
            raise ToolMissingError(msg)
        return path

    def render_config(self) -> None:
        """Write prometheus.yml (and an empty target list if none exists yet)."""
        self.home.mkdir(parents=True, exist_ok=True)
        text = string.Template(TEMPLATE.read_text()).substitute(
            scrape_interval=f"{self.conf.scrape_interval_s:g}s", targets=str(self.targets_file)
        )
        self.config_file.write_text(text)
        if not self.targets_file.exists():
            self.targets_file.write_text("[]")

    def start(self, tied: bool = False) -> str:
        """Start Prometheus and wait until it is ready; returns its URL.

        Args:
            tied: stop Prometheus when this process dies, however it dies.

        Raises:
            ToolMissingError: the binary is not installed.
            PrometheusError: it exited or did not get ready (the log tail is in the message).
        """
        binary = self._binary()
        self.render_config()
        cmd = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={self.conf.retention}",
            f"--web.listen-address={self.conf.host}:{self.conf.port}",
            "--web.enable-lifecycle",
        ]
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent if tied else None,
            )
        deadline = time.monotonic() + self.conf.start_timeout_s
        while not self.ready():
            if self._proc.poll() is not None:
                msg = f"prometheus exited with {self._proc.returncode}:\n{self.log_tail()}"
                raise PrometheusError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = (
                    f"prometheus not ready after {self.conf.start_timeout_s} s:\n{self.log_tail()}"
                )
                raise PrometheusError(msg)
            time.sleep(0.1)
        return self.url

    def ready(self) -> bool:
        """True when ``/-/ready`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:  # noqa: S310 - our own URL
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; returns the result vector (maybe empty).

        Raises:
            PrometheusError: the expression is invalid or the server failed.
        """
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - our own URL
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            msg = f"query {expr!r} failed: {body.get('error', exc)}"
            raise PrometheusError(msg) from exc
        if body.get("status") != "success":
            msg = f"query {expr!r} failed: {body.get('error')}"
            raise PrometheusError(msg)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        """Targets Prometheus is scraping, with their health."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as reply:  # noqa: S310
            active: list[dict[str, Any]] = json.loads(reply.read())["data"]["activeTargets"]
            return active

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The end of Prometheus's log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"
