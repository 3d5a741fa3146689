"""Experiment files: what to run (a recording or generated cameras) and which configurations.

An experiment file is TOML (documented in ``docs/experiments/README.md``)::

    name = "smoke"
    kind = "pipeline"             # or "simulation" (placement studies, no broker)

    [input]                       # either a recording ...
    recording = "path/to/recording"
    # ... or generated cameras, recorded first (deterministic by seed)
    cameras = 2
    seed = 0
    duration_s = 10.0
    fps = 10.0
    quality = 512

    [run]                         # defaults of every configuration
    mode = "real-time"            # or "makespan": nothing dropped, time to process it all
    speed = 1.0                   # recorded timing; "max": every frame at once
    drain_s = 60.0

    [settings]                    # tierflow settings every configuration starts from
    dataplane = { store_frames = false }

    [[configs]]
    name = "milp"
    control = true                # the control agent decides quality and frame rate
    policy = "milp"               # shortcuts: policy, placement_policy, a_min, theta, detector
    [[configs]]
    name = "fixed-512"
    control = false
    quality = 512

Every key is checked: a misspelt one is an error naming it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tierflow.errors import ConfigError

Mode = Literal["real-time", "makespan"]
SHORTCUTS = {
    "policy": ("control", "policy"),
    "placement_policy": ("control", "placement_policy"),
    "a_min": ("control", "a_min"),
    "theta": ("control", "theta_per_s"),
    "detector": ("detector", "backend"),
}
"""Configuration keys that stand for a settings field: key -> (section, field)."""
MAKESPAN_SETTINGS: dict[str, dict[str, Any]] = {
    "dataplane": {"supersede": False, "max_lag_s": 1e6, "deadline_s": 1e6},
}
"""What makespan mode changes: no stage drops a frame (the seed paper processes them all)."""
NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class ExperimentError(ConfigError):
    """An experiment file that cannot be run as written."""


@dataclass(frozen=True)
class InputSpec:
    """The frames every configuration sees.

    Attributes:
        recording: a recording folder, or None for generated cameras.
        cameras: generated cameras.
        seed: scene seed of the first camera.
        duration_s: seconds of generated frames.
        fps: frame clock of generated cameras, frames per second.
        quality: side of generated frames, pixels.
    """

    recording: Path | None = None
    cameras: int = 2
    seed: int = 0
    duration_s: float = 10.0
    fps: float = 10.0
    quality: int = 512


@dataclass(frozen=True)
class ConfigSpec:
    """One configuration: how the pipeline runs over the input.

    Attributes:
        name: short name, used in the prefix and the report.
        control: whether the control agent assigns quality and frame rate.
        quality: quality the cameras start at (and keep without control); None: recorded.
        mode: real-time (stages drop what would be late, as deployed) or makespan (nothing
            is dropped: the seed paper's setting, whose metric is the time from the first
            frame sent to the last frame processed).
        speed: replay speed, 1.0 the recorded timing; None (``"max"`` in the file) sends
            every frame at once.
        drain_s: longest wait for the outcomes of the last frames, seconds.
        settings: settings overrides, section -> field -> value.
    """

    name: str
    control: bool = True
    quality: int | None = None
    mode: Mode = "real-time"
    speed: float | None = 1.0
    drain_s: float = 60.0
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed experiment file."""

    name: str
    description: str
    kind: Literal["pipeline", "simulation"]
    input: InputSpec
    configs: tuple[ConfigSpec, ...]
    raw: Mapping[str, Any]


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        msg = f"{where}: [{key}] must be a table"
        raise ExperimentError(msg)
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        msg = f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}"
        raise ExperimentError(msg)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s values over it, tables merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = merge(current, value)
        else:
            out[key] = value
    return out


def _speed(value: object, where: str) -> float | None:
    if value == "max":
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        msg = f"{where}: speed must be a positive number or 'max', got {value!r}"
        raise ExperimentError(msg)
    return float(value)


