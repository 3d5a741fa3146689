"""AVEC's placement policies (seed 004, §6 and its Algorithm 1) on the node metrics template.

AVEC discovers nodes by broadcasting a template each node fills in (GPU memory available, GPU cores,
latency, bandwidth...; our :class:`~tierflow.operators.planning.workflow.NodeMetrics`, the fields of
``control.nodes``). Every policy first applies the same checks (platform, then enough memory) and
then picks:

1. ``fifo``: the first node in the list that passes;
2. ``random``: nodes in a seeded random order, the first that passes;
3. ``best-bandwidth``: the passing node with the highest bandwidth;
4. ``best-latency``: the passing node with the lowest latency;
5. ``best-compute``: the passing node with the most compute (GPU cores);
6. ``spread``: the passing node with the most free (GPU) memory;
7. ``gpu-aware``: GPU-aware edge-adaptive, Algorithm 1: a weighted sum
   ``alpha*latency + beta*bandwidth + gamma*GPU memory + delta*GPU cores`` with
   heavy (1, 1, 10, 10), middle (5, 5, 5, 5) and light (10, 10, 1, 1) weights; ties go to
   ``spread``.

Adaptations, all deliberate:

- The checks cover every requirement a task declares (cores, memory, accelerator memory,
  storage), not only GPU memory and disk, so a policy never over-commits a node.
- On nodes without an accelerator (our Table I tiers) and for tasks that need none, "GPU
  memory" and "GPU cores" become free memory and free CPU cores.
- Algorithm 1 multiplies raw metrics, which rewards *higher* latency and lets memory in MB
  swamp latency in ms. We rescale each metric to [0, 1] over the passing nodes (latency
  inverted: the lowest scores 1) before weighting, keeping the weights' intent.
- For a workflow, the policy runs once per service instance in topological order against a
  ledger of free resources; weight classes follow the categories (HI heavy, LI middle,
  NI light) unless one is forced.

Also here: AVEC's migration model ``E_T = M * M_T + A_T`` (eq. 1 of seed 004,
:func:`execution_time_with_migrations_s`).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tierflow.operators.planning.placement.problem import Assignment, Category, PlacementProblem
from tierflow.operators.planning.placement.result import Unplaced
from tierflow.operators.planning.workflow import NodeMetrics, Resources


class AvecPolicy(enum.StrEnum):
    """The seven AVEC policies."""

    FIFO = "fifo"
    RANDOM = "random"
    BEST_BANDWIDTH = "best-bandwidth"
    BEST_LATENCY = "best-latency"
    BEST_COMPUTE = "best-compute"
    SPREAD = "spread"
    GPU_AWARE = "gpu-aware"


class WeightClass(enum.StrEnum):
    """Application weight classes of the GPU-aware edge-adaptive policy."""

    HEAVY = "heavy"
    MIDDLE = "middle"
    LIGHT = "light"


# (alpha latency, beta bandwidth, gamma GPU memory, delta GPU cores): Algorithm 1, seed 004.
AVEC_WEIGHTS: Mapping[WeightClass, tuple[float, float, float, float]] = {
    WeightClass.HEAVY: (1.0, 1.0, 10.0, 10.0),
    WeightClass.MIDDLE: (5.0, 5.0, 5.0, 5.0),
    WeightClass.LIGHT: (10.0, 10.0, 1.0, 1.0),
}

CATEGORY_WEIGHTS: Mapping[Category, WeightClass] = {
    Category.HI: WeightClass.HEAVY,
    Category.LI: WeightClass.MIDDLE,
    Category.NI: WeightClass.LIGHT,
}


@dataclass(frozen=True)
class Workload:
    """What one placement call asks for.

    Attributes:
        requires: resources of the workload.
        accelerator: accelerator platform it needs, or None.
        weight: weight class for ``gpu-aware``.
    """

    requires: Resources
    accelerator: str | None = None
    weight: WeightClass = WeightClass.MIDDLE

    @property
    def uses_accelerator(self) -> bool:
        """Whether GPU metrics apply (a platform or accelerator memory is required)."""
        return self.accelerator is not None or self.requires.accelerator_memory_mb > 0


def passes_checks(node: NodeMetrics, free: Resources, workload: Workload) -> bool:
    """AVEC's checks shared by all policies: platform, then enough resources."""
    if workload.accelerator is not None and node.accelerator != workload.accelerator:
        return False
    return workload.requires.fits_in(free)


