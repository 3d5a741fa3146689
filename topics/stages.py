"""The names of the pipeline's stages: part of the contract, on the wire in stamps and records.

A frame's journey is :data:`PIPELINE` (the seed paper's Figure 1, camera first): its
per-stage timestamps are ``tf-t.<stage>.in|out``, its records say where it ended, and the
services that run the stages announce their stage on ``control.registry``. The running
services of each stage are registered in :mod:`tierflow.streams.stages`.
"""

from __future__ import annotations

import enum


class StageName(enum.StrEnum):
    """A stage of the pipeline or a service of the control plane; the value is its wire name."""

    CAMERA = "camera"
    """Capture and edge-side reduction (a producer, not a service)."""
    RESIZE = "resize"
    """Pre-processing (NI): routes frames by quality to live detectors."""
    DETECT = "detect"
    """Analysis (LI/HI): one service per quality."""
    DRAW = "draw"
    """Post-processing (HI): annotates, stores, closes each frame's journey."""
    CONTROL = "control"
    """The control agent: models, HiGHS, assignments and placement."""


PIPELINE: tuple[StageName, ...] = (
    StageName.CAMERA,
    StageName.RESIZE,
    StageName.DETECT,
    StageName.DRAW,
)
"""Stage order of a frame's journey."""