def _config(
    raw: Mapping[str, Any], run: Mapping[str, Any], common: Mapping[str, Any]
) -> ConfigSpec:
    where = f"configs[{raw.get('name', '?')}]"
    allowed = {"name", "control", "quality", "mode", "speed", "drain_s", "settings", *SHORTCUTS}
    _unknown(raw, allowed, where)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        msg = f"{where}: name must be 1-40 characters of [A-Za-z0-9_-], got {name!r}"
        raise ExperimentError(msg)
    settings = merge(common, _table(raw, "settings", where))
    for key, (section, field_name) in SHORTCUTS.items():
        if key in raw:
            settings = merge(settings, {section: {field_name: raw[key]}})
    values = {**run, **{k: v for k, v in raw.items() if k in {"mode", "speed", "drain_s"}}}
    mode = values.get("mode", "real-time")
    if mode not in ("real-time", "makespan"):
        msg = f"{where}: mode must be 'real-time' or 'makespan', got {mode!r}"
        raise ExperimentError(msg)
    if mode == "makespan":
        settings = merge(MAKESPAN_SETTINGS, settings)
    try:
        return ConfigSpec(
            name=name,
            control=bool(raw.get("control", True)),
            quality=int(raw["quality"]) if "quality" in raw else None,
            mode=mode,
            speed=_speed(values.get("speed", 1.0), where),
            drain_s=float(values.get("drain_s", 60.0)),
            settings=settings,
        )
    except (TypeError, ValueError) as exc:
        msg = f"{where}: {exc}"
        raise ExperimentError(msg) from exc


def parse_experiment(raw: Mapping[str, Any], base: Path) -> ExperimentSpec:
    """Check and parse an experiment file's content; relative paths are from ``base``.

    Raises:
        ExperimentError: naming the key that is missing, misspelt or of the wrong type.
    """
    kind = raw.get("kind", "pipeline")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        msg = f"name must be 1-40 characters of [A-Za-z0-9_-], got {name!r}"
        raise ExperimentError(msg)
    description = str(raw.get("description", ""))
    if kind == "simulation":
        return ExperimentSpec(name, description, "simulation", InputSpec(), (), raw)
    if kind != "pipeline":
        msg = f"kind must be 'pipeline' or 'simulation', got {kind!r}"
        raise ExperimentError(msg)
    _unknown(raw, {"name", "description", "kind", "input", "run", "settings", "configs"}, name)
    given = _table(raw, "input", name)
    _unknown(given, {"recording", "cameras", "seed", "duration_s", "fps", "quality"}, "[input]")
    try:
        recording = given.get("recording")
        spec_input = InputSpec(
            recording=(base / recording) if recording else None,
            cameras=int(given.get("cameras", 2)),
            seed=int(given.get("seed", 0)),
            duration_s=float(given.get("duration_s", 10.0)),
            fps=float(given.get("fps", 10.0)),
            quality=int(given.get("quality", 512)),
        )
    except (TypeError, ValueError) as exc:
        msg = f"[input]: {exc}"
        raise ExperimentError(msg) from exc
    run = _table(raw, "run", name)
    _unknown(run, {"mode", "speed", "drain_s"}, "[run]")
    configs_raw = raw.get("configs")
    if not isinstance(configs_raw, list) or not configs_raw:
        msg = f"{name}: at least one [[configs]] table is needed"
        raise ExperimentError(msg)
    common = _table(raw, "settings", name)
    configs = tuple(_config(c, run, common) for c in configs_raw)
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        msg = f"{name}: configuration names repeat: {names}"
        raise ExperimentError(msg)
    return ExperimentSpec(name, description, "pipeline", spec_input, configs, raw)


def load_experiment(path: Path) -> ExperimentSpec:
    """Read and parse an experiment file.

    Raises:
        ExperimentError: the file is missing, not TOML, or not a valid experiment.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"no experiment file {path}"
        raise ExperimentError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path} is not TOML: {exc}"
        raise ExperimentError(msg) from exc
    return parse_experiment(raw, path.parent)
