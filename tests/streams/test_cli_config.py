"""``tierflow config show``: the effective settings, secrets masked, TOML that reads back."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, field_serializer

from tierflow.settings import load_settings
from tierflow.streams.cli import main
from tierflow.streams.cli.config import MASK, masked, to_toml

SECRET = "s3cret-Value-1"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TIERFLOW_* variable of the user's environment leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TIERFLOW_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tierflow.toml"
    path.write_text('[detector]\nbackend = "null"\n\n[camera]\nquality = 416\n')
    return path


def _show(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["config", "show", *argv]) == 0
    return capsys.readouterr().out


def test_toml_shows_the_file_and_the_environment_over_the_defaults(
    clean_env: pytest.MonkeyPatch, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("TIERFLOW_CAMERA__FPS", "12")
    clean_env.setenv("TIERFLOW_CAMERA__QUALITY", "320")  # the environment beats the file
    shown = tomllib.loads(_show(["--config", str(config_file)], capsys))
    assert shown["camera"]["fps"] == 12.0
    assert shown["camera"]["quality"] == 320
    assert shown["detector"]["backend"] == "null"
    assert shown["topics"]["qualities"] == [320, 416, 512]
    assert shown["connect_timeout_s"] == 30.0


def test_secrets_are_masked_in_toml_and_json(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("TIERFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("TIERFLOW_KAFKA__USERNAME", "cam1")
    clean_env.setenv("TIERFLOW_KAFKA__PASSWORD", SECRET)
    toml_out = _show([], capsys)
    json_out = _show(["--json"], capsys)
    for out, kafka in (
        (toml_out, tomllib.loads(toml_out)["kafka"]),
        (json_out, json.loads(json_out)["kafka"]),
    ):
        assert SECRET not in out
        assert kafka["password"] == MASK
        assert kafka["username"] == "cam1"


def test_json_matches_the_toml(
    clean_env: pytest.MonkeyPatch, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from_toml = tomllib.loads(_show(["--config", str(config_file)], capsys))
    from_json = json.loads(_show(["--json", "--config", str(config_file)], capsys))
    # TOML has no null: the unset settings are comments there and null in JSON.
    assert from_json["detector"]["onnx_model"] is None
    assert from_json["bootstrap_servers"] is None

    def without_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        return value

    assert without_none(from_json) == from_toml


def test_the_toml_is_a_config_file_that_gives_the_same_settings(
    clean_env: pytest.MonkeyPatch,
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("TIERFLOW_CAMERA__FPS", "12")
    clean_env.setenv("TIERFLOW_TOPICS__PREFIX", "exp-7")
    clean_env.setenv("TIERFLOW_CONTROL__FPS_LADDER", "[10, 5.5, 1]")
    effective = load_settings(config_file)
    shown = tmp_path / "shown.toml"
    shown.write_text(_show(["--config", str(config_file)], capsys))
    for name in ("TIERFLOW_CAMERA__FPS", "TIERFLOW_TOPICS__PREFIX", "TIERFLOW_CONTROL__FPS_LADDER"):
        clean_env.delenv(name)
    assert load_settings(shown) == effective
    assert load_settings(shown) != load_settings()  # the round trip is not the defaults'


class _Inner(BaseModel):
    token: SecretStr
    tokens: list[SecretStr]


class _Outer(BaseModel):
    name: str
    inner: _Inner
    revealed: SecretStr

    @field_serializer("revealed")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()


def test_masking_walks_nested_models_and_ignores_revealing_serialisers() -> None:
    model = _Outer(
        name="x",
        inner=_Inner(token=SecretStr("a1"), tokens=[SecretStr("b2"), SecretStr("c3")]),
        revealed=SecretStr("d4"),
    )
    assert model.model_dump(mode="json")["revealed"] == "d4"  # what masked() must not trust
    assert masked(model) == {
        "name": "x",
        "inner": {"token": MASK, "tokens": [MASK, MASK]},
        "revealed": MASK,
    }


def test_to_toml_quotes_and_nests_what_needs_it() -> None:
    data = {
        "top": 1,
        "unset": None,
        "a": {"plain": 'q"uote\n', "odd key": [1.5, float("inf")], "b": {"deep": True}},
    }
    text = to_toml(data)
    assert "# unset is unset" in text
    assert tomllib.loads(text) == {
        "top": 1,
        "a": {"plain": 'q"uote\n', "odd key": [1.5, float("inf")], "b": {"deep": True}},
    }