def select_node(
    policy: AvecPolicy,
    nodes: Sequence[NodeMetrics],
    workload: Workload,
    *,
    free: Sequence[Resources] | None = None,
    rng: random.Random | None = None,
) -> int | None:
    """Index of the node ``policy`` chooses for ``workload``, or None when none passes.

    Args:
        policy: one of the seven policies.
        nodes: the discovered nodes, in discovery order.
        workload: what to place.
        free: free resources per node; defaults to each node's ``free``.
        rng: random source of the ``random`` policy (a fresh unseeded one when None).
    """
    free = [node.free for node in nodes] if free is None else free
    if policy is AvecPolicy.RANDOM:
        rng = rng or random.Random()  # noqa: S311 - placement, not cryptography
        untried = list(range(len(nodes)))
        while untried:
            # Draw an index, check it, exclude it on failure (AVEC's policy 2).
            n = untried.pop(rng.randrange(len(untried)))
            if passes_checks(nodes[n], free[n], workload):
                return n
        return None
    passing = [n for n in range(len(nodes)) if passes_checks(nodes[n], free[n], workload)]
    if not passing:
        return None
    memory = [_memory(free[n], workload) for n in range(len(nodes))]
    compute = [_compute(nodes[n], free[n], workload) for n in range(len(nodes))]
    if policy is AvecPolicy.FIFO:
        return passing[0]
    keys: dict[AvecPolicy, Callable[[int], float]] = {
        AvecPolicy.BEST_BANDWIDTH: lambda n: nodes[n].bandwidth_mbps,
        AvecPolicy.BEST_LATENCY: lambda n: -nodes[n].latency_ms,
        AvecPolicy.BEST_COMPUTE: lambda n: compute[n],
        AvecPolicy.SPREAD: lambda n: memory[n],
    }
    if policy in keys:
        return _first_max(passing, keys[policy])
    return _gpu_aware(nodes, passing, memory, compute, workload.weight)


def _memory(free: Resources, workload: Workload) -> float:
    return free.accelerator_memory_mb if workload.uses_accelerator else free.memory_mb


def _compute(node: NodeMetrics, free: Resources, workload: Workload) -> float:
    return float(node.accelerator_cores) if workload.uses_accelerator else free.cores


def _first_max(candidates: list[int], key: Callable[[int], float]) -> int:
    best = candidates[0]
    for n in candidates[1:]:
        # Strictly better replaces: the first node wins ties, as in AVEC's loops.
        if key(n) > key(best):
            best = n
    return best


def _gpu_aware(
    nodes: Sequence[NodeMetrics],
    passing: list[int],
    memory: list[float],
    compute: list[float],
    weight: WeightClass,
) -> int:
    alpha, beta, gamma, delta = AVEC_WEIGHTS[weight]
    latency = _scaled([-nodes[n].latency_ms for n in passing])
    bandwidth = _scaled([nodes[n].bandwidth_mbps for n in passing])
    mem = _scaled([memory[n] for n in passing])
    cores = _scaled([compute[n] for n in passing])
    sums = [
        alpha * latency[k] + beta * bandwidth[k] + gamma * mem[k] + delta * cores[k]
        for k in range(len(passing))
    ]
    top = max(sums)
    tied = [passing[k] for k in range(len(passing)) if sums[k] >= top - 1e-9]
    # Several nodes with the best weight sum: balance the load with Spread.
    return _first_max(tied, lambda n: memory[n])


def _scaled(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    if high - low <= 1e-12:
        return [1.0] * len(values)
    return [(v - low) / (high - low) for v in values]


def run_avec(
    problem: PlacementProblem,
    policy: AvecPolicy,
    *,
    seed: int | None = None,
    weight: WeightClass | None = None,
) -> tuple[Assignment, tuple[Unplaced, ...]]:
    """Place every instance of ``problem`` with ``policy``, one at a time.

    Args:
        problem: the placement problem (its tier rules are ignored: AVEC has none).
        policy: the AVEC policy.
        seed: seed of the ``random`` policy.
        weight: force one weight class for ``gpu-aware``; by category when None.
    """
    rng = random.Random(seed)  # noqa: S311 - placement, not cryptography
    free = [node.free for node in problem.nodes]
    assignment: dict[int, tuple[int, float]] = {}
    unplaced: list[Unplaced] = []
    for i, instance in enumerate(problem.instances):
        task = instance.task
        workload = Workload(
            task.requires, task.accelerator, weight or CATEGORY_WEIGHTS[instance.category]
        )
        n = select_node(policy, problem.nodes, workload, free=free, rng=rng)
        if n is None:
            need = task.requires
            reason = (
                f"{policy}: no node passes the platform and resource checks "
                f"({need.cores:g} cores, {need.memory_mb:g} MB, "
                f"{need.accelerator_memory_mb:g} MB accelerator memory)"
            )
            unplaced.append(Unplaced(instance.id, task.name, reason))
            continue
        free[n] = free[n] - task.requires
        assignment[i] = (n, task.requires.cores)
    return assignment, tuple(unplaced)


def execution_time_with_migrations_s(
    migrations: int, migration_s: float, application_s: float
) -> float:
    """AVEC's model of a workload's overall execution time, eq. 1 of seed 004.

    ``E_T = (M x M_T) + A_T``: "E_T represents overall execution time, M represents the
    number of migrations, M_T represents the time for a single migration and A_T represents
    the application execution time, i.e. the execution time for the application without the
    migration time."

    Args:
        migrations: number of migrations M.
        migration_s: time of one migration M_T, s (2.3 s edge, 3.8 s cloud in AVEC).
        application_s: execution time without migrations A_T, s.

    Returns:
        E_T, s.
    """
    return migrations * migration_s + application_s
