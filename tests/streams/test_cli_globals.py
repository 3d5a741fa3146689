"""Global options in any position, help that shows defaults and variables, log levels."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tierflow.settings import load_settings
from tierflow.streams.cli import build_parser, configure_logging, main, parse_args
from tierflow.streams.cli.common import env_help, setting_field


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command of ``parser`` with its words, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


ALL = list(_commands(build_parser()))


def _help(words: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*words, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_walk_finds_the_nested_commands() -> None:
    words = {w for w, _ in ALL}
    assert {("topics", "delete"), ("lag",), ("config", "show"), ("worker",)} <= words
    assert len(ALL) > 30


@pytest.mark.parametrize("words", [w for w, _ in ALL], ids=lambda w: " ".join(w) or "tierflow")
def test_every_help_lists_the_global_options_without_default_noise(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _help(words, capsys)
    assert out.startswith("usage: tierflow")
    assert "--config FILE" in out and "-v, --verbose" in out
    for noise in ("default: None", "(default None)", "(default False)", "(default [])"):
        assert noise not in out


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("status",), "seconds of records shown (default 10)"),
        (("plan",), "(default milp)"),
        (("topics", "delete"), "seconds for the deletions to complete (default 30)"),
        (("kafka", "up"), "(default 1; env TIERFLOW_BROKER__BROKERS)"),
    ],
)
def test_help_shows_argparse_defaults_and_setting_variables(
    words: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Help is wrapped: compare with the line breaks and indentation folded.
    assert expected in " ".join(_help(words, capsys).split())


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("camera",), "env TIERFLOW_CAMERA__FPS"),
        (("camera",), "env TIERFLOW_CAMERA__QUALITY"),
        (("up",), "env TIERFLOW_DETECTOR__BACKEND"),
        (("up",), "env TIERFLOW_DATAPLANE__OUTPUT_DIR"),
        (("up",), "env TIERFLOW_CONTROL__POLICY"),
        (("worker",), "env TIERFLOW_DETECTOR__ONNX_MODEL"),
        (("worker",), "env TIERFLOW_WORKERS__INSTANCE_ID"),
    ],
)
def test_pipeline_options_name_their_variables(
    words: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in " ".join(_help(words, capsys).split())


def test_env_help_renders_the_models_default_and_variable() -> None:
    assert env_help("camera.fps") == "(default 25; env TIERFLOW_CAMERA__FPS)"
    assert env_help("detector.backend") == "(default haar; env TIERFLOW_DETECTOR__BACKEND)"
    assert env_help("topics.qualities") == "(default 320 416 512; env TIERFLOW_TOPICS__QUALITIES)"
    assert env_help("dataplane.store_frames") == (
        "(default true; env TIERFLOW_DATAPLANE__STORE_FRAMES)"
    )
    # None is no default worth printing; a top-level field's alias is its variable.
    assert env_help("detector.onnx_model") == "(env TIERFLOW_DETECTOR__ONNX_MODEL)"
    assert env_help("bootstrap_servers") == "(env KAFKA_BOOTSTRAP_SERVERS)"
    assert env_help("connect_timeout_s") == "(default 30; env TIERFLOW_CONNECT_TIMEOUT_S)"


@pytest.mark.parametrize("setting", ["camera.fsp", "camera.fps.deeper", "kamera.fps", "nope"])
def test_env_help_refuses_a_setting_that_does_not_exist(setting: str) -> None:
    with pytest.raises(ValueError, match="no setting"):
        env_help(setting)


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        ("camera.fps", "7.5", 7.5),
        ("detector.backend", "null", "null"),
        ("dataplane.output_dir", "/tmp/frames-out", Path("/tmp/frames-out")),
        ("broker.brokers", "3", 3),
        ("connect_timeout_s", "4", 4.0),
    ],
)
def test_the_variable_named_in_help_is_the_one_settings_read(
    setting: str, text: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    _, variable = setting_field(setting)
    monkeypatch.setenv(variable, text)
    loaded: object = load_settings()
    for part in setting.split("."):
        loaded = getattr(loaded, part)
    assert loaded == value


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["topics", "describe"], 0),
        (["-v", "topics", "describe"], 1),
        (["topics", "describe", "-v"], 1),
        (["topics", "-v", "describe"], 1),
        (["-v", "topics", "describe", "-v"], 2),
        (["-v", "topics", "-v", "describe", "--verbose"], 3),
        (["plan", "x.toml", "-vv"], 2),
    ],
)
def test_verbose_counts_add_up_in_every_position(argv: list[str], verbose: int) -> None:
    args = parse_args(argv)
    assert args.verbose == verbose
    assert not [k for k in vars(args) if k.startswith("verbose@")]


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (["plan", "x.toml"], None),
        (["--config", "a.toml", "plan", "x.toml"], Path("a.toml")),
        (["plan", "x.toml", "--config", "b.toml"], Path("b.toml")),
        (["topics", "describe", "--config", "b.toml"], Path("b.toml")),
        # Both: the one after the command, the more specific, wins.
        (["--config", "a.toml", "plan", "x.toml", "--config", "b.toml"], Path("b.toml")),
    ],
)
def test_config_is_accepted_before_and_after_the_command(
    argv: list[str], config: Path | None
) -> None:
    assert parse_args(argv).config == config


def test_config_after_the_command_is_the_file_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    missing = tmp_path / "after.toml"
    assert main(["topics", "describe", "--config", str(missing)]) == 2
    assert f"config file {missing} does not exist" in capsys.readouterr().err


def test_a_config_file_given_after_the_command_sets_the_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    monkeypatch.delenv("TIERFLOW_CAMERA__FPS", raising=False)
    path = tmp_path / "s.toml"
    path.write_text("[camera]\nfps = 9.0\n")
    assert main(["config", "show", "--json", "--config", str(path)]) == 0
    assert '"fps": 9.0' in capsys.readouterr().out


@pytest.fixture
def own_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tierflow")
    before = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(before)


@pytest.mark.parametrize("command", ["worker", "node"])
def test_services_log_info_without_v(command: str, own_logger: logging.Logger) -> None:
    configure_logging(0, command)
    assert own_logger.level == logging.INFO


@pytest.mark.parametrize("command", ["plan", "topics", "up", "camera"])
def test_other_commands_stay_at_warnings_without_v(
    command: str, own_logger: logging.Logger
) -> None:
    configure_logging(0, command)
    assert own_logger.level == logging.NOTSET


def test_v_gives_info_to_every_command_and_vv_leaves_debug_to_the_root(
    own_logger: logging.Logger,
) -> None:
    configure_logging(1, "plan")
    assert own_logger.level == logging.INFO
    own_logger.setLevel(logging.NOTSET)
    configure_logging(2, "worker")
    assert own_logger.level == logging.NOTSET  # inherits the root's DEBUG
