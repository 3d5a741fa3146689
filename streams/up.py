"""``tierflow up``: the whole data plane on one machine, watched live or summarised as JSON.

The command line starts the local broker if no cluster is given and creates the topics;
this module is the control plane plus one local node agent: it starts the control agent as
a worker process, and a :class:`~tierflow.streams.node.NodeAgent` in this process runs the
workers the placement puts on this machine (resize, a detect per quality, draw; placed once
here with ``--no-control``). Once discovery shows them live it runs generated-scene cameras
in this process and follows ``metrics.frames``. At the end it stops the cameras, waits until
every produced frame has an outcome (or the drain timeout passes), stops the workers and
reports per source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tierflow.errors import TierflowError
from tierflow.settings import Settings
from tierflow.streams.accounting import MetricsCollector, SourceTally, totals
from tierflow.streams.assignments import AssignmentFollower
from tierflow.streams.camera import Camera, CameraStats, camera_producer
from tierflow.streams.capture import SceneSource
from tierflow.streams.golden import ReferenceCopies
from tierflow.streams.live import PLAIN_EVERY_S, Rates, live_table, plain_lines
from tierflow.streams.node import NodeAgent
from tierflow.streams.nodes import local_node
from tierflow.streams.placing import Placer
from tierflow.streams.recording import Recording
from tierflow.streams.replay import recorded_cameras
from tierflow.streams.scraping import Scraping
from tierflow.streams.sources import SourceSpec
from tierflow.streams.workers import (
    WorkerProcess,
    start_workers,
    stop_workers,
    wait_until_live,
)
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.stages import StageName

log = logging.getLogger(__name__)


@dataclass
class CameraRun:
    """A camera running in a thread of this process."""

    camera: Camera
    truth: str = "generated scene"
    """Where its F1 comes from: ``generated scene``, ``MOT gt.txt``, ``COCO x.json``, ``none``."""
    thread: threading.Thread | None = None
    result: CameraStats | None = None
    replay: tuple[list[float], float | None, bool, float] | None = None
    """A recorded source's frame offsets (s), replay speed (None: max), loop flag, lap (s)."""

    def start(self, stop: threading.Event, duration_s: float | None) -> None:
        """Run the camera in a daemon thread (a replay ends with its recording)."""

        def body() -> None:
            if self.replay is None:
                self.result = self.camera.run(stop, duration_s)
            else:
                self.result = self.camera.replay(stop, *self.replay)

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
    recording: Recording | None = None
    """Replay this recording instead of running generated cameras (one camera per source)."""
    sources: tuple[SourceSpec, ...] = ()
    """The user's cameras (``--sources FILE``, ``--source URI``) instead of generated ones."""
    speed: float | None = 1.0
    """Replay speed: 1.0 the recorded timing, None as fast as the pipeline takes frames."""
    loop: bool = False
    progress: Callable[[int], None] | None = None
    """Called about twice a second with the frames captured so far (when not live)."""
    extra: dict[str, Any] = field(default_factory=dict)


class UpError(TierflowError):
    """The pipeline could not be brought up as asked."""


def check_up(settings: Settings, options: UpOptions) -> None:
    """Refuse options ``run_up`` would refuse, before anything starts.

    Raises:
        UpError: a quality asked for has no topics, or the onnx backend has no model file.
    """
    _resolved(settings, options)
    detector = settings.detector
    if detector.backend == "onnx":  # each detect worker would fail on it, one after another
        model = detector.onnx_model
        if model is None:
            msg = "the onnx backend needs a model file (--model or TIERFLOW_DETECTOR__ONNX_MODEL)"
            raise UpError(msg)
        if not model.is_file():
            msg = f"the onnx model {model} is not a file"
            raise UpError(msg)


def _resolved(settings: Settings, options: UpOptions) -> tuple[Settings, int]:
    """The settings (absolute output folder, detectors for the qualities asked), start quality.

    Raises:
        UpError: a quality asked for has no topics.
    """
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
    dataplane = settings.dataplane.model_copy(update={"output_dir": output_dir})
    # The control agent places a detector for exactly these qualities.
    control = settings.control.model_copy(update={"detect_qualities": qualities})
    resolved = settings.model_copy(update={"dataplane": dataplane, "control": control})
    return resolved, start_quality


@dataclass
class Stopping:
    """SIGINT (Ctrl-C) and SIGTERM while ``tierflow up`` runs.

    Once the cameras run, a signal stops them and the run still drains and reports; before
    that, it cancels the start-up. Either way the workers are stopped.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    cameras_running: threading.Event = field(default_factory=threading.Event)

    def install(self) -> None:
        """Handle the signals on the running loop, for the task that calls this."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, loop, self, main)


