"""The workflow description: stages, services, their needs, and the tiers they may run on.

Houmani et al. (seed 000) let the user submit a workflow whose tasks declare their *type*
("the user needs to specify in the description of the submitted workflow the type of each
task", §VI-A); the system derives the NI/LI/HI categories from those types
(:mod:`tierflow.operators.planning.placement.problem`). This package is that description:

- :mod:`.model` — typed, frozen dataclasses: the stages and tasks of the Fig. 1 pipeline,
  the tiers of Table I, the links of Table II with eq. (2)'s transfer time, the sources;
- :mod:`.loader` — the TOML loader, whose errors name the offending field, and
  :func:`default_workflow`, the paper's use case shipped as ``default_workflow.toml``;
- :mod:`.pipeline` — :func:`pipeline_workflow`, the services a deployment runs (what its
  control agent places by default).
"""

from tierflow.operators.planning.workflow.loader import (
    DEFAULT_WORKFLOW_FILE,
    default_workflow,
    load_workflow,
    loads_workflow,
    parse_workflow,
)
from tierflow.operators.planning.workflow.model import (
    TIER_ORDER,
    NodeMetrics,
    Resources,
    Sources,
    Stage,
    Task,
    TaskType,
    Tier,
    TierLink,
    TierSpec,
    Workflow,
    WorkflowError,
)
from tierflow.operators.planning.workflow.pipeline import detect_task, pipeline_workflow

__all__ = [
    "DEFAULT_WORKFLOW_FILE",
    "TIER_ORDER",
    "NodeMetrics",
    "Resources",
    "Sources",
    "Stage",
    "Task",
    "TaskType",
    "Tier",
    "TierLink",
    "TierSpec",
    "Workflow",
    "WorkflowError",
    "default_workflow",
    "detect_task",
    "load_workflow",
    "loads_workflow",
    "parse_workflow",
    "pipeline_workflow",
]
