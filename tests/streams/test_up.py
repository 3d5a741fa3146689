"""``tierflow up --json`` as a user runs it: worker processes, cameras, one summary."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.cli import tierflow

pytestmark = pytest.mark.kafka


def test_up_runs_the_pipeline_and_accounts_for_every_frame(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "annotated"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": f"up-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
    }
    result = tierflow(
        "up",
        "--cameras",
        "2",
        "--duration",
        "6",
        "--fps",
        "4",
        "--qualities",
        "512",
        "--json",
        "--output-dir",
        str(out),
        env=env,
        timeout_s=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["all_accounted"] is True
    assert len(summary["run_id"]) == 4
    assert summary["settings"]["topics"]["prefix"] == env["TIERFLOW_TOPICS__PREFIX"]
    assert summary["output_dir"] == str(out)
    assert set(summary["workers"]) == {"resize", "detect-512", "draw", "control"}
    assert all(w["exit"] == 0 for w in summary["workers"].values()), summary["workers"]
    assert len(summary["sources"]) == 2
    for source, entry in summary["sources"].items():
        assert entry["produced"] > 0
        ended = entry["processed"] + sum(entry["dropped"].values()) + entry["deadlettered"]
        assert ended == entry["produced"], (source, entry)
        assert entry["unaccounted"] == 0
        assert entry["processed"] > 0
        assert 0 < entry["latency_p50_s"] <= entry["latency_p99_s"]
        assert entry["f1"] is not None
        stored = list((out / source).glob("*.jpg"))
        assert len(stored) == entry["processed"]