async def run_up(settings: Settings, options: UpOptions, console: Console) -> dict[str, Any]:
    """Bring the data plane up, run the cameras, and return the JSON summary."""
    settings, _ = _resolved(settings, options)  # checks the start quality has topics
    output_dir = settings.dataplane.output_dir
    contract = Contract.of(settings)
    run_id = uuid.uuid4().hex[:4]
    log_dir = output_dir.parent / "logs"
    node = settings.dataplane.node
    control = (
        [WorkerProcess(StageName.CONTROL, None, log_dir / "control.log", node)]
        if options.control
        else []
    )
    agent = NodeAgent(settings, log_dir)
    stopping = Stopping()
    stopping.install()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(stop_workers, control)
        since = time.time_ns() // 1_000_000
        if options.control:
            start_workers(control, settings)
        else:  # nobody places: place once, the same way the control agent would
            await place_here(settings, contract)
        await agent.start()
        stack.push_async_callback(agent.stop)
        with console.status("placing and starting the workers"):
            placed = await agent.wait_placed(since, options.start_timeout_s)
            await wait_until_live(contract, [*control, *placed], options.start_timeout_s)
        agent.supervisor.workers.extend(control)  # one supervisor (and one spare) per node
        if options.prometheus:
            scraping = Scraping(settings, contract)
            url = await scraping.start()
            stack.push_async_callback(scraping.stop)
            interval = settings.prometheus.scrape_interval_s
            console.print(f"Prometheus at {url} (scraping every {interval:g} s)")
        follower = AssignmentFollower(contract, settings.camera.epoch_skew_s).start()
        stack.callback(follower.stop)
        producer = camera_producer(contract, f"tierflow-up-{run_id}", settings.camera.queue_kbytes)
        initial_fps = settings.camera.initial_fps if options.control else None
        cams = _cameras(settings, options, contract, producer, follower, run_id, initial_fps)
        collector = MetricsCollector(contract, {run.camera.source_id for run in cams})
        await collector.start()
        stack.push_async_callback(collector.stop)
        elapsed = await _run_cameras(cams, producer, collector, stopping, options, console)
        drain_s = options.drain_s or settings.dataplane.deadline_s * 2 + 15
        complete = await _drain(cams, collector, drain_s, console)
        await agent.stop()
        await stop_workers(control)
        workers = [*control, *agent.every_worker()]
        summary = _summary(cams, collector, output_dir, elapsed, complete, workers, settings)
        return {"run_id": run_id, **summary, "settings": settings.model_dump(mode="json")}
    raise AssertionError  # pragma: no cover - the block returns or raises


def _cameras(
    settings: Settings,
    options: UpOptions,
    contract: Contract,
    producer: Producer,
    follower: AssignmentFollower,
    run_id: str,
    initial_fps: float | None,
) -> list[CameraRun]:
    """The user's sources, one camera per source of ``options.recording``, or generated ones."""
    if options.recording is not None:
        recording = options.recording
        return [
            CameraRun(
                camera,
                replay=(
                    recording.offsets_s(camera.source_id),
                    options.speed,
                    options.loop,
                    recording.span_s(),
                ),
                truth="recorded",
            )
            for camera in recorded_cameras(
                contract,
                recording,
                follower,
                producer,
                loop=options.loop,
                initial_fps=initial_fps,
                quality=options.quality,
            )
        ]
    if options.sources:
        return [
            CameraRun(
                Camera(
                    contract,
                    spec.id,
                    spec.open(settings.camera.scene_size),
                    producer,
                    follower,
                    spec.fps or options.fps or settings.camera.fps,
                    options.quality or settings.camera.quality,
                    initial_fps=initial_fps,
                    allowed=spec.qualities,
                    reference=_reference(settings, contract, producer, spec),
                ),
                truth=spec.truth_kind,
            )
            for spec in options.sources
        ]
    return [
        CameraRun(
            Camera(
                contract,
                f"cam-{i}-{run_id}",
                SceneSource(options.seed + i, settings.camera.scene_size),
                producer,
                follower,
                options.fps or settings.camera.fps,
                options.quality or settings.camera.quality,
                initial_fps=initial_fps,
            )
        )
        for i in range(options.cameras)
    ]


def _reference(
    settings: Settings, contract: Contract, producer: Producer, spec: SourceSpec
) -> ReferenceCopies | None:
    """Reference copies for a ``truth = "golden"`` source; None for other sources.

    At the strongest quality with a detector, even when the source's own ``qualities``
    stop below it: the reference is the pipeline's best, and one copy every
    ``camera.golden_every_s`` is the price of having one (within its allowed qualities a
    source would be scored against itself).
    """
    if spec.truth != "golden":
        return None
    quality = max(settings.control.detect_qualities or settings.topics.qualities)
    return ReferenceCopies(contract, producer, quality, settings.camera.golden_every_s)


