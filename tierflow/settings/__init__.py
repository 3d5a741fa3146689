"""The one typed settings object of tierflow.

Values come, highest precedence first, from keyword arguments, environment variables
(``TIERFLOW_`` prefix, ``__`` between nested names, e.g. ``TIERFLOW_TOPICS__PREFIX=exp1``),
a TOML file (``--config`` or ``TIERFLOW_CONFIG``), then the defaults below.
``KAFKA_BOOTSTRAP_SERVERS`` is honoured without the prefix because it is the name every
Kafka tool and CI system already uses. A ``TIERFLOW_`` variable that names no section is
refused rather than ignored.

Nothing else in tierflow reads the environment or hard-codes a tunable.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tierflow.errors import ConfigError
from tierflow.files import read_toml
from tierflow.infra.tiers.config import TierSettings
from tierflow.settings.control import ControlSettings, PrometheusSettings
from tierflow.settings.sections import (
    WILDCARD_HOSTS,
    CameraSettings,
    DataPlaneSettings,
    DetectorSettings,
    FrameSettings,
    LocalBrokerSettings,
    TopicSettings,
    WorkerSettings,
)
from tierflow.topics.security import KafkaSettings

__all__ = [
    "CONFIG_ENV",
    "WILDCARD_HOSTS",
    "CameraSettings",
    "ControlSettings",
    "DataPlaneSettings",
    "DetectorSettings",
    "FrameSettings",
    "LocalBrokerSettings",
    "PrometheusSettings",
    "Settings",
    "TopicSettings",
    "WorkerSettings",
    "load_settings",
]
CONFIG_ENV = "TIERFLOW_CONFIG"
# The file given to load_settings(); a context variable rather than a mutated environment.
_config_file: ContextVar[Path | None] = ContextVar("tierflow_config_file", default=None)


class Settings(BaseSettings):
    """Every tunable of tierflow, in one frozen object."""

    model_config = SettingsConfigDict(
        env_prefix="TIERFLOW_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
        description="An existing Kafka cluster; when unset, tierflow starts its local broker.",
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a command waits for the Kafka cluster to answer before it gives up with "
            "one line naming the address (exit 2)."
        ),
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: LocalBrokerSettings = Field(default_factory=LocalBrokerSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    frames: FrameSettings = Field(default_factory=FrameSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    dataplane: DataPlaneSettings = Field(default_factory=DataPlaneSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    tiers: TierSettings = Field(default_factory=TierSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the TOML file named by TIERFLOW_CONFIG."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def uses_local_broker(self) -> bool:
        """True when no external cluster is configured and tierflow runs its own broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        """The ``host:port[,host:port]`` list every client connects to."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        # Every node of a local cluster, so a client still bootstraps when node 1 is down.
        b = self.broker
        return ",".join(f"{b.host}:{b.port + 2 * i}" for i in range(b.brokers))


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    """Refuse a ``TIERFLOW_`` variable that names no setting (pydantic would ignore it).

    Misspelled keys inside a section are refused by the sections themselves (extra
    "forbid"); a misspelled section (``TIERFLOW_CAMRA__FPS``) matches no field at all.

    Raises:
        ConfigError: naming the variable, and the sections it may have meant.
    """
    prefix = Settings.model_config.get("env_prefix", "")
    known = {name for name in Settings.model_fields if name != "bootstrap_servers"}
    for variable in sorted(environ):
        if not variable.upper().startswith(prefix) or variable.upper() == CONFIG_ENV:
            continue
        section = variable[len(prefix) :].lower().split("__", 1)[0]
        if section in known:
            continue
        if section == "bootstrap_servers":
            msg = f"{variable} is not read: the cluster is KAFKA_BOOTSTRAP_SERVERS"
        else:
            close = difflib.get_close_matches(section, sorted(known), n=1)
            hint = f"did you mean {prefix}{close[0].upper()}? " if close else ""
            msg = (
                f"{variable} names no setting: {section!r} is not a section; {hint}"
                f"sections: {', '.join(sorted(known))}"
            )
        raise ConfigError(msg)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the environment and an optional TOML file.

    Args:
        config_file: a TOML file; overrides ``TIERFLOW_CONFIG`` when given.
        **overrides: field values that win over every other source.

    Raises:
        ConfigError: the file is missing or a value is invalid; the message names the field.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    named = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if named is not None and not named.is_file():
        what = "is a directory, not a file" if named.is_dir() else "does not exist"
        msg = f"config file {named} {what}"
        raise ConfigError(msg)
    if named is not None:  # the reader of every user file words syntax and encoding errors
        read_toml(named, "config file", ConfigError)
    _refuse_unknown_sections(os.environ)
    token = _config_file.set(named)
    try:
        return Settings(**overrides)
    except SettingsError as exc:  # a TIERFLOW_ value that a list or table field cannot parse
        msg = (
            f"invalid settings: {exc}; a list or table in a variable is JSON, "
            'e.g. TIERFLOW_TOPICS__QUALITIES="[320, 416]"'
        )
        raise ConfigError(msg) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise ConfigError(msg) from exc
    finally:
        _config_file.reset(token)
