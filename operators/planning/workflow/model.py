"""A submitted workflow and the infrastructure it is placed on, as typed frozen dataclasses.

Seed 000 (Houmani et al.): the stages and tasks of the Fig. 1 pipeline (pre-processing,
analysis, post-processing), each with a declared type (§VI-A), input quality for models,
predecessors and the resources of one instance (cores, memory, accelerator memory,
storage); tiers with their node count and per-node capacity (Table I of §VII-A); links
between tiers with delay (ms) and bandwidth (Mbit/s) (Table II of §VII-A), and the transfer
time of eq. (2): ``S / w`` per hop, Edge-Cloud traffic relayed through the Fog; the data
sources (19 cameras, 25 fps, 512p in the paper's experiment). :class:`NodeMetrics` is one
node as AVEC's discovery template reports it (seed 004, §6).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tierflow.errors import TierflowError


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


TYPE_STAGES: Mapping[TaskType, frozenset[Stage]] = {
    TaskType.PRE_PROCESSING: frozenset({Stage.PRE}),
    TaskType.POST_PROCESSING: frozenset({Stage.POST}),
    TaskType.STORAGE: frozenset(Stage),
    TaskType.SHALLOW: frozenset({Stage.ANALYSIS}),
    TaskType.MODEL: frozenset({Stage.ANALYSIS}),
}
"""Which stages a declared type may sit in: a storage service can store at any stage, the
others belong to one stage; a mismatch is almost always a typo in the description."""


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
