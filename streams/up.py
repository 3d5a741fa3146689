"""``tierflow up``: the whole data plane on one machine, watched live or summarised as JSON.

It starts the local broker if no cluster is given, creates the topics, starts the workers
(resize, one detect per quality, draw) as processes of their own, waits until discovery
shows them live, then runs generated-scene cameras in this process and follows
``metrics.frames``. At the end it stops the cameras, waits until every produced frame has
an outcome (or the drain timeout passes), stops the workers and reports per source.
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
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tierflow.errors import TierflowError
from tierflow.infra.processes import die_with_parent
from tierflow.infra.prometheus import LocalPrometheus, Target, targets_from_registry, write_targets
from tierflow.settings import Settings
from tierflow.streams import metrics
from tierflow.streams.accounting import MetricsCollector, SourceTally
from tierflow.streams.app import cancel
from tierflow.streams.camera import AssignmentFollower, Camera, CameraStats, camera_producer
from tierflow.streams.capture import SceneSource
from tierflow.streams.discovery import registry_reader
from tierflow.streams.stages import STAGES
from tierflow.topics.contract import Contract
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)
SETTINGS_SECTIONS = (
    "broker",
    "topics",
    "frames",
    "workers",
    "detector",
    "dataplane",
    "camera",
    "control",
    "prometheus",
)


class UpError(TierflowError):
    """The pipeline could not be brought up."""


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
        UpError: a worker exited or the deadline passed (with the workers' log tails).
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
                raise UpError(msg)
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


@dataclass
class CameraRun:
    """A generated camera running in a thread of this process."""

    camera: Camera
    thread: threading.Thread | None = None
    result: CameraStats | None = None

    def start(self, stop: threading.Event, duration_s: float | None) -> None:
        """Run the camera in a daemon thread."""

        def body() -> None:
            self.result = self.camera.run(stop, duration_s)

        self.thread = threading.Thread(target=body, name=self.camera.source_id, daemon=True)
        self.thread.start()


@dataclass
class UpOptions:
    """What ``tierflow up`` was asked to do."""

    cameras: int = 3
    duration_s: float | None = None
    qualities: tuple[int, ...] | None = None
    fps: float | None = None
    quality: int | None = None
    seed: int = 0
    start_timeout_s: float = 120.0
    drain_s: float | None = None
    live: bool = True
    control: bool = True
    prometheus: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def live_table(tallies: dict[str, SourceTally], cams: list[CameraRun], elapsed_s: float) -> Table:
    """The per-source table shown while running."""
    table = Table(title=f"tierflow up - {elapsed_s:.0f} s", expand=False)
    for column in (
        "source",
        "quality",
        "fps in",
        "fps out",
        "p50 s",
        "p99 s",
        "F1",
        "dropped",
        "deadletter",
    ):
        table.add_column(column, justify="left" if column == "source" else "right")
    now = time.monotonic()
    for run in cams:
        cam = run.camera
        tally = tallies.get(cam.source_id, SourceTally())
        p50, p99, f1 = tally.percentile_s(50), tally.percentile_s(99), tally.f1
        table.add_row(
            cam.source_id,
            str(cam.stats.quality),
            f"{cam.stats.produced / max(elapsed_s, 1e-9):.1f}",
            f"{tally.fps_out(now):.1f}",
            "-" if p50 is None else f"{p50:.3f}",
            "-" if p99 is None else f"{p99:.3f}",
            "-" if f1 is None else f"{f1:.2f}",
            str(sum(tally.dropped.values()) + sum(cam.stats.dropped.values())),
            str(sum(tally.deadlettered.values())),
        )
    return table


async def run_up(settings: Settings, options: UpOptions, console: Console) -> dict[str, Any]:
    """Bring the data plane up, run the cameras, and return the JSON summary."""
    qualities = options.qualities or settings.topics.qualities
    missing = sorted(set(qualities) - set(settings.topics.qualities))
    if missing:
        msg = f"qualities {missing} have no topics; configured: {list(settings.topics.qualities)}"
        raise UpError(msg)
    start_quality = options.quality or settings.camera.quality
    if start_quality not in settings.topics.qualities:
        msg = f"camera quality {start_quality} has no topics"
        raise UpError(msg)
    output_dir = settings.dataplane.output_dir.resolve()
    settings = settings.model_copy(
        update={"dataplane": settings.dataplane.model_copy(update={"output_dir": output_dir})}
    )
    run_id = uuid.uuid4().hex[:4]
    contract = Contract.of(settings)
    workers = plan_workers(qualities, output_dir.parent / "logs", options.control)
    env = worker_env(settings)
    # SIGINT (Ctrl-C) or SIGTERM: once the cameras run, stop them and still drain and
    # report; before that, cancel the start-up. Either way the workers are stopped.
    stop = threading.Event()
    cameras_running = threading.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, loop, stop, cameras_running, main)
    for worker in workers:
        worker.start(env)
    collector: MetricsCollector | None = None
    follower: AssignmentFollower | None = None
    scraping: Scraping | None = None
    try:
        with console.status(f"starting {len(workers)} workers"):
            await wait_until_live(contract, workers, options.start_timeout_s)
        if options.prometheus:
            scraping = Scraping(settings, contract)
            url = await scraping.start()
            console.print(
                f"Prometheus at {url} (scraping every {settings.prometheus.scrape_interval_s:g} s)"
            )
        ids = [f"cam-{i}-{run_id}" for i in range(options.cameras)]
        collector = MetricsCollector(contract, set(ids))
        await collector.start()
        follower = AssignmentFollower(contract).start()
        producer = camera_producer(contract, f"tierflow-up-{run_id}", settings.camera.queue_kbytes)
        fps = options.fps or settings.camera.fps
        cams = [
            CameraRun(
                Camera(
                    contract,
                    source_id,
                    SceneSource(options.seed + i, settings.camera.scene_size),
                    producer,
                    follower,
                    fps,
                    start_quality,
                )
            )
            for i, source_id in enumerate(ids)
        ]
        started = time.monotonic()
        cameras_running.set()
        for run in cams:
            run.start(stop, options.duration_s)
        await _watch(cams, collector, started, options, console)
        stop.set()
        for run in cams:
            if run.thread is not None:
                await asyncio.to_thread(run.thread.join)
        await asyncio.to_thread(producer.flush, 30)
        elapsed = time.monotonic() - started
        expected = {run.camera.source_id: run.camera.stats.produced for run in cams}
        drain_s = options.drain_s or settings.dataplane.deadline_s * 2 + 15
        with Progress(
            TextColumn("frames with an outcome"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("drain", total=sum(expected.values()))
            complete = await collector.wait_for(
                expected, drain_s, lambda done: bar.update(task, completed=done)
            )
        for worker in workers:
            await asyncio.to_thread(worker.stop)
        return _summary(cams, collector, output_dir, elapsed, complete, workers, settings)
    finally:
        if scraping is not None:
            await scraping.stop()
        if follower is not None:
            follower.stop()
        if collector is not None:
            await collector.stop()
        for worker in workers:
            await asyncio.to_thread(worker.stop)


class Scraping:
    """A real Prometheus scraping every process the registry announces, and this one.

    The target list follows ``control.registry``: a worker started elsewhere later is
    scraped as soon as it announces itself.
    """

    def __init__(self, settings: Settings, contract: Contract) -> None:
        self.settings = settings
        self.prometheus = LocalPrometheus(settings.prometheus)
        self.reader = registry_reader(contract)
        self.own = Target(
            f"{settings.dataplane.metrics_host}:{metrics.serve(settings.dataplane.metrics_host)}",
            {
                "service": "cameras",
                "stage": StageName.CAMERA,
                "node": settings.dataplane.node,
                "tier": settings.dataplane.tier,
            },
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start Prometheus and the target writer; returns Prometheus's URL."""
        await self.reader.start()
        await self.reader.caught_up()
        self._write()
        url = await asyncio.to_thread(self.prometheus.start, True)
        self._task = asyncio.create_task(self._follow(), name="prometheus-targets")
        return url

    def _write(self) -> None:
        live = self.reader.view.live(time.time_ns())
        write_targets(self.prometheus.targets_file, [self.own, *targets_from_registry(live)])

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._write()

    async def stop(self) -> None:
        """Stop following and stop Prometheus (its samples stay on disk)."""
        await cancel(self._task)
        await self.reader.stop()
        await asyncio.to_thread(self.prometheus.stop)


