"""One registry of stages: the CLI and tierflow up take their services from it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tierflow.errors import ConfigError
from tierflow.operators.planning.workflow import pipeline_workflow
from tierflow.settings import Settings
from tierflow.streams.cli import build_parser
from tierflow.streams.node import ServiceKey
from tierflow.streams.stages import STAGES, build_stage
from tierflow.streams.workers import WorkerProcess
from tierflow.topics.stages import PIPELINE, StageName


def _worker_choices() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    worker = sub.choices["worker"]
    stage = next(a for a in worker._actions if a.dest == "stage")
    return list(stage.choices or [])


def test_the_worker_command_offers_every_registered_service() -> None:
    assert _worker_choices() == [str(name) for name in STAGES]


def test_the_placed_pipeline_is_one_worker_per_service_and_one_detector_per_quality(
    tmp_path: Path,
) -> None:
    tasks = [t.name for t in pipeline_workflow((512, 320)).tasks]
    assert tasks == ["resize", "detect-320", "detect-512", "draw"]
    keys = [ServiceKey.of_task(t) for t in tasks]
    assert {k.stage for k in keys} == set(STAGES) - {StageName.CONTROL}
    assert [k.name for k in keys] == tasks
    detect = WorkerProcess(keys[1].stage, keys[1].quality, tmp_path / "d.log", "here")
    assert detect.args == ["detect", "--quality", "320", "--instance-id", "detect-320@here"]


def test_every_service_of_the_pipeline_is_registered() -> None:
    assert set(PIPELINE) - {StageName.CAMERA} <= set(STAGES)
    assert [name for name, spec in STAGES.items() if spec.per_quality] == [StageName.DETECT]


def test_a_detector_needs_a_quality_that_has_topics(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="needs a quality"):
        build_stage(settings, StageName.DETECT)
    with pytest.raises(ConfigError, match="quality 999 has no topics"):
        build_stage(settings, StageName.DETECT, 999)
    with pytest.raises(ConfigError, match="runs no service"):
        build_stage(settings, StageName.CAMERA)
