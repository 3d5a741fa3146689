from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from tierflow.errors import ConfigError
from tierflow.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_CONFIG", "TIERFLOW_TOPICS__PREFIX"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_use_the_local_broker() -> None:
    s = load_settings()
    assert s.uses_local_broker
    assert s.bootstrap == "127.0.0.1:9092"


def test_kafka_bootstrap_servers_is_honoured_without_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    s = load_settings()
    assert not s.uses_local_broker
    assert s.bootstrap == "kafka-1:9092,kafka-2:9092"


def test_nested_env_and_toml_file_with_env_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tierflow.toml"
    config.write_text(
        '[topics]\nprefix = "from-file"\nqualities = [512, 256]\n[frames]\njpeg_quality = 70\n'
    )
    monkeypatch.setenv("TIERFLOW_TOPICS__PREFIX", "from-env")
    s = load_settings(config)
    assert s.topics.prefix == "from-env"
    assert s.topics.qualities == (256, 512)
    assert s.frames.jpeg_quality == 70


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[frames]\ncodec = "png"\n')
    monkeypatch.setenv("TIERFLOW_CONFIG", str(config))
    assert load_settings().frames.codec == "png"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"topics": {"prefix": "bad prefix!"}}, "topics.prefix"),
        ({"topics": {"qualities": [512, 512]}}, "topics.qualities"),
        ({"frames": {"jpeg_quality": 101}}, "frames.jpeg_quality"),
        ({"frames": {"max_message_bytes": 10}}, "frames.max_message_bytes"),
        ({"broker": {"port": 70000}}, "broker.port"),
        ({"topics": {"unknown_key": 1}}, "topics.unknown_key"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(
    overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(**overrides)  # type: ignore[arg-type]  # invalid values are the point


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_a_worker_gets_exactly_its_parents_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tierflow.streams.workers import worker_env

    parent = load_settings(
        connect_timeout_s=7.5, camera={"fps": 12.0}, workers={"data_dir": tmp_path}
    )
    for name in [k for k in os.environ if k.startswith("TIERFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in worker_env(parent).items():
        monkeypatch.setenv(name, value)
    child = load_settings()
    assert child.bootstrap == parent.bootstrap  # the cluster goes as KAFKA_BOOTSTRAP_SERVERS
    assert child.model_copy(update={"bootstrap_servers": None}) == parent


def test_the_readme_settings_block_is_valid_settings(tmp_path: Path) -> None:
    """The README's example file loads: every section and field it names exists."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Settings") :]
    block = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    example = tmp_path / "example.toml"
    example.write_text(block.group(1))
    assert tomllib.loads(block.group(1))  # not empty
    settings = load_settings(example)
    assert settings.detector.conf_threshold == 0.25 and settings.topics.prefix == "exp1"


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"this is not toml [", "is not TOML"), (b"\xff\xfe[camera]", "is not UTF-8 text")],
)
def test_an_unreadable_config_file_is_a_config_error(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=said):
        load_settings(path)


def test_a_directory_given_as_config_file_is_named_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)


def test_a_list_variable_that_is_not_json_says_how_to_write_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIERFLOW_TOPICS__QUALITIES", "320,416")
    with pytest.raises(ConfigError, match=r"TIERFLOW_TOPICS__QUALITIES=\"\[320, 416\]\""):
        load_settings()
    monkeypatch.setenv("TIERFLOW_TOPICS__QUALITIES", "[320, 416]")
    assert load_settings().topics.qualities == (320, 416)


@pytest.mark.parametrize(
    ("field", "value"), [("policy", "bogus"), ("placement_policy", "bogus-placement")]
)
def test_an_unknown_policy_is_refused_when_settings_load(field: str, value: str) -> None:
    # Before: accepted, then the control agent failed every slot while `up` reported success.
    with pytest.raises(ConfigError, match=rf"control\.{field}.*unknown .*{value!r}; known: "):
        load_settings(control={field: value})


def test_every_named_policy_is_accepted() -> None:
    from tierflow.operators.planning.placement import POLICIES
    from tierflow.operators.planning.quality import POLICY_NAMES

    for policy in POLICY_NAMES:
        assert load_settings(control={"policy": policy}).control.policy == policy
    for placement in POLICIES:
        loaded = load_settings(control={"placement_policy": placement})
        assert loaded.control.placement_policy == placement


def test_a_camera_rate_above_a_thousand_frames_a_second_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"camera\.fps"):
        load_settings(camera={"fps": float("inf")})
