"""The tierflow command: help on every subcommand, and the main job on the real broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.cli import tierflow
from tierflow.streams.cli import build_parser, main

COMMANDS = [
    [],
    ["up"],
    ["worker"],
    ["camera"],
    ["check"],
    ["kafka"],
    ["kafka", "install"],
    ["kafka", "up"],
    ["kafka", "down"],
    ["kafka", "status"],
    ["topics"],
    ["topics", "create"],
    ["topics", "describe"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tierflow")
def test_every_subcommand_explains_itself(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tierflow")
    assert "KAFKA_BOOTSTRAP_SERVERS" in out


def test_bad_settings_exit_2_with_the_field_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERFLOW_FRAMES__JPEG_QUALITY", "500")
    assert main(["kafka", "status"]) == 2
    assert "frames.jpeg_quality" in capsys.readouterr().err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "topics", "describe"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.kafka
def test_check_round_trips_a_frame_on_the_real_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": f"cli-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path),
    }
    result = tierflow("check", "--quality", "416", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    trip = summary["round_trip"]
    assert trip["from"] == f"{env['TIERFLOW_TOPICS__PREFIX']}.frames.raw.416"
    assert trip["to"] == f"{env['TIERFLOW_TOPICS__PREFIX']}.frames.annotated"
    assert trip["frame_bytes"] > 1000 and 0 < trip["latency_s"] < 60
    described = tierflow("topics", "describe", "--json", env=env)
    assert described.returncode == 0, described.stdout
    status = tierflow("kafka", "status", env=env)
    assert status.returncode == 0 and json.loads(status.stdout) == {
        "external": True,
        "bootstrap": kafka_bootstrap,
        "answering": True,
    }


@pytest.mark.kafka
def test_quality_without_topics_is_a_clear_error(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": f"cli-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path),
    }
    result = tierflow("check", "--quality", "999", env=env)
    assert result.returncode == 2
    assert "quality 999 has no topics" in result.stderr


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["sources", "sample", "{tmp}/s", "--fps", "inf"], "--fps must be a finite number"),
        (["check", "--timeout", "0"], "--timeout must be a finite number above 0"),
        (["record", "{tmp}/r", "--duration", "nan"], "--duration must be positive"),
        (["record", "{tmp}/r", "--quality", "0", "--frames", "3"], "--quality must be positive"),
    ],
)
def test_options_out_of_range_exit_2_before_anything_runs(
    command: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: inf hung `sources sample`, nan and inf crashed `record`, 0 recorded at 512 px,
    # and `check --timeout 0` sent a frame and blamed the broker.
    assert main([part.format(tmp=tmp_path) for part in command]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


@pytest.mark.kafka
def test_a_worker_on_a_prefix_without_topics_exits_2_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Before: it logged missing-topic errors ten times a second and ignored SIGTERM.
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": f"cli-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path),
    }
    result = tierflow("worker", "resize", env=env, timeout_s=60.0)
    assert result.returncode == 2, result.stderr
    assert "do not exist" in result.stderr and "tierflow topics create" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_refuses_a_quality_without_topics_before_it_dials_the_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: it started (or waited for) the broker and created 17 topics first.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("TIERFLOW_CONNECT_TIMEOUT_S", "30")
    assert main(["up", "--quality", "999", "--duration", "5", "--json"]) == 2
    err = capsys.readouterr().err
    assert "camera quality 999 has no topics" in err and "127.0.0.1:1" not in err


def test_up_refuses_the_onnx_backend_without_a_model_file_once_and_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: every detect worker failed on it in turn and the error was printed per worker.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["up", "--backend", "onnx", "--duration", "3"]) == 2
    assert capsys.readouterr().err.count("the onnx backend needs a model file") == 1
    missing = tmp_path / "none.onnx"
    assert main(["up", "--backend", "onnx", "--model", str(missing), "--duration", "3"]) == 2
    assert f"the onnx model {missing} is not a file" in capsys.readouterr().err
