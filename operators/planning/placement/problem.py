"""Task categories and the placement problem shared by every policy (seed 000, §VI).

Categorisation (§VI-A): pre- and post-processing tasks that manage no storage are
Non-Intensive (NI); storage (database) services are High-Intensive (HI); shallow models are
Low-Intensive (LI); of each deep-learning model family the implementation with the lowest
input resolution is LI and the others HI (YOLOv4-416 LI, YOLOv4-512 HI).

Tier rules (§VI-B pruning): intensive tasks never run on the Edge; HI prefers the Cloud
then the Fog, LI the Fog then the Cloud; NI may go anywhere free, next to its predecessor
(for an entry task: the data sources, so the tier closest to them ranks first).

The placement cost, used as the MILP objective and to score every other policy, is a
lexicographic sum (derived weights keep each level above everything below it):

1. unplaced instances;
2. cores taken away by Algorithm 4 (the requirement minus the reserved share);
3. tier-priority rank (0 for the preferred tier, 1 for the second...);
4. transfer time per frame of eq. (2) between each instance and its predecessors' instances
   (0 when co-located, ``delay + S / w`` per hop otherwise, Edge-Cloud via the Fog), each
   instance pair weighted by the share of the sender's frames it carries.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tierflow.operators.planning.placement.result import PlacementError
from tierflow.operators.planning.workflow import (
    TIER_ORDER,
    NodeMetrics,
    Task,
    TaskType,
    Tier,
    Workflow,
)


class Category(enum.StrEnum):
    """Task category of §VI-A."""

    NI = "NI"
    LI = "LI"
    HI = "HI"

    @property
    def intensive(self) -> bool:
        """LI and HI tasks are intensive: they are reserved first and never on the Edge."""
        return self is not Category.NI


def categorise(workflow: Workflow) -> dict[str, Category]:
    """Category of every task of ``workflow``, by the rules of §VI-A.

    Returns:
        task name -> category.
    """
    lowest: dict[str, int] = {}
    for task in workflow.tasks:
        if task.type is TaskType.MODEL and task.model is not None and task.quality is not None:
            lowest[task.model] = min(lowest.get(task.model, task.quality), task.quality)
    return {task.name: _category(task, lowest) for task in workflow.tasks}


def _category(task: Task, lowest_quality: Mapping[str, int]) -> Category:
    match task.type:
        case TaskType.PRE_PROCESSING | TaskType.POST_PROCESSING:
            return Category.NI
        case TaskType.STORAGE:
            return Category.HI
        case TaskType.SHALLOW:
            return Category.LI
        case TaskType.MODEL:
            family = task.model or ""
            is_lowest = task.quality == lowest_quality.get(family, task.quality)
            return Category.LI if is_lowest else Category.HI


# Priority tiers of the intensive categories (§VI-B): HI on the Cloud first, LI on the Fog.
INTENSIVE_TIERS: Mapping[Category, tuple[Tier, ...]] = {
    Category.HI: (Tier.CLOUD, Tier.FOG),
    Category.LI: (Tier.FOG, Tier.CLOUD),
}


@dataclass(frozen=True)
class Instance:
    """One instance of a task to place.

    Attributes:
        id: ``<task>#<index>``.
        task: the task.
        index: instance number.
        category: the task's category.
        tiers: allowed tiers in priority order (rank = position).
        floor: lowest reservable share of the cores (1 for NI, ``min_share`` otherwise).
        ranked: False when every allowed tier ranks 0 (a non-entry NI task).
    """

    id: str
    task: Task
    index: int
    category: Category
    tiers: tuple[Tier, ...]
    floor: float
    ranked: bool = True

    @property
    def cores(self) -> float:
        """Cores at 100 % of the requirement."""
        return self.task.requires.cores

    def rank(self, tier: Tier) -> int:
        """Priority rank of ``tier`` (len(tiers) for a tier outside the allowed ones)."""
        if tier not in self.tiers:
            return len(self.tiers)
        return self.tiers.index(tier) if self.ranked else 0


@dataclass(frozen=True)
class Flow:
    """Frames from instance ``src`` to instance ``dst`` (indices into the instances).

    ``src`` is -1 for the data sources feeding an entry task. ``weight`` is the share of
    the sender's frames that take this pair; ``mbit`` the size of one frame (eq. 2's S).
    """

    src: int
    dst: int
    weight: float
    mbit: float


@dataclass(frozen=True)
class CostWeights:
    """Weights of the lexicographic placement cost (see the module docstring).

    Attributes:
        unplaced: per unplaced instance.
        reduced_core: per core removed from a requirement by Algorithm 4.
        tier_rank: per rank step away from the preferred tier.
        transfer: per ms of expected transfer time.
    """

    unplaced: float
    reduced_core: float
    tier_rank: float
    transfer: float = 1.0


@dataclass(frozen=True)
class PlacementProblem:
    """Instances, nodes, allowed pairs, flows and weights: one placement to decide.

    Attributes:
        workflow: the workflow.
        nodes: candidate nodes.
        instances: instances in topological order.
        flows: frame flows between instances (and from the sources).
        allowed: per instance, indices of nodes it may use (tier rule, platform, and its
            floor requirement fitting the node's free resources on its own).
        weights: cost weights.
        tier_index: tier -> index into the transfer matrices.
        transfer: per flow, (tiers x tiers) transfer time between distinct nodes, ms.
    """

    workflow: Workflow
    nodes: tuple[NodeMetrics, ...]
    instances: tuple[Instance, ...]
    flows: tuple[Flow, ...]
    allowed: tuple[tuple[int, ...], ...]
    weights: CostWeights
    transfer: tuple[tuple[tuple[float, ...], ...], ...]

    def pair_ms(self, flow_index: int, src_node: int | None, dst_node: int) -> float:
        """Transfer time of one frame of flow ``flow_index`` between two nodes, ms (eq. 2).

        ``src_node`` None means the data sources (a device of the sources' tier: never
        co-located with a node).
        """
        matrix = self.transfer[flow_index]
        dst_tier = TIER_ORDER.index(self.nodes[dst_node].tier)
        if src_node is None:
            return matrix[TIER_ORDER.index(self.workflow.sources.tier)][dst_tier]
        if src_node == dst_node:
            return 0.0
        return matrix[TIER_ORDER.index(self.nodes[src_node].tier)][dst_tier]

    def instance_index(self, instance_id: str) -> int:
        """Index of the instance called ``instance_id``."""
        for index, instance in enumerate(self.instances):
            if instance.id == instance_id:
                return index
        msg = f"no instance {instance_id!r}"
        raise PlacementError(msg)


def build_problem(
    workflow: Workflow,
    nodes: Sequence[NodeMetrics],
    *,
    tiers: Sequence[Tier] | None = None,
    min_share: float | None = None,
    weights: CostWeights | None = None,
) -> PlacementProblem:
    """Expand ``workflow`` into instances and flows over ``nodes``.

    Args:
        workflow: the workflow.
        nodes: candidate nodes (their ``used`` resources are not available).
        tiers: restrict every task to these tiers (cloud-only / fog-only baselines),
            except NI entry tasks, which stay next to the sources.
        min_share: Algorithm 4's floor; defaults to ``workflow.min_share``.
        weights: cost weights; derived from the instance when None.

    Raises:
        PlacementError: no nodes, duplicate node ids, or tiers without a route.
    """
    if not nodes:
        msg = "no nodes to place on"
        raise PlacementError(msg)
    names = [node.node for node in nodes]
    if len(set(names)) != len(names):
        msg = f"duplicate node ids in {names}"
        raise PlacementError(msg)
    share = workflow.min_share if min_share is None else min_share
    if not 0.0 < share <= 1.0:
        msg = f"min_share must be in (0, 1], got {share}"
        raise PlacementError(msg)
    _check_routes(workflow, nodes)
    categories = categorise(workflow)
    instances = tuple(
        _instance(workflow, task, index, categories[task.name], tiers, share)
        for task in workflow.tasks
        for index in range(task.instances)
    )
    flows = _flows(workflow, instances)
    transfer = tuple(_matrix(workflow, flow.mbit) for flow in flows)
    allowed = tuple(_allowed(instance, nodes) for instance in instances)
    problem = PlacementProblem(
        workflow, tuple(nodes), instances, flows, allowed, CostWeights(1, 1, 1), transfer
    )
    return _with_weights(problem, weights)


def _check_routes(workflow: Workflow, nodes: Sequence[NodeMetrics]) -> None:
    """Every pair of tiers a transfer may cross must be connected (eq. 2 needs a route)."""
    count = {tier: sum(node.tier is tier for node in nodes) for tier in TIER_ORDER}
    count[workflow.sources.tier] += 1
    for a in TIER_ORDER:
        for b in TIER_ORDER:
            needed = count[a] >= 2 if a is b else count[a] and count[b]
            if needed and workflow.route(a, b) is None:
                msg = f"the nodes span tiers {a} and {b} but the workflow has no link between them"
                raise PlacementError(msg)


def _instance(
    workflow: Workflow,
    task: Task,
    index: int,
    category: Category,
    only: Sequence[Tier] | None,
    min_share: float,
) -> Instance:
    allowed: tuple[Tier, ...]
    if category.intensive:
        allowed = INTENSIVE_TIERS[category]
    elif not task.after:
        # An entry NI task goes next to its predecessor, the data sources (Algorithm 3,
        # step 8): rank tiers by their delay from the sources' tier.
        source = workflow.sources.tier
        allowed = tuple(sorted(TIER_ORDER, key=lambda tier: _delay(workflow, source, tier)))
    else:
        allowed = TIER_ORDER
    at_source = not category.intensive and not task.after
    if only is not None and not at_source:
        # Cloud-only / fog-only move the services, not the cameras: NI tasks fed straight by
        # the sources stay next to them, as Resize does in the Cloud-only and Fog-only
        # pipelines of §VII-A.
        allowed = tuple(tier for tier in allowed if tier in only)
    floor = min_share if category.intensive else 1.0
    # Non-entry NI tasks have no tier preference: every allowed tier ranks 0.
    ranked = category.intensive or not task.after
    return Instance(f"{task.name}#{index}", task, index, category, allowed, floor, ranked)


def _delay(workflow: Workflow, a: Tier, b: Tier) -> float:
    hops = workflow.route(a, b)
    return math.inf if hops is None else sum(hop.delay_ms for hop in hops)


def _flows(workflow: Workflow, instances: Sequence[Instance]) -> tuple[Flow, ...]:
    by_task: dict[str, list[int]] = {}
    for index, instance in enumerate(instances):
        by_task.setdefault(instance.task.name, []).append(index)
    flows: list[Flow] = []
    source_mbit = workflow.frame_mbit(workflow.sources.quality)
    for task in workflow.tasks:
        receivers = by_task[task.name]
        if not task.after:
            flows.extend(Flow(-1, dst, 1.0, source_mbit) for dst in receivers)
            continue
        for pred_name in task.after:
            pred = workflow.task(pred_name)
            # A frame of the sender goes to one successor task and, within it, to one of
            # its instances: without the quality assignment we assume even splits.
            weight = 1.0 / (len(workflow.successors(pred_name)) * task.instances)
            quality = task.quality or pred.quality or workflow.input_quality(pred)
            mbit = workflow.frame_mbit(quality)
            flows.extend(
                Flow(src, dst, weight, mbit) for src in by_task[pred_name] for dst in receivers
            )
    return tuple(flows)


def _matrix(workflow: Workflow, mbit: float) -> tuple[tuple[float, ...], ...]:
    rows: list[tuple[float, ...]] = []
    for a in TIER_ORDER:
        row: list[float] = []
        for b in TIER_ORDER:
            hops = workflow.route(a, b)
            row.append(
                math.inf
                if hops is None
                else sum(hop.delay_ms + 1000.0 * mbit / hop.bandwidth_mbps for hop in hops)
            )
        rows.append(tuple(row))
    return tuple(rows)


def _allowed(instance: Instance, nodes: Sequence[NodeMetrics]) -> tuple[int, ...]:
    need = instance.task.requires
    floor = need.with_cores(need.cores * instance.floor)
    out: list[int] = []
    for index, node in enumerate(nodes):
        if node.tier not in instance.tiers:
            continue
        if instance.task.accelerator is not None and node.accelerator != instance.task.accelerator:
            continue
        if floor.fits_in(node.free):
            out.append(index)
    return tuple(out)


def _with_weights(problem: PlacementProblem, weights: CostWeights | None) -> PlacementProblem:
    """Derive weights that make the cost lexicographic on this instance."""
    if weights is not None:
        return _replace_weights(problem, weights)
    worst_transfer = 0.0
    for index, flow in enumerate(problem.flows):
        finite = [v for row in problem.transfer[index] for v in row if math.isfinite(v)]
        worst_transfer += flow.weight * max(finite, default=0.0)
    worst_rank = sum(len(instance.tiers) for instance in problem.instances)
    total_cores = sum(instance.cores for instance in problem.instances)
    tier_rank = 1.0 + worst_transfer
    # 1/100 core of reduction outweighs every rank step: a full requirement on the second
    # tier beats a trimmed one on the first, as in Algorithm 2.
    reduced_core = 100.0 * (1.0 + worst_rank) * tier_rank
    unplaced = (1.0 + total_cores) * reduced_core
    return _replace_weights(problem, CostWeights(unplaced, reduced_core, tier_rank))


def _replace_weights(problem: PlacementProblem, weights: CostWeights) -> PlacementProblem:
    return PlacementProblem(
        problem.workflow,
        problem.nodes,
        problem.instances,
        problem.flows,
        problem.allowed,
        weights,
        problem.transfer,
    )


def shortfall(problem: PlacementProblem, i: int, *, full: bool = False) -> str:
    """Which requirement of instance ``i`` no node of its tiers can meet on its own.

    Args:
        problem: the problem.
        i: instance index.
        full: judge cores at 100 % instead of the instance's floor.

    Returns:
        e.g. ``"storage 51200 MB (at most 20000 MB free on a fog node)"``; empty when some
        node could hold it alone.
    """
    instance = problem.instances[i]
    task = instance.task
    tiers = "/".join(instance.tiers) or "allowed"
    nodes = [
        node
        for node in problem.nodes
        if node.tier in instance.tiers and task.accelerator in (None, node.accelerator)
    ]
    if not nodes:
        platform = f" with a {task.accelerator} accelerator" if task.accelerator else ""
        return f"there is no {tiers} node{platform}"
    need = task.requires
    cores = need.cores if full else need.cores * instance.floor
    checks = (
        ("cores", cores, "", max(node.free.cores for node in nodes)),
        ("memory", need.memory_mb, " MB", max(node.free.memory_mb for node in nodes)),
        (
            "accelerator memory",
            need.accelerator_memory_mb,
            " MB",
            max(node.free.accelerator_memory_mb for node in nodes),
        ),
        ("storage", need.storage_mb, " MB", max(node.free.storage_mb for node in nodes)),
    )
    return "; ".join(
        f"{label} {amount:g}{unit} (at most {best:g}{unit} free on a {tiers} node)"
        for label, amount, unit, best in checks
        if amount > best + 1e-9
    )


Assignment = Mapping[int, tuple[int, float]]
"""instance index -> (node index, reserved cores); missing instances are unplaced."""


def evaluate(problem: PlacementProblem, assignment: Assignment) -> tuple[float, float]:
    """The placement cost of ``assignment`` and its transfer part (ms).

    Returns:
        (cost, transfer_ms).
    """
    weights = problem.weights
    cost = 0.0
    for index, instance in enumerate(problem.instances):
        if index not in assignment:
            cost += weights.unplaced
            continue
        node, cores = assignment[index]
        cost += weights.reduced_core * max(0.0, instance.cores - cores)
        cost += weights.tier_rank * instance.rank(problem.nodes[node].tier)
    transfer = 0.0
    for flow_index, flow in enumerate(problem.flows):
        if flow.dst not in assignment or (flow.src >= 0 and flow.src not in assignment):
            continue
        src = None if flow.src < 0 else assignment[flow.src][0]
        transfer += flow.weight * problem.pair_ms(flow_index, src, assignment[flow.dst][0])
    return cost + weights.transfer * transfer, transfer
