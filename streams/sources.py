"""A user's cameras: the sources file of ``tierflow up --sources`` and ``--source URI``.

A sources file is TOML with one ``[[sources]]`` table per camera::

    [[sources]]
    id = "lobby"                     # the camera id, the Kafka key (default: from the uri)
    uri = "videos/lobby.mp4"         # video file, image folder, rtsp://, /dev/videoN, scene:SEED
    fps = 25                         # native frame rate (default camera.fps)
    qualities = [512, 416]           # the qualities it may be assigned (default: all)
    truth = "videos/lobby-gt.txt"    # MOT gt.txt, COCO .json, or "golden" (optional)
    label = "person"                 # what a MOT file's boxes are (COCO names its own)
    loop = false                     # start a file or folder again at its end

Relative paths are relative to the file's folder. docs/sources.md has the details; every
problem is reported with the source and the field, before anything starts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tierflow.errors import ConfigError
from tierflow.files import read_toml
from tierflow.operators.vision.truth import MOT_LABEL, TruthError, load_truth
from tierflow.streams.capture import CaptureError, FrameSource, is_live, open_source

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A source id: a Kafka key, a Prometheus label value and a folder name all at once."""


class SourceSpec(BaseModel):
    """One camera of a sources file (or of a ``--source URI``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    uri: str = Field(min_length=1)
    fps: Annotated[float, Field(gt=0, le=1000)] | None = None
    qualities: tuple[int, ...] | None = None
    truth: Literal["golden"] | Path | None = None
    """A truth file, or ``golden``: frames scored against the strongest quality's
    detections of reference copies (:mod:`tierflow.streams.golden`)."""
    label: str = Field(default=MOT_LABEL, min_length=1)
    loop: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID.fullmatch(value):
            msg = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            raise ValueError(msg)
        return value

    @field_validator("qualities")
    @classmethod
    def _qualities(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or any(q <= 0 for q in value)):
            msg = "a non-empty list of positive sides in pixels"
            raise ValueError(msg)
        return value

    @property
    def truth_kind(self) -> str:
        """Where this source's F1 comes from, for the summary: ``MOT gt.txt`` and the like."""
        if self.uri.startswith("scene:"):
            return "generated scene"
        if self.truth is None:
            return "none"
        if self.truth == "golden":
            return "golden (strongest quality)"
        kind = "COCO" if self.truth.suffix.lower() == ".json" else "MOT"
        return f"{kind} {self.truth.name}"

    def open(self, scene_size: int) -> FrameSource:
        """The frame source, with its truth loaded.

        Raises:
            ConfigError: the uri cannot be opened or the truth file read.
        """
        try:
            file = self.truth if isinstance(self.truth, Path) else None
            truth = load_truth(file, self.label) if file is not None else None
            return open_source(self.uri, loop=self.loop, scene_size=scene_size, truth=truth)
        except (CaptureError, TruthError) as exc:
            msg = f"source {self.id!r}: {exc}"
            raise ConfigError(msg) from None


class SourcesFile(BaseModel):
    """A whole sources file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[SourceSpec] = Field(min_length=1)


def id_from_uri(uri: str) -> str:
    """A source id for ``uri``: the file or folder name's stem, else the scheme and rest."""
    named = is_live(uri) or uri.startswith("scene:")
    stem = uri if named else Path(uri.rstrip("/")).stem
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64]
    return cleaned or "source"


def _resolved(spec: SourceSpec, base: Path) -> SourceSpec:
    """``spec`` with its relative uri and truth made relative to ``base``."""
    uri = spec.uri
    looks_like_path = not (is_live(uri) or uri.startswith(("scene:", "device:")))
    if looks_like_path and not Path(uri).is_absolute():
        uri = str(base / uri)
    truth = spec.truth
    if isinstance(truth, Path) and not truth.is_absolute():
        truth = base / truth
    return spec.model_copy(update={"uri": uri, "truth": truth})


def load_sources(path: Path) -> list[SourceSpec]:
    """The sources of a sources file, paths resolved against its folder.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a source is invalid (the
            message names the source's position or id and the field), or two sources
            share an id.
    """
    data = read_toml(path, "sources file", ConfigError)
    for n, entry in enumerate(data.get("sources", []) if isinstance(data, dict) else []):
        if isinstance(entry, dict) and "id" not in entry and isinstance(entry.get("uri"), str):
            entry["id"] = id_from_uri(entry["uri"])
        if isinstance(entry, dict):
            entry.setdefault("id", f"source-{n}")
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(data, err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        msg = f"{path}: {problems}"
        raise ConfigError(msg) from None
    return unique([_resolved(spec, path.parent) for spec in parsed.sources], str(path))


def _where(data: object, loc: tuple[int | str, ...]) -> str:
    """``sources[2] (id 'lobby').fps`` for a validation error's location."""
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        entries = data.get("sources", []) if isinstance(data, dict) else []
        entry = entries[loc[1]] if loc[1] < len(entries) else {}
        named = f" (id {entry['id']!r})" if isinstance(entry, dict) and "id" in entry else ""
        rest = ".".join(str(p) for p in loc[2:])
        return f"sources[{loc[1]}]{named}" + (f".{rest}" if rest else "")
    return ".".join(str(p) for p in loc) or "file"


def from_uris(uris: Sequence[str]) -> list[SourceSpec]:
    """One source per ``--source URI``, ids from the uris (made unique with -2, -3...).

    Raises:
        ConfigError: a uri is empty.
    """
    specs: list[SourceSpec] = []
    taken: set[str] = set()
    for uri in uris:
        if not uri:
            msg = "--source needs a uri (a video file, an image folder, rtsp://, scene:SEED...)"
            raise ConfigError(msg)
        base = id_from_uri(uri)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        specs.append(SourceSpec(id=name, uri=uri))
    return specs


def unique(specs: list[SourceSpec], where: str) -> list[SourceSpec]:
    """``specs`` if no two share an id.

    Raises:
        ConfigError: naming the repeated ids.
    """
    repeated = sorted(i for i, n in Counter(s.id for s in specs).items() if n > 1)
    if repeated:
        msg = f"{where}: source ids must be unique; repeated: {', '.join(repeated)}"
        raise ConfigError(msg)
    return specs


def check_sources(specs: Sequence[SourceSpec], qualities: Sequence[int], scene_size: int) -> None:
    """Open every source once (and read its truth) and check its qualities have topics.

    Done before anything starts, so a typo in the tenth source fails in a second, not after
    the workers are up.

    Raises:
        ConfigError: naming the source and the problem.
    """
    for spec in specs:
        missing = sorted(set(spec.qualities or ()) - set(qualities))
        if missing:
            have = ", ".join(str(q) for q in qualities)
            msg = (
                f"source {spec.id!r}: qualities {missing} have no topics (topics.qualities: {have})"
            )
            raise ConfigError(msg)
        if not is_live(spec.uri):  # a stream that is not up yet is waited for, not refused
            spec.open(scene_size).close()
