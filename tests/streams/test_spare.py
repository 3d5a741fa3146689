"""The hot spare: an interpreter with tierflow imported becomes the command it is handed."""

from __future__ import annotations

import os
from pathlib import Path

from tierflow.streams.workers import WorkerProcess, spawn_spare
from tierflow.topics.stages import StageName


def test_a_spare_runs_the_worker_it_is_handed_with_its_environment_and_log(
    tmp_path: Path,
) -> None:
    spare = spawn_spare(dict(os.environ))
    worker = WorkerProcess(StageName.DETECT, 416, tmp_path / "logs" / "detect-416.log", "here")
    # A quality with no topics: the worker fails at once, after reading the settings that
    # the order's environment carries; its error is written to the worker's log.
    env = {**os.environ, "TIERFLOW_TOPICS__QUALITIES": "[512]"}
    worker.adopt(spare, env)
    assert worker.process is spare
    assert spare.wait(timeout=60) == 2
    log = worker.log_path.read_text()
    assert "quality 416" in log, log


def test_a_spare_told_nothing_exits_quietly() -> None:
    spare = spawn_spare(dict(os.environ))
    assert spare.stdin is not None
    spare.stdin.close()
    assert spare.wait(timeout=60) == 0
