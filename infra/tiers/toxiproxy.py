"""Toxiproxy (Shopify, Go) as the delay of each emulated link.

This kernel has no ``netem``, so delay cannot be a qdisc. Each host reaches the broker
through a TCP proxy listening at the broker's end of the host's link; a ``latency`` toxic
holds every chunk ``delay`` ms after it arrived, in each direction, without limiting
throughput (toxiproxy's ``LatencyToxic.Pipe`` sleeps ``delay - time.Since(c.Timestamp)``,
so chunks in flight overlap). The proxy ends the client's TCP connection at the link, so
TCP sees the link's bandwidth (``tbf``) but not the added delay: a transfer costs
``delay + S/w``, not slow start over a long round trip. Toxiproxy's latency is whole
milliseconds; a route's delay is rounded to the nearest.

Built with ``go install github.com/Shopify/toxiproxy/v2/cmd/server@vX`` into
``tiers.bin_dir`` (:func:`ensure`), by ``make install`` or on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tierflow.infra.errors import InfraError, ToolMissingError
from tierflow.infra.processes import pid_alive, wait_gone
from tierflow.infra.tiers.config import TierSettings
from tierflow.topics.admin import port_open

MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
SPAWNED: dict[int, subprocess.Popen[bytes]] = {}
"""Servers this process started, by pid (a server outlives the object that started it)."""


def binary(settings: TierSettings) -> Path:
    """Where the toxiproxy server of ``settings.toxiproxy_version`` is (or will be) built."""
    return settings.bin_dir / f"toxiproxy-server-{settings.toxiproxy_version}"


def ensure(settings: TierSettings) -> Path:
    """The toxiproxy server binary, built with ``go install`` when missing.

    Raises:
        ToolMissingError: ``go`` is not installed.
        InfraError: the build failed (go's output is in the message).
    """
    target = binary(settings)
    if target.is_file():
        return target
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None
    )
    if go is None:
        msg = "toxiproxy is built with Go, and 'go' is not installed (Debian package golang)"
        raise ToolMissingError(msg)
    build = settings.bin_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(build), "CGO_ENABLED": "0"}
    result = subprocess.run(
        [go, "install", f"{MODULE}@v{settings.toxiproxy_version}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        msg = f"go install {MODULE}@v{settings.toxiproxy_version} failed:\n{result.stderr[-2000:]}"
        raise InfraError(msg)
    (build / "server").rename(target)
    return target


class Toxiproxy:
    """A toxiproxy server on ``127.0.0.1:tiers.api_port`` and its HTTP API."""

    def __init__(self, settings: TierSettings) -> None:
        self.settings = settings
        self.api = f"http://127.0.0.1:{settings.api_port}"
        self.log_file = settings.state_dir / "toxiproxy.log"

    def answering(self) -> bool:
        """True when the API answers."""
        try:
            self._call("GET", "/version")
        except InfraError:
            return False
        return True

    def start(self) -> int:
        """Start the server detached; returns its pid once its API answers."""
        if port_open(f"127.0.0.1:{self.settings.api_port}"):
            msg = (
                f"port {self.settings.api_port} is taken; stop what listens there or set "
                "TIERFLOW_TIERS__API_PORT"
            )
            raise InfraError(msg)
        server = ensure(self.settings)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [str(server), "-host", "127.0.0.1", "-port", str(self.settings.api_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        SPAWNED[proc.pid] = proc  # kept, so stop() reaps it and no zombie is left
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answering():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = self.log_file.read_text()[-1000:]
                msg = f"toxiproxy did not start on port {self.settings.api_port}:\n{tail}"
                raise InfraError(msg)
            time.sleep(0.05)
        return proc.pid

    def _is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is a live toxiproxy server on this API port."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            pid_alive(pid)
            and bool(argv)
            and Path(argv[0].decode(errors="replace")).name.startswith("toxiproxy-server")
            and str(self.settings.api_port).encode() in argv
        )

    def stop(self, pid: int | None) -> bool:
        """Stop the server ``pid`` (SIGTERM, then SIGKILL after 10 s); True when one ran."""
        if pid is None:
            return False
        proc = SPAWNED.pop(pid, None)
        if proc is None and not self._is_ours(pid):
            return False  # a pid from an old state file may be another program's now
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, proc, STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, proc, STOP_TIMEOUT_S)
        return True

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - a fixed http URL on loopback
            self.api + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            msg = f"toxiproxy {method} {path}: {exc.code} {exc.read().decode(errors='replace')}"
            raise InfraError(msg) from exc
        except OSError as exc:
            msg = f"toxiproxy at {self.api} does not answer: {exc}"
            raise InfraError(msg) from exc
        return json.loads(text) if text.strip() else None

    def proxy(self, name: str, listen: str, upstream: str, delay_s: float) -> None:
        """A proxy ``listen`` -> ``upstream`` delaying each direction by ``delay_s``."""
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})
        latency_ms = round(delay_s * 1000)
        if latency_ms <= 0:
            return
        for stream in ("upstream", "downstream"):
            toxic = {
                "name": f"delay-{stream}",
                "type": "latency",
                "stream": stream,
                "toxicity": 1.0,
                "attributes": {"latency": latency_ms, "jitter": 0},
            }
            self._call("POST", f"/proxies/{name}/toxics", toxic)

    def proxies(self) -> dict[str, Any]:
        """Every proxy the server has, by name, with its toxics."""
        result = self._call("GET", "/proxies")
        return result if isinstance(result, dict) else {}
