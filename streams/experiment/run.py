"""Running an experiment's configurations over one recording, each under its own prefix.

Every configuration replays the same recording (made first from generated cameras when the
file names none, deterministically by seed) through a whole ``tierflow up`` on topics of
its own prefix ``exp.<name>.<config>.<run>``, so configurations cannot see each other's
frames, assignments or metrics. After a run its ``metrics.frames`` is read to the end: the
per-frame records (``<config>/frames.jsonl``) are what the report's numbers and plots come
from, beside the run's ``tierflow up`` summary (``<config>/summary.json``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tierflow.infra.tiers.continuum import Continuum
from tierflow.infra.tiers.plan import ContinuumPlan
from tierflow.settings import Settings
from tierflow.streams.experiment.spec import ConfigSpec, ExperimentError, ExperimentSpec, TiersSpec
from tierflow.streams.experiment.tiers import (
    START_TIMEOUT_S,
    TiersRun,
    continuum_for,
    on_continuum,
    publish,
    publish_assignments,
    summary_of,
    wait_live,
)
from tierflow.streams.node import ServiceKey
from tierflow.streams.recording import Recording, record_cameras
from tierflow.topics.contract import Contract
from tierflow.topics.records import FrameRecord, RecordError, parse_frame_records
from tierflow.topics.snapshot import read_to_end

log = logging.getLogger(__name__)


def configured(settings: Settings, overrides: Mapping[str, Mapping[str, Any]]) -> Settings:
    """``settings`` with ``overrides`` (section -> field -> value) applied and checked.

    Raises:
        ExperimentError: an unknown section or field, or a value the settings refuse.
    """
    updates: dict[str, Any] = {}
    for section, values in overrides.items():
        current = getattr(settings, section, None)
        if current is None or not hasattr(current, "model_validate"):
            msg = f"settings: no section {section!r}"
            raise ExperimentError(msg)
        unknown = sorted(set(values) - set(type(current).model_fields))
        if unknown:
            msg = f"settings.{section}: unknown field(s) {unknown}"
            raise ExperimentError(msg)
        try:
            updates[section] = current.model_validate({**current.model_dump(), **values})
        except ValueError as exc:
            msg = f"settings.{section}: {exc}"
            raise ExperimentError(msg) from exc
    return settings.model_copy(update=updates)


def prepare_recording(spec: ExperimentSpec, out: Path, settings: Settings) -> Recording:
    """The experiment's recording: the one named, or generated cameras recorded into ``out``."""
    if spec.input.recording is not None:
        return Recording(spec.input.recording)
    from tierflow.streams.capture import SceneSource

    given = spec.input
    folder = out / "recording"
    if folder.exists():
        shutil.rmtree(folder)  # deterministic by seed: made again rather than trusted
    sources = {
        f"cam-{i}": SceneSource(given.seed + i, settings.camera.scene_size)
        for i in range(given.cameras)
    }
    frames = round(given.duration_s * given.fps)
    contract = Contract.of(settings)
    record_cameras(folder, contract, sources, frames, given.fps, given.quality)
    return Recording(folder)


def read_frame_records(contract: Contract, sources: set[str]) -> list[FrameRecord]:
    """Every ``metrics.frames`` record of ``sources`` on the prefix, first to last offset.

    A malformed message (not tierflow's) is skipped with a warning, as the collector does.
    """
    records: list[FrameRecord] = []

    def handle(message: Any) -> None:
        try:
            parsed = parse_frame_records(message.value())
        except RecordError as exc:
            log.warning("ignoring a malformed metrics record: %s", exc)
            return
        for record in parsed:
            if record.source in sources and not record.reference:  # copies are no frames
                records.append(record)

    read_to_end(contract, [contract.names.metrics_frames], handle, client_id="tierflow-exp")
    return records


def frame_row(record: FrameRecord) -> dict[str, Any]:
    """The columns of ``frames.jsonl``: what the report uses of a record."""
    return {
        "source": record.source,
        "sequence": record.sequence,
        "quality": record.quality,
        "epoch": record.epoch,
        "capture_ns": record.capture_ns,
        "outcome": record.outcome.value,
        "policy": record.policy.value if record.policy else None,
        "reason": record.reason,
        "stage": record.stage,
        "latency_s": record.latency_s,
        "tp": record.tp,
        "fp": record.fp,
        "fn": record.fn,
    }


async def run_config(
    settings: Settings,
    config: ConfigSpec,
    recording: Recording,
    console: Console,
    progress: Callable[[int], None],
) -> dict[str, Any]:
    """Run one configuration (``settings`` already carry its prefix); its up summary."""
    from tierflow.streams.up import UpOptions, run_up

    options = UpOptions(
        recording=recording,
        speed=config.speed,
        quality=config.quality,
        control=config.control,
        live=False,
        drain_s=config.drain_s,
        progress=progress,
    )
    return await run_up(settings, options, console)


def _plan(spec: ExperimentSpec, settings: Settings) -> list[tuple[ConfigSpec, Settings]]:
    """Every configuration with its settings and prefix, checked before anything runs.

    Raises:
        ExperimentError: a settings override or a quality the topics do not have.
    """
    run_id = uuid.uuid4().hex[:6]
    planned = []
    for config in spec.configs:
        own = configured(settings, config.settings)
        if config.quality is not None and config.quality not in own.topics.qualities:
            known = list(own.topics.qualities)
            msg = f"configs[{config.name}]: quality {config.quality} has no topics ({known})"
            raise ExperimentError(msg)
        prefix = f"exp.{spec.name}.{config.name}.{run_id}"
        topics = own.topics.model_copy(update={"prefix": prefix})
        planned.append((config, own.model_copy(update={"topics": topics})))
    return planned


