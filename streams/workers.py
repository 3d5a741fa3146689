"""The worker processes of one machine: a ``tierflow worker`` child per registered service.

Used by ``tierflow up``: it plans a worker per service of :data:`~tierflow.streams.stages.STAGES`
(one detect per quality), hands each the exact settings of the parent through its
environment, and waits until discovery shows every one of them live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tierflow.errors import TierflowError
from tierflow.infra.processes import die_with_parent
from tierflow.settings import Settings
from tierflow.streams.discovery import registry_reader
from tierflow.streams.stages import STAGES
from tierflow.topics.contract import Contract
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)


class WorkersError(TierflowError):
    """The workers did not come up (one exited, or they did not announce in time)."""


SETTINGS_SECTIONS = tuple(name for name in Settings.model_fields if name != "bootstrap_servers")
"""The sections of the settings a worker is handed (the cluster goes on its own)."""


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``.

    Every section goes as JSON (``TIERFLOW_<SECTION>``) and the cluster as
    ``KAFKA_BOOTSTRAP_SERVERS``; the parent's own ``TIERFLOW_*`` variables are removed so
    they cannot shadow what flags changed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")}
    for section in SETTINGS_SECTIONS:
        env[f"TIERFLOW_{section.upper()}"] = getattr(settings, section).model_dump_json()
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap
    return env


@dataclass
class WorkerProcess:
    """A ``tierflow worker`` child process with its log file.

    Attributes:
        stage: the service it runs.
        quality: the quality it serves (detect), else None.
        log_path: where its output goes.
        process: the child, once started.
    """

    stage: StageName
    quality: int | None
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """``<stage>`` or ``<stage>-<quality>``."""
        return str(self.stage) if self.quality is None else f"{self.stage}-{self.quality}"

    @property
    def args(self) -> list[str]:
        """Arguments of ``tierflow worker``."""
        return [self.stage, *([] if self.quality is None else ["--quality", str(self.quality)])]

    def start(self, env: dict[str, str]) -> None:
        """Start the worker; its output goes to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "tierflow.streams.cli", "-v", "worker", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (graceful: tombstone, commit), then SIGKILL after ``timeout_s``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("worker %s ignored SIGTERM; killing it", self.name)
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The end of the worker's log."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def plan_workers(
    qualities: tuple[int, ...], log_dir: Path, control: bool = True
) -> list[WorkerProcess]:
    """A worker process per service of the registry (one detect per quality); control opt."""
    workers = []
    for spec in STAGES.values():
        if spec.name is StageName.CONTROL and not control:
            continue
        for quality in qualities if spec.per_quality else (None,):
            name = spec.name if quality is None else f"{spec.name}-{quality}"
            workers.append(WorkerProcess(spec.name, quality, log_dir / f"{name}.log"))
    return workers


async def wait_until_live(
    contract: Contract, workers: list[WorkerProcess], timeout_s: float
) -> None:
    """Block until the registry shows every worker's service (stage and quality) live.

    Raises:
        WorkersError: a worker exited or the deadline passed (with the workers' log tails).
    """
    reader = registry_reader(contract)
    await reader.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.time_ns()
            live = reader.view.live(now)
            if {(w.stage, w.quality) for w in workers} <= {(s.stage, s.quality) for s in live}:
                return
            dead = [w for w in workers if not w.alive()]
            if dead or time.monotonic() > deadline:
                seen = sorted(f"{s.stage}@{s.quality}" if s.quality else s.stage for s in live)
                why = "exited" if dead else f"did not all announce within {timeout_s:.0f} s"
                why += f" (live: {seen or 'none'})"
                tails = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in (dead or workers))
                msg = f"workers {why}: {[w.name for w in dead] or 'some'}\n{tails}"
                raise WorkersError(msg)
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


def start_workers(workers: list[WorkerProcess], settings: Settings) -> None:
    """Start every worker with exactly ``settings`` (see :func:`worker_env`)."""
    env = worker_env(settings)
    for worker in workers:
        worker.start(env)


async def stop_workers(workers: list[WorkerProcess]) -> None:
    """Stop every worker gracefully (SIGTERM, then SIGKILL), off the event loop."""
    for worker in workers:
        await asyncio.to_thread(worker.stop)
