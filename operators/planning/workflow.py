"""The workflow description: stages, services, their needs, and the tiers they may run on.

Houmani et al. (seed 000) let the user submit a workflow whose tasks declare their *type* ("the user
needs to specify in the description of the submitted workflow the type of each task", §VI-A); the
system derives the NI/LI/HI categories from those types
(:mod:`tierflow.operators.planning.placement.problem`). This module is that description as typed,
frozen dataclasses loaded from TOML with errors that name the offending field:

- stages and tasks of the Fig. 1 pipeline (pre-processing, analysis, post-processing),
  each with a declared type, input quality for models, predecessors and the resources of
  one instance (cores, memory, accelerator memory, storage);
- tiers with their node count and per-node capacity (Table I of §VII-A);
- links between tiers with delay (ms) and bandwidth (Mbit/s) (Table II of §VII-A), and the
  transfer time of eq. (2): ``S / w`` per hop, Edge-Cloud traffic relayed through the Fog;
- the data sources (19 cameras, 25 fps, 512p in the paper's experiment).

:func:`default_workflow` loads the paper's use case shipped as ``default_workflow.toml``.
"""

from __future__ import annotations

import enum
import functools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tierflow.errors import TierflowError

DEFAULT_WORKFLOW_FILE = "default_workflow.toml"

_E = TypeVar("_E", bound=enum.StrEnum)


class WorkflowError(TierflowError):
    """A workflow description is malformed or inconsistent.

    Attributes:
        field: dotted path of the offending field (``tasks[2].requires.cores``).
        origin: where the description came from (a file name or ``<mapping>``).
    """

    def __init__(self, problem: str, *, field: str, origin: str = "<mapping>") -> None:
        super().__init__(f"{origin}: {field}: {problem}")
        self.problem = problem
        self.field = field
        self.origin = origin


class Tier(enum.StrEnum):
    """A level of the continuum; Cloudlet and Fog are the same tier in seed 000 (§IV)."""

    EDGE = "edge"
    FOG = "fog"
    CLOUD = "cloud"


TIER_ORDER: tuple[Tier, ...] = (Tier.EDGE, Tier.FOG, Tier.CLOUD)


class Stage(enum.StrEnum):
    """The three stages of a DL pipeline (seed 000, §II)."""

    PRE = "pre-processing"
    ANALYSIS = "analysis"
    POST = "post-processing"


class TaskType(enum.StrEnum):
    """What the user declares about a task; the category follows from it (§VI-A)."""

    PRE_PROCESSING = "pre-processing"
    POST_PROCESSING = "post-processing"
    STORAGE = "storage"
    SHALLOW = "shallow"
    MODEL = "model"


# Which stages a declared type may sit in: a storage service can store at any stage, the
# others belong to one stage; a mismatch is almost always a typo in the description.
_TYPE_STAGES: Mapping[TaskType, frozenset[Stage]] = {
    TaskType.PRE_PROCESSING: frozenset({Stage.PRE}),
    TaskType.POST_PROCESSING: frozenset({Stage.POST}),
    TaskType.STORAGE: frozenset(Stage),
    TaskType.SHALLOW: frozenset({Stage.ANALYSIS}),
    TaskType.MODEL: frozenset({Stage.ANALYSIS}),
}


@dataclass(frozen=True)
class Resources:
    """An amount of node resources, or the requirement of one service instance.

    Attributes:
        cores: CPU cores (fractional shares allowed).
        memory_mb: main memory in MB.
        accelerator_memory_mb: accelerator (GPU) memory in MB.
        storage_mb: disk space in MB.
    """

    cores: float = 0.0
    memory_mb: float = 0.0
    accelerator_memory_mb: float = 0.0
    storage_mb: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cores + other.cores,
            self.memory_mb + other.memory_mb,
            self.accelerator_memory_mb + other.accelerator_memory_mb,
            self.storage_mb + other.storage_mb,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cores - other.cores,
            self.memory_mb - other.memory_mb,
            self.accelerator_memory_mb - other.accelerator_memory_mb,
            self.storage_mb - other.storage_mb,
        )

    def with_cores(self, cores: float) -> Resources:
        """The same amounts with ``cores`` CPU cores (a share after Algorithm 4)."""
        return Resources(cores, self.memory_mb, self.accelerator_memory_mb, self.storage_mb)

    def fits_in(self, free: Resources, *, tolerance: float = 1e-9) -> bool:
        """Whether every amount is at most the matching amount of ``free``."""
        return (
            self.cores <= free.cores + tolerance
            and self.memory_mb <= free.memory_mb + tolerance
            and self.accelerator_memory_mb <= free.accelerator_memory_mb + tolerance
            and self.storage_mb <= free.storage_mb + tolerance
        )

    def fits_except_cores(self, free: Resources, *, tolerance: float = 1e-9) -> bool:
        """Whether memory, accelerator memory and storage fit (cores may be adjusted)."""
        return self.with_cores(0.0).fits_in(free.with_cores(0.0), tolerance=tolerance)