async def place_here(settings: Settings, contract: Contract) -> None:
    """Place the deployment's workflow on this machine alone and publish it.

    Raises:
        UpError: ``control.provision = demand``, which follows the frames that arrive,
            and only the control agent reads them.
    """
    if settings.control.provision == "demand":
        msg = (
            "control.provision = demand provisions detectors for the frames that arrive, "
            "which the control agent reads: run without --no-control"
        )
        raise UpError(msg)
    producer = Producer(producer_config(contract, "tierflow-up-placement"))

    async def send(key: bytes, value: bytes | None) -> None:
        producer.produce(contract.names.placement, key=key, value=value)

    result = await Placer(settings, send).place([local_node(settings, time.time_ns())])
    if await asyncio.to_thread(producer.flush, 10):
        msg = "the placement could not be published (broker unreachable?)"
        raise UpError(msg)
    if result is not None and result.unplaced:
        reasons = "; ".join(f"{u.instance}: {u.reason}" for u in result.unplaced)
        log.warning("placement left instances unplaced: %s", reasons)


async def _run_cameras(
    cams: list[CameraRun],
    producer: Producer,
    collector: MetricsCollector,
    stopping: Stopping,
    options: UpOptions,
    console: Console,
) -> float:
    """Run the cameras until their duration or a signal, watched; returns seconds they ran."""
    started = time.monotonic()
    stopping.cameras_running.set()
    for run in cams:
        run.start(stopping.stop, options.duration_s)
    await _watch(cams, collector, started, options, console)
    stopping.stop.set()
    for run in cams:
        if run.thread is not None:
            await asyncio.to_thread(run.thread.join)
    await asyncio.to_thread(producer.flush, 30)
    return time.monotonic() - started


async def _drain(
    cams: list[CameraRun], collector: MetricsCollector, drain_s: float, console: Console
) -> bool:
    """Wait until every produced frame has an outcome (or ``drain_s``), with a progress bar."""
    expected = {run.camera.source_id: run.camera.stats.accounted_on_topic for run in cams}
    with Progress(
        TextColumn("frames with an outcome"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("drain", total=sum(expected.values()))
        return await collector.wait_for(
            expected, drain_s, lambda done: bar.update(task, completed=done)
        )


def _on_signal(
    loop: asyncio.AbstractEventLoop, stopping: Stopping, main: asyncio.Task[Any] | None
) -> None:
    stopping.stop.set()
    if not stopping.cameras_running.is_set() and main is not None:
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

    cameras = [run.camera for run in cams]
    rates = Rates()
    if not options.live:
        while running():
            if options.progress is not None:
                options.progress(sum(run.camera.stats.captured for run in cams))
            await asyncio.sleep(0.5)
        return
    if not console.is_terminal:  # a log file: plain lines, no terminal control codes
        printed = time.monotonic()
        while running():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            rates.update(cameras, now)
            if now - printed >= PLAIN_EVERY_S:
                printed = now
                for line in plain_lines(collector.tallies, cameras, rates, now - started):
                    console.print(line, highlight=False)
        return
    with (
        Live(console=console, refresh_per_second=2) as live,
        contextlib.suppress(asyncio.CancelledError),
    ):
        while running():
            now = time.monotonic()
            rates.update(cameras, now)
            live.update(live_table(collector.tallies, cameras, rates, now - started))
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
        entry = {
            "captured": stats.captured,
            "sent": stats.sent,
            "produced": stats.produced,
            **tally.summary(),
        }
        entry["unaccounted"] = max(0, stats.accounted_on_topic - tally.accounted)
        entry["camera_dropped"] = dict(stats.dropped)
        entry["quality"] = stats.quality
        entry["switches"] = stats.switches
        if (reference := run.camera.reference) is not None:
            entry["reference_copies"] = {
                "quality": reference.quality,
                "sent": reference.sent,
                "delivered": reference.delivered,
                "failed": reference.failed,
            }
        entry["refused_ticks"] = stats.refused_ticks
        entry["fps"] = stats.fps
        entry["truth"] = run.truth
        entry["fps_in"] = round(stats.produced / max(elapsed_s, 1e-9), 2)
        entry["fps_out"] = round(tally.processed / max(elapsed_s, 1e-9), 2)
        sources[run.camera.source_id] = entry
    cameras = [run.camera.stats for run in cams]
    everyone = {
        **totals(collector.tallies.get(run.camera.source_id, SourceTally()) for run in cams),
        "captured": sum(s.captured for s in cameras),
        "sent": sum(s.sent for s in cameras),
        "produced": sum(s.produced for s in cameras),
        "unaccounted": sum(entry["unaccounted"] for entry in sources.values()),
        "camera_dropped": dict(sum((s.dropped for s in cameras), Counter[str]())),
    }
    everyone["fps_out"] = round(everyone["processed"] / max(elapsed_s, 1e-9), 2)
    return {
        "sources": sources,
        "totals": everyone,
        "output_dir": str(output_dir),
        "duration_s": round(elapsed_s, 2),
        "all_accounted": complete,
        "detector": settings.detector.backend,
        "workers": {
            w.name: {"exit": w.process.returncode if w.process else None, "restarts": w.restarts}
            for w in workers
        },
    }


def print_summary(summary: dict[str, Any]) -> None:
    """The summary as one JSON document on stdout."""
    print(json.dumps(summary, indent=2))