def _on_signal(
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
    cameras_running: threading.Event,
    main: asyncio.Task[Any] | None,
) -> None:
    stop.set()
    if not cameras_running.is_set() and main is not None:
        main.cancel()
    loop.remove_signal_handler(signal.SIGINT)  # the next Ctrl-C raises KeyboardInterrupt


async def _watch(
    cams: list[CameraRun],
    collector: MetricsCollector,
    started: float,
    options: UpOptions,
    console: Console,
) -> None:
    """Refresh the live table until the cameras finish (or Ctrl-C when unbounded)."""

    def running() -> bool:
        return any(run.thread is not None and run.thread.is_alive() for run in cams)

    if not options.live:
        while running():
            await asyncio.sleep(0.5)
        return
    with (
        Live(console=console, refresh_per_second=2) as live,
        contextlib.suppress(asyncio.CancelledError),
    ):
        while running():
            live.update(live_table(collector.tallies, cams, time.monotonic() - started))
            await asyncio.sleep(0.5)


def _summary(
    cams: list[CameraRun],
    collector: MetricsCollector,
    output_dir: Path,
    elapsed_s: float,
    complete: bool,
    workers: list[WorkerProcess],
    settings: Settings,
) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    for run in cams:
        stats = run.camera.stats
        tally = collector.tallies.get(run.camera.source_id, SourceTally())
        entry = {"produced": stats.produced, **tally.summary()}
        entry["unaccounted"] = max(0, stats.produced - tally.accounted)
        entry["camera_dropped"] = dict(stats.dropped)
        entry["quality"] = stats.quality
        entry["switches"] = stats.switches
        entry["refused_ticks"] = stats.refused_ticks
        entry["fps_in"] = round(stats.produced / max(elapsed_s, 1e-9), 2)
        sources[run.camera.source_id] = entry
    return {
        "sources": sources,
        "output_dir": str(output_dir),
        "duration_s": round(elapsed_s, 2),
        "all_accounted": complete,
        "detector": settings.detector.backend,
        "workers": {w.name: w.process.returncode if w.process else None for w in workers},
    }


def print_summary(summary: dict[str, Any]) -> None:
    """The summary as one JSON document on stdout."""
    print(json.dumps(summary, indent=2))
