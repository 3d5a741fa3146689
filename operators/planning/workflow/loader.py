"""Loading a workflow from TOML, with errors that name the offending field.

The format mirrors :mod:`.model` (seed 000's workflow description, Tables I and II):
``[workflow]`` (name, eq. (2)'s ``bits_per_pixel``, Algorithm 4's ``min_share``),
``[[tiers]]``, ``[[links]]``, ``[sources]`` and ``[[tasks]]``. Unknown keys are refused, the
tasks are put in topological order, and every pair of tiers must be connected.
:func:`default_workflow` loads the paper's use case shipped as ``default_workflow.toml``.
"""

from __future__ import annotations

import enum
import functools
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tierflow.operators.planning.workflow.model import (
    TYPE_STAGES,
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

DEFAULT_WORKFLOW_FILE = "default_workflow.toml"

_E = TypeVar("_E", bound=enum.StrEnum)


class _Fields:
    """Typed access to one TOML table that names the field in every error."""

    def __init__(self, data: object, path: str, origin: str) -> None:
        if not isinstance(data, Mapping):
            msg = f"expected a table, got {_kind(data)}"
            raise WorkflowError(msg, field=path, origin=origin)
        self.data: Mapping[str, Any] = data
        self.path = path
        self.origin = origin
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, problem: str, key: str) -> WorkflowError:
        return WorkflowError(problem, field=self.at(key), origin=self.origin)

    def raw(self, key: str) -> object:
        self.seen.add(key)
        return self.data.get(key)

    def string(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value:
            msg = f"expected a non-empty string, got {_kind(value)}"
            raise self.error(msg, key)
        return value

    def optional_string(self, key: str) -> str | None:
        return None if self.raw(key) is None else self.string(key)

    def number(self, key: str, default: float | None = None, *, positive: bool = False) -> float:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"expected a number, got {_kind(value)}"
            raise self.error(msg, key)
        number = float(value)
        if math.isnan(number) or number < 0 or (positive and number == 0):
            bound = "> 0" if positive else ">= 0"
            msg = f"expected a number {bound}, got {value!r}"
            raise self.error(msg, key)
        return number

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"expected an integer, got {_kind(value)}"
            raise self.error(msg, key)
        if value < minimum:
            msg = f"expected an integer >= {minimum}, got {value}"
            raise self.error(msg, key)
        return value

    def choice(self, key: str, kind: type[_E], default: _E | None = None) -> _E:
        value = self.raw(key)
        if value is None and default is not None:
            return default
        try:
            return kind(str(value))
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            msg = f"expected one of {allowed}; got {value!r}"
            raise self.error(msg, key) from None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            msg = f"expected a list of strings, got {_kind(value)}"
            raise self.error(msg, key)
        return tuple(value)

    def tables(self, key: str) -> list[_Fields]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            msg = f"expected a non-empty array of tables, got {_kind(value)}"
            raise self.error(msg, key)
        return [_Fields(item, f"{self.at(key)}[{i}]", self.origin) for i, item in enumerate(value)]

    def table(self, key: str) -> _Fields:
        value = self.raw(key)
        return _Fields({} if value is None else value, self.at(key), self.origin)

    def done(self) -> None:
        """Refuse keys nobody read: a misspelt key must not silently fall back to a default."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            expected = ", ".join(sorted(self.seen))
            msg = f"unknown field (expected one of {expected})"
            raise self.error(msg, unknown[0])


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _resources(fields: _Fields) -> Resources:
    out = Resources(
        cores=fields.number("cores"),
        memory_mb=fields.number("memory_mb", 0.0),
        accelerator_memory_mb=fields.number("accelerator_memory_mb", 0.0),
        storage_mb=fields.number("storage_mb", 0.0),
    )
    fields.done()
    return out


def _task(fields: _Fields) -> Task:
    task = Task(
        name=fields.string("name"),
        stage=fields.choice("stage", Stage),
        type=fields.choice("type", TaskType),
        requires=_resources(fields.table("requires")),
        instances=fields.integer("instances", 1, minimum=1),
        after=fields.strings("after"),
        model=fields.optional_string("model"),
        quality=None if fields.raw("quality") is None else fields.integer("quality", minimum=1),
        accelerator=fields.optional_string("accelerator"),
        service_ms=fields.number("service_ms", 0.0),
    )
    fields.done()
    if task.stage not in TYPE_STAGES[task.type]:
        stages = ", ".join(sorted(TYPE_STAGES[task.type]))
        msg = f"a {task.type} task belongs to {stages}, not {task.stage}"
        raise fields.error(msg, "stage")
    if task.type is TaskType.MODEL:
        if task.model is None:
            msg = "a model task must name its model family"
            raise fields.error(msg, "model")
        if task.quality is None:
            msg = "a model task must declare the quality it accepts"
            raise fields.error(msg, "quality")
    if task.requires.cores <= 0:
        msg = "a task needs more than 0 cores"
        raise fields.error(msg, "requires.cores")
    return task


def _tier(fields: _Fields) -> TierSpec:
    capacity = Resources(
        cores=fields.number("cores", positive=True),
        memory_mb=fields.number("memory_mb"),
        accelerator_memory_mb=fields.number("accelerator_memory_mb", 0.0),
        storage_mb=fields.number("storage_mb", math.inf),
    )
    spec = TierSpec(
        tier=fields.choice("name", Tier),
        nodes=fields.integer("nodes", minimum=0),
        capacity=capacity,
        accelerator=fields.optional_string("accelerator"),
        accelerator_cores=fields.integer("accelerator_cores", 0),
    )
    fields.done()
    return spec


def _link(fields: _Fields) -> TierLink:
    ends = fields.strings("between")
    if len(ends) != 2:
        msg = f"expected two tier names, got {list(ends)}"
        raise fields.error(msg, "between")
    try:
        a, b = Tier(ends[0]), Tier(ends[1])
    except ValueError:
        allowed = ", ".join(tier.value for tier in Tier)
        msg = f"expected tiers among {allowed}; got {list(ends)}"
        raise fields.error(msg, "between") from None
    link = TierLink(a, b, fields.number("delay_ms"), fields.number("bandwidth_mbps", positive=True))
    fields.done()
    return link


def _topological(tasks: Sequence[Task], origin: str) -> tuple[Task, ...]:
    names = [task.name for task in tasks]
    for index, task in enumerate(tasks):
        if task.name in names[:index]:
            msg = f"duplicate task {task.name!r}"
            raise WorkflowError(msg, field=f"tasks[{index}].name", origin=origin)
        for pred in task.after:
            if pred not in names:
                msg = f"unknown task {pred!r}"
                raise WorkflowError(msg, field=f"tasks[{index}].after", origin=origin)
            if pred == task.name:
                msg = "a task cannot follow itself"
                raise WorkflowError(msg, field=f"tasks[{index}].after", origin=origin)
    ordered: list[Task] = []
    placed: set[str] = set()
    pending = list(tasks)
    while pending:
        ready = [task for task in pending if set(task.after) <= placed]
        if not ready:
            cycle = ", ".join(task.name for task in pending)
            msg = f"the 'after' relation has a cycle among {cycle}"
            raise WorkflowError(msg, field="tasks", origin=origin)
        for task in ready:
            ordered.append(task)
            placed.add(task.name)
            pending.remove(task)
    return tuple(ordered)


def parse_workflow(data: Mapping[str, Any], origin: str = "<mapping>") -> Workflow:
    """Build and validate a :class:`Workflow` from a parsed TOML document.

    Args:
        data: the document (``tomllib.loads`` output).
        origin: where it came from, for error messages.

    Raises:
        WorkflowError: naming the field at fault.
    """
    root = _Fields(data, "", origin)
    head = root.table("workflow")
    name = head.string("name")
    bits_per_pixel = head.number("bits_per_pixel", 2.1, positive=True)
    min_share = head.number("min_share", 0.5)
    if not 0.0 < min_share <= 1.0:
        msg = f"expected a fraction in (0, 1], got {min_share}"
        raise head.error(msg, "min_share")
    head.done()

    tiers = tuple(_tier(item) for item in root.tables("tiers"))
    for index, spec in enumerate(tiers):
        if [other.tier for other in tiers].count(spec.tier) > 1:
            msg = f"tier {spec.tier} declared twice"
            raise WorkflowError(msg, field=f"tiers[{index}].name", origin=origin)
    links = tuple(_link(item) for item in root.tables("links"))

    src = root.table("sources")
    sources = Sources(
        tier=src.choice("tier", Tier, Tier.EDGE),
        count=src.integer("count", 1, minimum=1),
        fps=src.number("fps", 25.0, positive=True),
        quality=src.integer("quality", 512, minimum=1),
    )
    src.done()
    tasks = _topological([_task(item) for item in root.tables("tasks")], origin)
    root.done()

    workflow = Workflow(name, tasks, tiers, links, sources, bits_per_pixel, min_share)
    _check_routes(workflow, origin)
    return workflow


def _check_routes(workflow: Workflow, origin: str) -> None:
    """Every pair of declared tiers (and a tier with itself when it has >1 node) must connect."""
    present = {spec.tier: spec.nodes for spec in workflow.tiers} | {workflow.sources.tier: 2}
    for a in present:
        for b in present:
            if a == b and present[a] < 2:
                continue
            if workflow.route(a, b) is None:
                msg = f"no link between {a} and {b}"
                raise WorkflowError(msg, field="links", origin=origin)


def loads_workflow(text: str, origin: str = "<string>") -> Workflow:
    """Parse a workflow from TOML text.

    Raises:
        WorkflowError: the text is not TOML, or a field is wrong.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowError(str(exc), field="(syntax)", origin=origin) from exc
    return parse_workflow(data, origin)


def load_workflow(path: str | Path) -> Workflow:
    """Load a workflow from a TOML file.

    Raises:
        WorkflowError: the file is unreadable, not TOML, or a field is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read: {exc}"
        raise WorkflowError(msg, field="(file)", origin=str(path)) from exc
    return loads_workflow(text, str(path))


@functools.cache
def default_workflow() -> Workflow:
    """The paper's use case: Resize -> Detect (YOLOv4-416 / -512) -> Draw, Tables I-II."""
    # Next to this module rather than importlib.resources: the editable install's finder
    # gives `operators` a namespace-style spec that resources.files() cannot read.
    return load_workflow(Path(__file__).with_name(DEFAULT_WORKFLOW_FILE))
