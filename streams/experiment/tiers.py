"""An experiment configuration on the emulated continuum (``[tiers]`` of an experiment file).

Where a local configuration is one ``tierflow up``, a configuration on tiers is the seed
paper's deployment (000, §VII) on the hosts ``tierflow tiers`` emulates:

1. a node agent (``tierflow node``) inside every host the placement names, in its network
   namespace and CPU group, reaching the broker across its links;
2. the placement of ``[tiers.placement]`` published on ``control.placement`` (one epoch,
   every record saying how many it has), which the node agents enact;
3. the adaptation, if any, published once on ``control.assignments`` (``assign``);
4. the recording replayed from the camera hosts (source i from ``cameras[i % n]``),
   following the assignments;
5. the outcomes awaited until every produced frame has one (or ``drain_s`` passes), read
   from ``metrics.frames`` and summarised as ``tierflow up`` summarises a run.

The continuum is brought up if it is not (and left up: ``tierflow tiers down`` ends it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tierflow.infra.tiers.continuum import Continuum
from tierflow.infra.tiers.plan import ContinuumPlan
from tierflow.settings import Settings
from tierflow.streams.accounting import SourceTally, totals
from tierflow.streams.discovery import ProbedRegistryReader
from tierflow.streams.experiment.spec import ConfigSpec, ExperimentError, TiersSpec
from tierflow.streams.node import ServiceKey
from tierflow.streams.recording import Recording
from tierflow.streams.workers import worker_env
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.records import Assignment, FrameRecord, PlacementRecord

log = logging.getLogger(__name__)
CLI = [sys.executable, "-m", "tierflow.streams.cli"]
START_TIMEOUT_S = 180.0


def continuum_for(settings: Settings, tiers: TiersSpec) -> tuple[Continuum, ContinuumPlan]:
    """The continuum of ``tiers.scenario``, brought up unless it is already.

    Raises:
        InfraError: the machine cannot emulate it, or another continuum is up.
    """
    continuum = Continuum(settings)
    plan = continuum.plan()
    if plan is None or plan.scenario != tiers.scenario.resolve():
        plan = continuum.up(tiers.scenario)
    for host in {*tiers.cameras, *tiers.placement.values()}:
        plan.host(host)  # an InfraError names the hosts the scenario has
    return continuum, plan


def on_continuum(settings: Settings, continuum: Continuum, plan: ContinuumPlan) -> Settings:
    """``settings`` pointed at the continuum's broker from this (the host's) namespace."""
    bootstrap = continuum.cluster(plan).contract.bootstrap
    return settings.model_copy(update={"bootstrap_servers": bootstrap})


def publish(contract: Contract, placement: Mapping[str, str], plan: ContinuumPlan) -> None:
    """The fixed placement as one epoch, and nothing else (no placer runs)."""
    epoch = time.time_ns() // 1_000_000
    producer = Producer(producer_config(contract, "tierflow-exp-placement"))
    for task, node in sorted(placement.items()):
        ServiceKey.of_task(task)  # a NodeError names a task no stage runs
        record = PlacementRecord(
            instance=f"{task}#0",
            task=task,
            node=node,
            tier=plan.host(node).tier.value,
            share=1.0,
            epoch=epoch,
            policy="experiment",
            instances=len(placement),
        )
        producer.produce(contract.names.placement, key=record.instance, value=record.to_bytes())
    if producer.flush(30):
        msg = "the placement could not be published"
        raise ExperimentError(msg)


def publish_assignments(contract: Contract, assign: Mapping[str, int]) -> None:
    """The adaptation applied once: each named source's quality, under one epoch."""
    if not assign:
        return
    epoch = time.time_ns() // 1_000_000
    producer = Producer(producer_config(contract, "tierflow-exp-assign"))
    for source, quality in sorted(assign.items()):
        record = Assignment(source=source, quality=quality, epoch=epoch, pipeline="experiment")
        producer.produce(contract.names.assignments, key=source, value=record.to_bytes())
    if producer.flush(30):
        msg = "the assignments could not be published"
        raise ExperimentError(msg)


async def wait_live(contract: Contract, keys: set[ServiceKey], timeout_s: float) -> None:
    """Until the registry shows every service of ``keys`` live (group assigned)."""
    reader = ProbedRegistryReader(contract, period_s=0.5)
    await reader.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            live = {ServiceKey(s.stage, s.quality) for s in reader.view.live(time.time_ns())}
            if keys <= live:
                return
            if time.monotonic() > deadline:
                missing = sorted(k.name for k in keys - live)
                msg = f"services {missing} not live within {timeout_s:.0f} s on the continuum"
                raise ExperimentError(msg)
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


