"""The worker processes of one machine: a ``tierflow worker`` child per registered service.

Used by node agents (:mod:`tierflow.streams.node`) and ``tierflow up``: each worker is handed
the exact settings of its parent through its environment; :func:`wait_until_live` waits
until discovery shows them live, and a :class:`Supervisor` starts again a worker that dies.

Each worker runs in a process group of its own, so the terminal's Ctrl-C reaches only
``tierflow up``, which stops the cameras and drains before it stops the workers; and each is
a static member of its consumer group (``--instance-id``), so its restart takes its
partitions back at once instead of waiting out the session timeout of the dead member.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from tierflow.errors import TierflowError
from tierflow.infra.processes import die_with_parent
from tierflow.settings import Settings
from tierflow.streams.discovery import ProbedRegistryReader
from tierflow.streams.metrics import METRICS
from tierflow.topics.contract import Contract
from tierflow.topics.security import REVEAL
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)


class WorkersError(TierflowError):
    """The workers did not come up (one exited, or they did not announce in time)."""


SETTINGS_SECTIONS = tuple(name for name in Settings.model_fields if name != "bootstrap_servers")
"""The sections (and top-level values) of the settings a worker is handed (the cluster goes
on its own)."""


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``.

    Every section goes as JSON (``TIERFLOW_<SECTION>``) and the cluster as
    ``KAFKA_BOOTSTRAP_SERVERS``; the parent's own ``TIERFLOW_*`` variables are removed so
    they cannot shadow what flags changed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")}
    for section in SETTINGS_SECTIONS:
        value = getattr(settings, section)
        if isinstance(value, BaseModel):
            # The child needs the Kafka password in clear; nothing else prints it.
            env[f"TIERFLOW_{section.upper()}"] = value.model_dump_json(context={REVEAL: True})
        elif value is not None:  # a top-level value (connect_timeout_s)
            env[f"TIERFLOW_{section.upper()}"] = str(value)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap
    return env


@dataclass
class WorkerProcess:
    """A ``tierflow worker`` child process with its log file.

    Attributes:
        stage: the service it runs.
        quality: the quality it serves (detect), else None.
        log_path: where its output goes.
        node: the node it runs on (part of its static group membership id).
        process: the child, once started.
        restarts: times it was started again after exiting on its own.
        env: the environment it was started with (a restart reuses it).
    """

    stage: StageName
    quality: int | None
    log_path: Path
    node: str = "local"
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    env: dict[str, str] | None = None

    @property
    def name(self) -> str:
        """``<stage>`` or ``<stage>-<quality>``."""
        return str(self.stage) if self.quality is None else f"{self.stage}-{self.quality}"

    @property
    def instance_id(self) -> str:
        """Its static consumer-group member id: the same for every restart on this node."""
        return f"{self.name}@{self.node}"

    @property
    def args(self) -> list[str]:
        """Arguments of ``tierflow worker``."""
        quality = [] if self.quality is None else ["--quality", str(self.quality)]
        return [self.stage, *quality, "--instance-id", self.instance_id]

    def start(self, env: dict[str, str]) -> None:
        """Start the worker; its output goes to ``log_path``."""
        self.env = env
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "tierflow.streams.cli", *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
                start_new_session=True,  # not in the terminal's group: Ctrl-C is up's to handle
            )

    @property
    def argv(self) -> list[str]:
        """The ``tierflow`` command line of this worker."""
        return ["-v", "worker", *self.args]

    def adopt(self, spare: subprocess.Popen[bytes], env: dict[str, str]) -> None:
        """Become ``spare`` (:mod:`tierflow.streams.spare`): it runs this worker from now on."""
        self.env = env
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        own = {k: v for k, v in env.items() if k.startswith("TIERFLOW_") or k.startswith("KAFKA_")}
        order = {"argv": self.argv, "log": str(self.log_path), "env": own}
        assert spare.stdin is not None  # noqa: S101 - spawn_spare opens it
        spare.stdin.write(json.dumps(order).encode() + b"\n")
        spare.stdin.close()
        self.process = spare

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


async def wait_until_live(
    contract: Contract, workers: list[WorkerProcess], timeout_s: float
) -> None:
    """Block until the registry shows every worker's service (stage and quality) live.

    Live as a router sees it: announced, and its consumer group assigned what it announced.

    Raises:
        WorkersError: a worker exited or the deadline passed (with the workers' log tails).
    """
    reader = ProbedRegistryReader(contract, period_s=0.5)
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


def spawn_spare(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A hot spare (:mod:`tierflow.streams.spare`): imports done, waiting for a command line."""
    return subprocess.Popen(
        [sys.executable, "-m", "tierflow.streams.spare"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=die_with_parent,
        start_new_session=True,
    )


class Supervisor:
    """Starts a worker again when it exits on its own, with a doubling backoff.

    The first restart is immediate (a crash's downtime is the successor's start-up); the
    second waits ``workers.restart_backoff_s`` and each further one doubles it up to
    ``workers.restart_backoff_max_s``, so a worker that crashes on start cannot spin; one
    that then ran for a minute starts over. Every restart is counted
    (``tierflow_worker_restarts_total``, and :attr:`WorkerProcess.restarts` for the summary).

    Frames lose nothing to a crash: a worker acks a record only after its outputs are
    delivered, so what the dead one had not finished is consumed again by its successor.
    With ``workers.hot_spare`` the successor is a spare interpreter that has already
    imported tierflow (:mod:`tierflow.streams.spare`), and the next spare is made at once.
    """

    HEALTHY_S = 60.0
    POLL_S = 0.1
    SPARE_AFTER_S = 5.0
    """The spare's imports wait until the workers' own start-up is over (2 cores)."""

    def __init__(self, workers: list[WorkerProcess], settings: Settings) -> None:
        self.workers = workers
        self.settings = settings
        self._env = worker_env(settings)
        self._task: asyncio.Task[None] | None = None
        self._spare: subprocess.Popen[bytes] | None = None
        self._spare_failed = False

    def start(self) -> None:
        """Watch the workers in the background (they must be started already)."""
        self._task = asyncio.create_task(self._watch(), name="supervisor")

    async def stop(self) -> None:
        """Stop watching: workers that exit from now on stay stopped; the spare ends."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._spare is not None:
            spare, self._spare = self._spare, None
            spare.kill()
            await asyncio.to_thread(spare.wait)

    def _keep_a_spare(self) -> None:
        """Make the spare if there is none; give up on spares if one died unused."""
        if self._spare is None:
            self._spare = spawn_spare(self._env)
        elif self._spare.poll() is not None and not self._spare_failed:
            # It ended without being handed a worker: its imports fail here. Restarts go on
            # without a spare rather than spawning a failing interpreter every poll.
            self._spare_failed = True
            log.warning("the hot spare exited (%s); restarting without one", self._spare.returncode)

    def _restart(self, worker: WorkerProcess) -> None:
        """Start ``worker`` again, in the spare when one is ready (then make the next)."""
        env = worker.env or self._env
        spare = self._spare
        if spare is not None and spare.poll() is None:
            worker.adopt(spare, env)
            self._spare = None  # the watch loop makes the next one
            return
        worker.start(env)

    async def _watch(self) -> None:
        w = self.settings.workers
        backoff: dict[str, float] = {}
        started: dict[str, float] = {}
        watching = time.monotonic()
        while True:
            await asyncio.sleep(self.POLL_S)
            if w.hot_spare and time.monotonic() - watching > self.SPARE_AFTER_S:
                self._keep_a_spare()
            for worker in list(self.workers):  # the list may change (a node agent's does)
                name = worker.name
                if name not in started:  # a zero series from the start, not only after a crash
                    METRICS.worker_restarts.labels(name)
                    started[name] = time.monotonic()
                if worker.alive():
                    if time.monotonic() - started[name] > self.HEALTHY_S:
                        backoff[name] = 0.0
                    continue
                wait = backoff.get(name, 0.0)
                code = worker.process.returncode if worker.process else None
                log.warning(
                    "worker %s exited (%s); restarting in %.1f s\n%s",
                    name,
                    code,
                    wait,
                    worker.log_tail(5),
                )
                await asyncio.sleep(wait)
                if worker not in self.workers:
                    continue  # stopped on purpose meanwhile
                backoff[name] = min(max(w.restart_backoff_s, wait * 2), w.restart_backoff_max_s)
                worker.restarts += 1
                METRICS.worker_restarts.labels(name).inc()
                self._restart(worker)
                started[name] = time.monotonic()
