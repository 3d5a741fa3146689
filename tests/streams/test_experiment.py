"""``tierflow experiment docs/experiments/smoke.toml``: two policies, one recording, a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import tierflow

pytestmark = pytest.mark.kafka
SMOKE = Path(__file__).parents[2] / "docs" / "experiments" / "smoke.toml"


def test_smoke_experiment_compares_two_policies_on_the_same_frames(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "smoke"
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path)}
    result = tierflow("experiment", str(SMOKE), "--out", str(out), env=env, timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    recording = json.loads((out / "recording" / "manifest.json").read_text())
    assert results["recording"]["sha256"] == recording["sha256"]
    configs = results["configs"]
    assert set(configs) == {"milp", "fixed-512"}
    for name, config in configs.items():
        totals = config["summary"]["totals"]
        refused = sum(s["refused_ticks"] for s in config["summary"]["sources"].values())
        assert totals["captured"] + refused == recording["frames"], name  # every frame offered
        assert totals["unaccounted"] == 0, name
        assert totals["processed"] > 0, name
        rows = (out / name / "frames.jsonl").read_text().splitlines()
        assert len(rows) == totals["captured"], name  # one outcome per captured frame
        assert config["makespan_s"] > 0
    assert configs["fixed-512"]["summary"]["totals"]["sampled"] == 0
    assert configs["fixed-512"]["mean_quality_sent"] == 512
    report = (out / "report.md").read_text()
    assert "| milp |" in report and "| fixed-512 |" in report
    for plot in ("latency_cdf", "fps_over_time", "quality_over_time", "f1_per_quality"):
        png = out / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
        assert f"({plot}.png)" in report