def summary_of(
    replays: list[dict[str, Any]], records: list[FrameRecord], elapsed_s: float
) -> dict[str, Any]:
    """The run summarised as ``tierflow up --json`` does, from the replays' counts."""
    counts: dict[str, dict[str, Any]] = {}
    for replay in replays:
        counts.update(replay["sources"])
    tallies = {source: SourceTally() for source in counts}
    now = time.monotonic()
    for record in sorted(records, key=lambda r: r.capture_ns):
        if record.source in tallies:
            tallies[record.source].add(record, now)
    sources = {}
    for source, c in counts.items():
        tally = tallies[source]
        entry = {"captured": c["captured"], "sent": c["sent"], "produced": c["produced"]}
        entry |= tally.summary()
        entry["unaccounted"] = max(0, c["produced"] + c["sampled"] - tally.accounted)
        entry["camera_dropped"] = c["dropped"]
        entry["quality"], entry["fps"] = c["quality"], c["fps"]
        entry["fps_out"] = round(tally.processed / max(elapsed_s, 1e-9), 2)
        sources[source] = entry
    everyone = {
        **totals(tallies.values()),
        "captured": sum(c["captured"] for c in counts.values()),
        "sent": sum(c["sent"] for c in counts.values()),
        "produced": sum(c["produced"] for c in counts.values()),
        "unaccounted": sum(e["unaccounted"] for e in sources.values()),
        "camera_dropped": dict(sum((Counter(c["dropped"]) for c in counts.values()), Counter())),
    }
    everyone["fps_out"] = round(everyone["processed"] / max(elapsed_s, 1e-9), 2)
    return {
        "sources": sources,
        "totals": everyone,
        "duration_s": round(elapsed_s, 2),
        "all_accounted": everyone["unaccounted"] == 0,
    }


class TiersRun:
    """One configuration on the continuum: node agents, placement, replays, outcomes.

    Args:
        settings: the configuration's settings (its prefix), pointed at the continuum.
        config: the configuration.
        tiers: where things run.
        continuum, plan: the continuum that is up.
        folder: where logs go (``<folder>/logs/<host>/``).
    """

    def __init__(
        self,
        settings: Settings,
        config: ConfigSpec,
        tiers: TiersSpec,
        continuum: Continuum,
        plan: ContinuumPlan,
        folder: Path,
    ) -> None:
        self.settings = settings
        self.config = config
        self.tiers = tiers
        self.continuum = continuum
        self.plan = plan
        self.folder = folder
        self.contract = Contract.of(settings)
        self.agents: list[subprocess.Popen[bytes]] = []

    def _on(
        self, host: str, argv: list[str], log: Path, capture: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` with this configuration's settings.

        Output goes to ``log``; with ``capture`` only stderr does and the caller reads stdout.
        """
        command, env = self.continuum.command(host, argv)
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]  # the host's own way to the broker
        env = {**worker_env(self.settings), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        env["TIERFLOW_DATAPLANE"] = self.settings.dataplane.model_copy(
            update={"node": host, "tier": self.plan.host(host).tier.value}
        ).model_dump_json()
        with log.open("wb") as out:
            return subprocess.Popen(  # noqa: S603 - our own CLI, argv built here
                command,
                env=env,
                start_new_session=True,
                stdout=subprocess.PIPE if capture else out,
                stderr=out if capture else subprocess.STDOUT,
            )

    def start_agents(self) -> None:
        """A node agent on every host the placement names."""
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for host in sorted(set(self.tiers.placement.values())):
            (logs / host).mkdir(parents=True, exist_ok=True)
            argv = [*CLI, "-v", "node", "--node", host, "--log-dir", str(logs / host)]
            self.agents.append(self._on(host, argv, logs / f"node-{host}.log"))

    def replay(self, recording: Recording, progress: Callable[[int], None]) -> list[dict[str, Any]]:
        """Replay every source from its camera host, at once; their summaries."""
        hosts = self.tiers.cameras
        by_host: dict[str, list[str]] = {}
        chosen = self.config.sources or tuple(sorted(recording.by_source))
        for i, source in enumerate(chosen):
            by_host.setdefault(hosts[i % len(hosts)], []).append(source)
        speed = "max" if self.config.speed is None else str(self.config.speed)
        replays = []
        for host, sources in sorted(by_host.items()):
            argv = [*CLI, "replay", str(recording.folder), "--prefix", self.settings.topics.prefix]
            argv += ["--speed", speed, *(f"--source={s}" for s in sources)]
            if not self.config.assign:
                argv.append("--no-follow")
            log = self.folder / "logs" / f"replay-{host}.log"
            replays.append(self._on(host, argv, log, capture=True))
        summaries = []
        for process in replays:
            out, _ = process.communicate()
            if process.returncode != 0:
                msg = f"a replay on the continuum failed (exit {process.returncode})"
                raise ExperimentError(msg)
            summaries.append(json.loads(out))
        progress(sum(s["sources"][k]["produced"] for s in summaries for k in s["sources"]))
        return summaries

    def stop_agents(self) -> None:
        """SIGTERM every node agent (they stop their workers), then wait."""
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGTERM)
        for agent in self.agents:
            try:
                agent.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
        self.agents.clear()
