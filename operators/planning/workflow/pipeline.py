"""The workflow of the services one tierflow deployment runs: what it places by default.

The paper's use case (:func:`~tierflow.operators.planning.workflow.default_workflow`) is a
Grid'5000 continuum of 14 nodes; the control agent of a real deployment places what its node
agents can run: one resize, one detect per quality served, one draw
(``tierflow.streams.stages``), with the links, sources and bits per pixel of the use case.

The requirements are declared, per instance, from what these services use on this project's
reference machine (``tierflow up`` at its defaults, per-process CPU over a run): resize and
draw under a quarter of a core each, a detector up to a core while it is the quality the
cameras are assigned and nothing while it is not. A detector therefore asks for half a core
at 100 % of its requirement: the detectors of one machine take turns rather than run at
once, and Algorithm 4 may still halve it (``min_share``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tierflow.operators.planning.workflow.loader import default_workflow
from tierflow.operators.planning.workflow.model import Resources, Stage, Task, TaskType, Workflow

RESIZE = Resources(cores=0.25, memory_mb=256)
DETECT = Resources(cores=0.5, memory_mb=1024)
DRAW = Resources(cores=0.25, memory_mb=256, storage_mb=1024)
MODEL_FAMILY = "tierflow-detector"
"""One family for every quality: LI/HI are told apart by resolution within it (§VI-A)."""


def detect_task(quality: int) -> str:
    """The task name of the detector serving ``quality`` (also its worker's name)."""
    return f"detect-{quality}"


def pipeline_workflow(qualities: Sequence[int], base: Workflow | None = None) -> Workflow:
    """Resize -> one detect per quality -> draw, one instance each, on ``base``'s continuum.

    Args:
        qualities: the qualities a detector serves (square side in pixels).
        base: the links, tiers and sources to keep (the paper's use case when None).

    Raises:
        ValueError: no quality, or one that is not positive.
    """
    if not qualities or min(qualities) <= 0:
        msg = f"a pipeline needs positive qualities, got {list(qualities)}"
        raise ValueError(msg)
    base = base or default_workflow()
    detects = tuple(
        Task(
            name=detect_task(q),
            stage=Stage.ANALYSIS,
            type=TaskType.MODEL,
            requires=DETECT,
            after=("resize",),
            model=MODEL_FAMILY,
            quality=q,
        )
        for q in sorted(set(qualities))
    )
    tasks = (
        Task(name="resize", stage=Stage.PRE, type=TaskType.PRE_PROCESSING, requires=RESIZE),
        *detects,
        Task(
            name="draw",
            stage=Stage.POST,
            type=TaskType.STORAGE,
            requires=DRAW,
            after=tuple(t.name for t in detects),
        ),
    )
    return dataclasses.replace(base, name="tierflow-pipeline", tasks=tasks)