def _run_on_tiers(
    run: TiersRun, recording: Recording, advance: Callable[[int], None]
) -> tuple[dict[str, Any], list[FrameRecord]]:
    """One configuration on the continuum (:mod:`.tiers`); its summary and records."""
    contract = run.contract
    missing = sorted(set(run.config.sources) - set(recording.by_source))
    if missing:
        msg = f"configs[{run.config.name}]: the recording has no source {', '.join(missing)}"
        raise ExperimentError(msg)
    keys = {ServiceKey.of_task(task) for task in run.tiers.placement}
    try:
        run.start_agents()
        publish(contract, run.tiers.placement, run.plan)
        asyncio.run(wait_live(contract, keys, START_TIMEOUT_S))
        publish_assignments(contract, run.config.assign)
        started = time.monotonic()
        replays = run.replay(recording, advance)
        expected = sum(c["produced"] + c["sampled"] for r in replays for c in r["sources"].values())
        deadline = time.monotonic() + run.config.drain_s
        while True:  # makespan: the backlog drains long after the last frame is sent
            records = read_frame_records(contract, set(recording.by_source))
            if len({(r.source, r.sequence) for r in records}) >= expected:
                break
            if time.monotonic() > deadline:
                log.warning("%s: outcomes still missing after drain_s", run.config.name)
                break
            time.sleep(2.0)
        elapsed = time.monotonic() - started
    finally:
        run.stop_agents()
    return summary_of(replays, records, elapsed), records


def _run_one(
    config: ConfigSpec,
    own: Settings,
    recording: Recording,
    out: Path,
    console: Console,
    advance: Callable[[int], None],
    tiers: tuple[TiersSpec, Continuum, ContinuumPlan] | None = None,
) -> dict[str, Any]:
    """Run one configuration and write ``out/<config>/``; its entry in the results."""
    from tierflow.streams.cli.common import create_topics

    create_topics(own)
    folder = out / config.name
    folder.mkdir(exist_ok=True)
    if tiers is not None:
        spec, continuum, plan = tiers
        run = TiersRun(own, config, spec, continuum, plan, folder)
        summary, records = _run_on_tiers(run, recording, advance)
    else:
        publish_assignments(Contract.of(own), config.assign)
        summary = asyncio.run(run_config(own, config, recording, console, advance))
        records = read_frame_records(Contract.of(own), set(recording.by_source))
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (folder / "frames.jsonl").open("w") as f:
        for record in records:
            f.write(json.dumps(frame_row(record)) + "\n")
    return {
        "prefix": own.topics.prefix,
        "mode": config.mode,
        "control": config.control,
        "settings": config.settings,
        "assign": dict(config.assign),
        "sources": list(config.sources),
        "summary": summary,
        "frames_file": str(folder / "frames.jsonl"),
    }


def run_pipeline_experiment(
    spec: ExperimentSpec,
    out: Path,
    settings: Settings,
    console: Console,
    keep_topics: bool = False,
) -> dict[str, Any]:
    """Run every configuration of ``spec`` and write ``out/<config>/``; returns the results.

    A configuration that fails is reported (``failed``) and the others still run; Ctrl-C
    ends the experiment after the running one, with the report of those that finished.
    Each configuration's topics are deleted afterwards whatever happened (unless
    ``keep_topics``).
    """
    from tierflow.streams.cli.common import ensure_cluster
    from tierflow.topics.admin import delete_catalogue

    tiers = None
    if spec.tiers is not None:
        with console.status(f"bringing up the continuum of {spec.tiers.scenario}"):
            continuum, plan = continuum_for(settings, spec.tiers)
        settings = on_continuum(settings, continuum, plan)
        tiers = (spec.tiers, continuum, plan)
    planned = _plan(spec, settings)
    common = configured(settings, spec.raw.get("settings", {}))
    out.mkdir(parents=True, exist_ok=True)
    with console.status("preparing the recording"):
        recording = prepare_recording(spec, out, common)
    total = int(recording.manifest["frames"])
    ensure_cluster(settings)
    results: dict[str, Any] = {
        "experiment": spec.name,
        "description": spec.description,
        "recording": {
            "path": str(recording.folder),
            "sha256": recording.sha256,
            "frames": total,
            "sources": sorted(recording.by_source),
            "span_s": recording.manifest["span_s"],
        },
        "configs": {},
        "failed": {},
    }
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with recording, Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        for config, own in planned:
            task = bar.add_task(f"{config.name} ({config.mode})", total=total)

            def advance(done: int, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            try:
                entry = _run_one(config, own, recording, out, console, advance, tiers)
                results["configs"][config.name] = entry
                bar.update(task, completed=total)
            except KeyboardInterrupt:
                results["failed"][config.name] = "interrupted (Ctrl-C)"
                break
            except Exception as exc:  # one configuration must not lose the others
                log.exception("configuration %s failed", config.name)
                results["failed"][config.name] = repr(exc)
            finally:
                if not keep_topics:
                    try:
                        delete_catalogue(Contract.of(own))
                    except Exception as exc:  # clean-up is best effort, never the result
                        log.warning("topics of %s not deleted: %s", own.topics.prefix, exc)
    return results
