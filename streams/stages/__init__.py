"""The registry of stage services: what the CLI, ``tierflow up``, benches and tests start.

Each entry builds one :class:`~tierflow.streams.service.Service` from the settings:
``resize`` (NI, every quality), ``detect`` (LI/HI, one per quality, the configured detector
backend), ``draw`` (HI, every quality) and ``control`` (the control agent). Stage names are
the contract's :class:`~tierflow.topics.stages.StageName`.

Builders import their stage module when called: reading the registry (``tierflow --help``)
loads neither faust nor a detector backend nor the solver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierflow.errors import ConfigError
from tierflow.settings import Settings
from tierflow.topics.stages import StageName

if TYPE_CHECKING:
    from tierflow.streams.service import Service


@dataclass(frozen=True)
class StageSpec:
    """One kind of service and how to build it.

    Attributes:
        name: the stage it runs.
        summary: one line for ``tierflow worker --help``.
        per_quality: one service per quality (it consumes one quality's topic).
        build: builds the service from the settings and, for per-quality stages, the quality.
    """

    name: StageName
    summary: str
    per_quality: bool
    build: Callable[[Settings, int | None], Service]


def _resize(settings: Settings, _: int | None) -> Service:
    from tierflow.streams.stages.resize import build_resize

    return build_resize(settings)


def _detect(settings: Settings, quality: int | None) -> Service:
    from tierflow.operators.vision.detectors.factory import make_detector
    from tierflow.streams.stages.detect import build_detect

    if quality is None:
        msg = "detect needs a quality (the frames.ready.<q> topic it consumes)"
        raise ConfigError(msg)
    d = settings.detector
    return build_detect(settings, quality, make_detector(d, quality, d.input_size))


def _draw(settings: Settings, _: int | None) -> Service:
    from tierflow.streams.stages.draw import build_draw

    return build_draw(settings)


def _control(settings: Settings, _: int | None) -> Service:
    from tierflow.streams.stages.control import build_control

    return build_control(settings)


STAGES: Mapping[StageName, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            StageName.RESIZE,
            "routes raw frames of every quality to the live detector that serves it",
            False,
            _resize,
        ),
        StageSpec(
            StageName.DETECT,
            "runs the configured detector on one quality (--quality)",
            True,
            _detect,
        ),
        StageSpec(
            StageName.DRAW,
            "annotates and stores frames and writes each frame's outcome record",
            False,
            _draw,
        ),
        StageSpec(
            StageName.CONTROL,
            "the control agent: models, HiGHS, assignments and placement",
            False,
            _control,
        ),
    )
}
"""Every service tierflow runs, in the order ``tierflow up`` starts them."""


def build_stage(settings: Settings, name: StageName, quality: int | None = None) -> Service:
    """The service of stage ``name`` (for ``detect``, the one serving ``quality``).

    Raises:
        ConfigError: ``name`` runs no service, or the quality is missing or has no topics.
    """
    spec = STAGES.get(name)
    if spec is None:
        msg = f"stage {name!r} runs no service; services: {', '.join(STAGES)}"
        raise ConfigError(msg)
    if quality is not None and quality not in settings.topics.qualities:
        msg = f"quality {quality} has no topics; configured: {settings.topics.qualities}"
        raise ConfigError(msg)
    return spec.build(settings, quality)
