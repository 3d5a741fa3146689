"""``tierflow node``: the agent of one machine, running what ``control.placement`` assigns it.

It announces the machine on ``control.nodes`` every heartbeat (AVEC's template, seed 004 §6:
cores, memory, accelerator, free disk, declared latency and bandwidth), follows
``control.placement``, and runs a ``tierflow worker`` for every service the newest placement
puts on this node (the thesis's back end, seed 003: instances are started and stopped as
placement changes), supervised (:class:`~tierflow.streams.workers.Supervisor`).

A service placed elsewhere now is stopped make-before-break: only once the registry shows it
live on another node (its consumer group holding its topic there), or once no node has it
any more. Its frames are never left without a consumer in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from tierflow.errors import TierflowError
from tierflow.settings import Settings
from tierflow.streams import metrics
from tierflow.streams.app import cancel
from tierflow.streams.discovery import ProbedRegistryReader
from tierflow.streams.nodes import CpuMeter, local_node
from tierflow.streams.workers import Supervisor, WorkerProcess, worker_env
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import TopicAdminError
from tierflow.topics.follow import Follower, topic_partitions
from tierflow.topics.records import PlacementRecord
from tierflow.topics.stages import StageName
from tierflow.topics.tables import LatestTable

log = logging.getLogger(__name__)


class NodeError(TierflowError):
    """The node agent cannot run what it was asked to."""


@dataclass(frozen=True, order=True)
class ServiceKey:
    """A service a worker runs: a stage, and the quality of a per-quality stage (detect)."""

    stage: StageName
    quality: int | None = None

    @property
    def name(self) -> str:
        """``<stage>`` or ``<stage>-<quality>``: the workflow task's and the worker's name."""
        return str(self.stage) if self.quality is None else f"{self.stage}-{self.quality}"

    @classmethod
    def of_task(cls, task: str) -> ServiceKey:
        """The service of a workflow task named ``resize``, ``detect-416``, ``draw``...

        Raises:
            NodeError: no tierflow stage has that name.
        """
        stage, _, quality = task.rpartition("-") if task[-1:].isdigit() else (task, "", "")
        try:
            return cls(StageName(stage), int(quality) if quality else None)
        except ValueError:
            msg = f"placement names task {task!r}, which no tierflow stage runs"
            raise NodeError(msg) from None


def whole(records: Iterable[PlacementRecord]) -> bool:
    """Whether every record of the newest placement has arrived (see ``instances``).

    Acting on half a placement would stop every service whose record has not come yet
    and start it again a moment later.
    """
    records = list(records)
    newest = max((r.epoch for r in records), default=None)
    mine = [r for r in records if r.epoch == newest]
    expected = max((r.instances or 0 for r in mine), default=0)
    return len(mine) >= expected


def placed(records: Iterable[PlacementRecord]) -> dict[str, set[ServiceKey]]:
    """Node -> the services the newest placement (highest epoch) puts there.

    Records of older epochs are what an earlier placement left behind; a task no tierflow
    stage runs (a research workflow's) is skipped with a warning. Callers check
    :func:`whole` first.
    """
    records = list(records)
    newest = max((r.epoch for r in records), default=None)
    by_node: dict[str, set[ServiceKey]] = {}
    for record in records:
        if record.epoch != newest:
            continue
        try:
            key = ServiceKey.of_task(record.task)
        except NodeError as exc:
            log.warning("%s", exc)
            continue
        by_node.setdefault(record.node, set()).add(key)
    return by_node


def changes(
    mine: set[ServiceKey],
    running: set[ServiceKey],
    everywhere: set[ServiceKey],
    live_elsewhere: set[ServiceKey],
) -> tuple[list[ServiceKey], list[ServiceKey]]:
    """What to start and what to stop, make-before-break.

    Args:
        mine: services placed on this node.
        running: services this node runs.
        everywhere: services placed on any node.
        live_elsewhere: services live on another node now.

    Returns:
        (start, stop), each sorted: start what is placed here and not running; stop what
        runs here but is placed elsewhere once it is live there, or placed nowhere.
    """
    start = sorted(mine - running)
    stop = sorted(key for key in running - mine if key not in everywhere or key in live_elsewhere)
    return start, stop


def metrics_slot(key: ServiceKey, qualities: Iterable[int]) -> int:
    """Offset of ``key``'s metrics port from the node agent's.

    Resize 1, draw 2, then one per catalogue quality in increasing order for the detectors
    (detect-320 3, detect-416 4, ...); a quality outside the catalogue has no topics, so its
    detector fails at start and shares the slot after the last.
    """
    if key.stage is StageName.RESIZE:
        return 1
    if key.stage is StageName.DRAW:
        return 2
    ordered = sorted(qualities)
    if key.quality in ordered:
        return 3 + ordered.index(key.quality)
    return 3 + len(ordered)


class NodeAgent:
    """Announces this node and runs the workers placement assigns to it.

    Args:
        settings: the node (``dataplane.node``, tier...), the workers' settings.
        log_dir: where each worker's log goes (``<service>.log``).
    """

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.contract = Contract.of(settings)
        self.node = settings.dataplane.node
        self.log_dir = log_dir
        self.workers: dict[ServiceKey, WorkerProcess] = {}
        self.retired: list[WorkerProcess] = []
        self.supervisor = Supervisor([], settings)
        # Placement epochs are the placer's clock in ms: one far in the future (forged, or a
        # clock gone wrong) would shadow every later placement, so it is refused.
        skew_ms = round(settings.camera.epoch_skew_s * 1000)
        self.placement = LatestTable(
            PlacementRecord, lambda record: record.epoch, lambda: time.time_ns() // 10**6 + skew_ms
        )
        self.registry = ProbedRegistryReader(self.contract, settings.dataplane.heartbeat_s)
        self._env = worker_env(settings)
        self._follower = Follower(
            self.contract,
            self.contract.names.placement,
            self._on_placement,
            client_id=f"tierflow-node-{self.node}",
        )
        self._producer = Producer(producer_config(self.contract, f"tierflow-node-{self.node}"))
        self._meter = CpuMeter()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciled_epoch = 0
        """The epoch of the newest placement the workers match (0: none yet)."""

    def _on_placement(self, key: bytes | None, value: bytes | None) -> None:
        self.placement.handle(key, value)
        self._changed.set()

    async def start(self) -> None:
        """Announce the node, read the placement and the registry, start reconciling."""
        self._announce()
        await self.registry.start()
        await self._follower.start()
        await self._follower.caught_up()
        await self.registry.caught_up()
        self.supervisor.start()
        self._tasks = [
            asyncio.create_task(self._announce_forever(), name="node-announce"),
            asyncio.create_task(self._reconcile_forever(), name="node-reconcile"),
        ]

    def _announce(self) -> None:
        record = local_node(self.settings, time.time_ns(), self._meter)
        self._producer.produce(
            self.contract.names.nodes, key=self.node.encode(), value=record.to_bytes()
        )
        self._producer.poll(0)

    async def _announce_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dataplane.heartbeat_s)
            try:
                self._announce()
            except Exception:  # a missed heartbeat must not stop the next one
                log.exception("node %s: heartbeat failed", self.node)

    async def _reconcile_forever(self) -> None:
        while True:
            self._changed.clear()  # before reading: a change during the pass wakes the next
            try:
                await self.reconcile()
            except Exception:
                log.exception("node %s: reconciling with the placement failed", self.node)
            # Placement changes wake it at once; a heartbeat re-checks the make-before-break
            # stops waiting for a service to come up elsewhere.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.settings.dataplane.heartbeat_s)

    async def reconcile(self) -> tuple[list[ServiceKey], list[ServiceKey]]:
        """Start and stop workers to match the newest placement; returns (started, stopped)."""
        records = self.placement.values()
        if not whole(records):
            return [], []  # the rest of this placement is on its way: wake again then
        by_node = placed(records)
        mine = by_node.get(self.node, set())
        everywhere = set().union(*by_node.values()) if by_node else set()
        live_elsewhere = {
            ServiceKey(s.stage, s.quality)
            for s in self.registry.view.live(time.time_ns())
            if s.node != self.node
        }
        start, stop = changes(mine, set(self.workers), everywhere, live_elsewhere)
        for key in start:
            worker = WorkerProcess(
                key.stage, key.quality, self.log_dir / f"{key.name}.log", self.node
            )
            worker.start(self._env_for(key))
            self.workers[key] = worker
            self.supervisor.workers.append(worker)
            log.info("node %s: started %s (placed here)", self.node, key.name)
        for key in stop:
            worker = self.workers.pop(key)
            self.supervisor.workers.remove(worker)
            await asyncio.to_thread(worker.stop)
            self.retired.append(worker)
            log.info("node %s: stopped %s (placed elsewhere or nowhere)", self.node, key.name)
        self.reconciled_epoch = max((r.epoch for r in records), default=0)
        return start, stop

    def _env_for(self, key: ServiceKey) -> dict[str, str]:
        """The worker's environment: the agent's settings, and a metrics port of its own.

        With a fixed ``dataplane.metrics_port`` (a container's), the agent serves there and
        each worker at ``port + metrics_slot(key)``, stable across restarts, so a static
        scrape configuration names them; with 0 every process picks a free port.
        """
        dp = self.settings.dataplane
        if dp.metrics_port == 0:
            return self._env
        port = dp.metrics_port + metrics_slot(key, self.settings.topics.qualities)
        own = self.settings.model_copy(
            update={"dataplane": dp.model_copy(update={"metrics_port": port})}
        )
        return worker_env(own)

    async def wait_placed(self, since_epoch: int, timeout_s: float) -> list[WorkerProcess]:
        """Wait until the workers match a placement of epoch ``since_epoch`` or later.

        Returns the workers then running (an earlier run's placement is not waited for).

        Raises:
            NodeError: no such placement within ``timeout_s``, or it placed nothing here.
        """
        deadline = time.monotonic() + timeout_s
        while self.reconciled_epoch < since_epoch:
            if time.monotonic() > deadline:
                msg = f"no placement reached node {self.node} within {timeout_s:.0f} s"
                raise NodeError(msg)
            await asyncio.sleep(0.1)
        if not self.workers:
            msg = f"the placement put no service on node {self.node}"
            raise NodeError(msg)
        return list(self.workers.values())

    async def stop(self) -> None:
        """Stop reconciling and every worker (gracefully, all at once), then the followers."""
        for task in self._tasks:
            await cancel(task)
        await self.supervisor.stop()
        running = list(self.workers.values())
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in running))
        self.retired.extend(running)
        self.workers.clear()
        await self._follower.stop()
        await self.registry.stop()
        await asyncio.to_thread(self._producer.flush, 10)

    def every_worker(self) -> list[WorkerProcess]:
        """The workers running and those stopped, for the summary."""
        return [*self.retired, *self.workers.values()]


async def serve_node(settings: Settings, log_dir: Path) -> None:
    """Run a node agent until SIGINT or SIGTERM (the body of ``tierflow node``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    endpoint = metrics.serve_announced(settings.dataplane)  # its restarts counter
    if not await _topics_exist(Contract.of(settings), stop):
        return
    agent = NodeAgent(settings, log_dir)
    await agent.start()
    log.info(
        "node %s (%s) running; workers log to %s; metrics at %s:%d",
        agent.node,
        settings.dataplane.tier,
        log_dir,
        endpoint.host,
        endpoint.port,
    )
    try:
        await stop.wait()
    finally:
        await agent.stop()
    log.info("node %s stopped", agent.node)


async def _topics_exist(contract: Contract, stop: asyncio.Event, period_s: float = 2.0) -> bool:
    """Wait until the control topics exist; False if stopped first.

    A cluster's topics job may still be running when node agents start; the wait is said
    once in the log.
    """
    names = contract.names
    said = False
    while not stop.is_set():
        try:
            for topic in (names.placement, names.registry, names.nodes):
                await asyncio.to_thread(topic_partitions, contract, topic)
            return True
        except TopicAdminError as exc:
            if not said:
                log.warning("node agent waiting for the topics: %s", exc)
                said = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
    return False