@dataclass(frozen=True)
class Task:
    """One service of the pipeline (e.g. ``detect-512``), possibly run as several instances.

    Attributes:
        name: unique service name.
        stage: the pipeline stage it belongs to.
        type: the declared type the category is derived from (§VI-A).
        requires: resources of one instance at 100 % of its requirement.
        instances: how many instances to place (Resize runs 11 in §VII-A).
        after: predecessor tasks; empty for an entry task fed by the data sources.
        model: model family (``yolov4``) for ``model`` tasks; LI/HI is decided per family.
        quality: input resolution in pixels (side of a square frame) of a model task.
        accelerator: accelerator platform an instance needs (``cuda``), or None.
        service_ms: execution time of one frame at the full requirement, ms (theta of
            the thesis program; 0 when unknown).
    """

    name: str
    stage: Stage
    type: TaskType
    requires: Resources
    instances: int = 1
    after: tuple[str, ...] = ()
    model: str | None = None
    quality: int | None = None
    accelerator: str | None = None
    service_ms: float = 0.0


@dataclass(frozen=True)
class TierSpec:
    """The nodes of one tier: how many and the capacity of each (Table I).

    Attributes:
        tier: the tier.
        nodes: number of identical nodes.
        capacity: allocatable resources of one node.
        accelerator: accelerator platform of the nodes (``cuda``), or None.
        accelerator_cores: accelerator cores of one node (AVEC's "GPU cores").
    """

    tier: Tier
    nodes: int
    capacity: Resources
    accelerator: str | None = None
    accelerator_cores: int = 0


@dataclass(frozen=True)
class TierLink:
    """A network connection between (nodes of) two tiers (Table II).

    Attributes:
        a: one end.
        b: the other end (equal to ``a`` for links inside a tier).
        delay_ms: average one-way delay, ms.
        bandwidth_mbps: uplink bandwidth, Mbit/s.
    """

    a: Tier
    b: Tier
    delay_ms: float
    bandwidth_mbps: float


@dataclass(frozen=True)
class Sources:
    """The data sources (cameras) feeding the entry tasks.

    Attributes:
        tier: where the sources are attached (the Edge in §VII-A).
        count: number of sources.
        fps: frames per second of each source.
        quality: default resolution in pixels (side of the square frame).
    """

    tier: Tier = Tier.EDGE
    count: int = 1
    fps: float = 25.0
    quality: int = 512


@dataclass(frozen=True)
class NodeMetrics:
    """One node as discovery reports it: AVEC's metrics template (seed 004, §6).

    The fields are those of the ``control.nodes`` topic (DESIGN.md): tier, cores, memory,
    accelerator and its memory, latency and bandwidth from the data sources, plus what is
    already in use. AVEC's template carries "available GPU memory"; here capacity and use
    are both kept so Mode 2 of the thesis can reason about total memory.

    Attributes:
        node: node id.
        tier: tier of the node.
        cores: CPU cores.
        memory_mb: main memory, MB.
        storage_mb: disk space, MB.
        accelerator: accelerator platform (``cuda``), or None.
        accelerator_memory_mb: accelerator memory, MB.
        accelerator_cores: accelerator cores (AVEC's "GPU cores").
        latency_ms: latency between the data sources (the user device) and the node, ms.
        bandwidth_mbps: bandwidth between the data sources and the node, Mbit/s.
        used: resources already in use by other work.
    """

    node: str
    tier: Tier
    cores: float
    memory_mb: float
    storage_mb: float = math.inf
    accelerator: str | None = None
    accelerator_memory_mb: float = 0.0
    accelerator_cores: int = 0
    latency_ms: float = 0.0
    bandwidth_mbps: float = 0.0
    used: Resources = field(default_factory=Resources)

    @property
    def capacity(self) -> Resources:
        """Total resources of the node."""
        return Resources(self.cores, self.memory_mb, self.accelerator_memory_mb, self.storage_mb)

    @property
    def free(self) -> Resources:
        """Resources not in use (capacity minus ``used``)."""
        return self.capacity - self.used


@dataclass(frozen=True)
class Workflow:
    """A submitted workflow and the infrastructure it is placed on.

    Attributes:
        name: workflow name.
        tasks: tasks in topological order (every predecessor comes first).
        tiers: node counts and capacities per tier (Table I).
        links: links between tiers (Table II).
        sources: the data sources.
        bits_per_pixel: gamma of eq. (2), bits per pixel of a transferred frame.
        min_share: Algorithm 4's floor as a fraction of a task's cores (50 % in §VI-C).
    """

    name: str
    tasks: tuple[Task, ...]
    tiers: tuple[TierSpec, ...]
    links: tuple[TierLink, ...]
    sources: Sources = field(default_factory=Sources)
    bits_per_pixel: float = 2.1
    min_share: float = 0.5

    def task(self, name: str) -> Task:
        """The task called ``name``.

        Raises:
            WorkflowError: no task has that name.
        """
        for task in self.tasks:
            if task.name == name:
                return task
        msg = f"no task named {name!r}"
        raise WorkflowError(msg, field="tasks")

    def successors(self, name: str) -> tuple[str, ...]:
        """Names of the tasks that consume ``name``'s output."""
        return tuple(task.name for task in self.tasks if name in task.after)

    def input_quality(self, task: Task) -> int:
        """Resolution (px) of the frames ``task`` receives.

        A model receives frames resized to its own quality; an entry task receives the
        sources' frames; any other task receives its predecessors' frames (the largest).
        """
        if task.quality is not None:
            return task.quality
        if not task.after:
            return self.sources.quality
        return max(self.input_quality(self.task(name)) for name in task.after)

    def frame_mbit(self, quality: int) -> float:
        """S of eq. (2): size of one frame of side ``quality`` px, Mbit (gamma * fr^2)."""
        return self.bits_per_pixel * quality * quality / 1e6

    def link(self, a: Tier, b: Tier) -> TierLink | None:
        """The declared link between ``a`` and ``b`` in either direction, if any."""
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        return None

    def route(self, a: Tier, b: Tier) -> tuple[TierLink, ...] | None:
        """Links a transfer from tier ``a`` to tier ``b`` crosses, or None without a route.

        Eq. (2): Edge-Cloud traffic passes through the Fog when no direct link is declared.
        """
        direct = self.link(a, b)
        if direct is not None:
            return (direct,)
        if {a, b} == {Tier.EDGE, Tier.CLOUD}:
            first, second = self.link(a, Tier.FOG), self.link(Tier.FOG, b)
            if first is not None and second is not None:
                return (first, second)
        return None

    def transfer_ms(self, a: Tier, b: Tier, mbit: float) -> float:
        """Time to move ``mbit`` Mbit between nodes of tiers ``a`` and ``b``, ms (eq. 2).

        Each hop costs its delay plus ``S / w``; placing both ends on the same node costs
        nothing, which callers handle (eq. 2, ``r_i = r_j``).

        Raises:
            WorkflowError: the tiers are not connected.
        """
        hops = self.route(a, b)
        if hops is None:
            msg = f"no route between {a} and {b}"
            raise WorkflowError(msg, field="links")
        return sum(hop.delay_ms + 1000.0 * mbit / hop.bandwidth_mbps for hop in hops)

    def nodes(self) -> tuple[NodeMetrics, ...]:
        """The Table I tiers expanded into nodes ``<tier>-<i>``, with metrics from the sources.

        Latency is the route delay from the sources' tier (ms) and bandwidth the route's
        bottleneck (Mbit/s): what a node would report in AVEC's template.
        """
        out: list[NodeMetrics] = []
        for spec in self.tiers:
            hops = self.route(self.sources.tier, spec.tier) or ()
            latency = sum(hop.delay_ms for hop in hops)
            bandwidth = min((hop.bandwidth_mbps for hop in hops), default=0.0)
            for index in range(spec.nodes):
                cap = spec.capacity
                out.append(
                    NodeMetrics(
                        node=f"{spec.tier}-{index}",
                        tier=spec.tier,
                        cores=cap.cores,
                        memory_mb=cap.memory_mb,
                        storage_mb=cap.storage_mb,
                        accelerator=spec.accelerator,
                        accelerator_memory_mb=cap.accelerator_memory_mb,
                        accelerator_cores=spec.accelerator_cores,
                        latency_ms=latency,
                        bandwidth_mbps=bandwidth,
                    )
                )
        return tuple(out)


# --------------------------------------------------------------------------------------
# Loading and validation


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
    if task.stage not in _TYPE_STAGES[task.type]:
        stages = ", ".join(sorted(_TYPE_STAGES[task.type]))
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
