"""Placement of a workflow's service instances on edge, fog and cloud nodes, by policy name.

One entry point, :func:`place`, runs any policy on a
:class:`~tierflow.operators.planning.workflow.Workflow` and a list of
:class:`~tierflow.operators.planning.workflow.NodeMetrics` (the ``control.nodes`` template) and
returns a :class:`PlacementResult`: instance -> node with a resource share, status, solve time, cost
on one common scale, and unplaced instances with reasons.

=================  ========================================================================
policy             what it is
=================  ========================================================================
``milp``           Algorithms 2-4 of seed 000 as one MILP in HiGHS (:mod:`.milp`)
``algorithms``     Algorithms 2 (reservation), 3 (scheduling), 4 (adjustment), seed 000
``cloud-only``     the same algorithms with every task on the Cloud
``fog-only``       the same algorithms with every task on the Fog
``requests``       the thesis's request x node program, Mode 1 or 2 (seed 003, §3.2)
``iterative``      the thesis's iterative search baseline (seed 003, §6.1)
``fifo`` ...       AVEC's seven policies (seed 004, §6): ``fifo``, ``random``,
                   ``best-bandwidth``, ``best-latency``, ``best-compute``, ``spread``,
                   ``gpu-aware`` (heavy / middle / light weights)
``auto``           ``algorithms`` when a Fog or Cloud node is present, else ``requests``
=================  ========================================================================

Submodules: :mod:`.problem` (categories NI/LI/HI, instances, the cost), :mod:`.algorithms`,
:mod:`.milp`, :mod:`.requests` (also usable on its own: :func:`solve_requests`,
:func:`iterative_search`), :mod:`.avec` (also :func:`select_node` for one workload).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tierflow.operators.planning.highs import SolveStatus, absorb_banner
from tierflow.operators.planning.placement.algorithms import run_algorithms
from tierflow.operators.planning.placement.avec import (
    AVEC_WEIGHTS,
    AvecPolicy,
    WeightClass,
    Workload,
    execution_time_with_migrations_s,
    run_avec,
    select_node,
)
from tierflow.operators.planning.placement.milp import solve_milp
from tierflow.operators.planning.placement.problem import (
    Assignment,
    Category,
    CostWeights,
    Instance,
    PlacementProblem,
    build_problem,
    categorise,
    evaluate,
)
from tierflow.operators.planning.placement.requests import (
    EdgeNode,
    LoadedModel,
    Mode,
    ModelSpec,
    Request,
    RequestPlan,
    RequestProblem,
    iterative_search,
    solve_requests,
)
from tierflow.operators.planning.placement.result import (
    Placement,
    PlacementError,
    PlacementResult,
    Unplaced,
)
from tierflow.operators.planning.workflow import NodeMetrics, Resources, Tier, Workflow

__all__ = [
    "AUTO",
    "AVEC_WEIGHTS",
    "POLICIES",
    "AvecPolicy",
    "Category",
    "CostWeights",
    "EdgeNode",
    "Instance",
    "LoadedModel",
    "Mode",
    "ModelSpec",
    "Placement",
    "PlacementError",
    "PlacementProblem",
    "PlacementResult",
    "Provisioning",
    "Request",
    "RequestPlan",
    "RequestProblem",
    "SolveStatus",
    "Unplaced",
    "WeightClass",
    "Workload",
    "build_problem",
    "categorise",
    "evaluate",
    "execution_time_with_migrations_s",
    "iterative_search",
    "place",
    "provision",
    "resolve_policy",
    "select_node",
    "solve_requests",
    "workflow_requests",
]

AUTO = "auto"
"""The default of a deployment: the seed's algorithms where the continuum has tiers to tell
apart; on Edge nodes alone (one machine, say) Algorithm 2 has nowhere to put LI and HI
tasks ("intensive tasks can only be deployed on the Fog and Cloud", seed 000 §VI-B), so
the thesis's tier-agnostic request program places them."""

POLICIES: tuple[str, ...] = (
    AUTO,
    "milp",
    "algorithms",
    "cloud-only",
    "fog-only",
    "requests",
    "iterative",
    *(policy.value for policy in AvecPolicy),
)


def place(
    workflow: Workflow,
    nodes: Sequence[NodeMetrics] | None = None,
    policy: str = "milp",
    *,
    time_limit_s: float = 10.0,
    seed: int | None = None,
    min_share: float | None = None,
    weights: CostWeights | None = None,
    tiers: Sequence[Tier | str] | None = None,
    weight: WeightClass | str | None = None,
    mode: Mode | int = Mode.AVAILABLE,
    respect_capacity: bool = True,
) -> PlacementResult:
    """Place every service instance of ``workflow`` with the policy called ``policy``.

    Args:
        workflow: the workflow.
        nodes: candidate nodes; the workflow's Table I tiers when None.
        policy: one of :data:`POLICIES`.
        time_limit_s: solver time limit (``milp``, ``requests``), s.
        seed: random seed (``random``; tie-breaking of ``algorithms`` and the baselines).
        min_share: Algorithm 4's floor; the workflow's ``min_share`` when None.
        weights: cost weights; derived from the instance when None.
        tiers: restrict ``milp`` / ``algorithms`` to these tiers.
        weight: force one ``gpu-aware`` weight class (heavy, middle, light); by category
            (HI heavy, LI middle, NI light) when None.
        mode: back-end mode of ``requests`` / ``iterative`` (1 available memory, 2 total).
        respect_capacity: ``iterative`` only: False ignores memory and compute, like the
            thesis's baseline.

    Raises:
        PlacementError: unknown policy or malformed input. Solver outcomes (infeasible,
            time limit, errors) are statuses of the result, never exceptions.
    """
    absorb_banner()
    started = time.perf_counter()
    nodes = workflow.nodes() if nodes is None else tuple(nodes)
    policy = resolve_policy(policy, nodes)
    scoring = build_problem(workflow, nodes, min_share=min_share, weights=weights)
    restricted = _tiers(tiers)
    message = ""
    rng = None if seed is None else random.Random(seed)  # noqa: S311 - not cryptography
    if policy in ("milp", "algorithms", "cloud-only", "fog-only"):
        only = {"cloud-only": (Tier.CLOUD,), "fog-only": (Tier.FOG,)}.get(policy, restricted)
        problem = scoring
        if only is not None:
            problem = build_problem(
                workflow, nodes, tiers=only, min_share=min_share, weights=scoring.weights
            )
        if policy == "milp":
            status, assignment, unplaced, message = solve_milp(problem, time_limit_s=time_limit_s)
        else:
            assignment, unplaced, message = run_algorithms(problem, rng=rng)
            status = _heuristic_status(assignment, unplaced)
    elif policy in ("requests", "iterative"):
        plan = _run_requests(scoring, policy, Mode(mode), time_limit_s, respect_capacity)
        assignment = _from_plan(scoring, plan)
        unplaced, status, message = plan.rejected, plan.status, plan.message
    elif policy in AvecPolicy.__members__.values():
        weight_class = None if weight is None else _weight(weight)
        assignment, unplaced = run_avec(scoring, AvecPolicy(policy), seed=seed, weight=weight_class)
        status = _heuristic_status(assignment, unplaced)
    else:
        msg = f"unknown placement policy {policy!r}; expected one of {', '.join(POLICIES)}"
        raise PlacementError(msg)
    return _result(scoring, policy, status, assignment, unplaced, started, message)


def resolve_policy(policy: str, nodes: Sequence[NodeMetrics]) -> str:
    """The policy :data:`AUTO` stands for on ``nodes``; any other name unchanged."""
    if policy != AUTO:
        return policy
    return "algorithms" if any(n.tier is not Tier.EDGE for n in nodes) else "requests"


@dataclass(frozen=True)
class Provisioning:
    """What :func:`provision` decided: the placement node agents run, and why it changed.

    Attributes:
        result: the placement: demanded instances the program served, plus (Mode 1) loaded
            instances nobody demands that were not evicted.
        plan: the thesis program's plan (its ``load`` and ``unload`` are (node, task) pairs).
        kept: (node, task) of loaded instances kept without demand (Mode 1 only).
    """

    result: PlacementResult
    plan: RequestPlan
    kept: tuple[tuple[str, str], ...] = ()


def provision(
    workflow: Workflow,
    nodes: Sequence[NodeMetrics],
    demand: Collection[str],
    loaded: Mapping[str, Sequence[LoadedModel]],
    *,
    mode: Mode | int = Mode.AVAILABLE,
    time_limit_s: float = 10.0,
    evict_idle_s: float | None = None,
    now_s: float | None = None,
) -> Provisioning:
    """The thesis's back end on a running deployment (seed 003, §4.3 and §5.3).

    A task is a model; it is requested while ``demand`` names it (frames arrive for it) and
    loaded where ``loaded`` says it runs, with its real use (frames served, last frame). The
    request program of §3.2 (:func:`solve_requests`) then decides, in ``mode``:

    - Mode 1 (latency first): loaded models cost no memory; a model nobody requests stays
      loaded unless a request needs its memory, when the least recently used idle model
      goes first (ties: least frequently used), or it idled longer than ``evict_idle_s``.
    - Mode 2 (stability first): the program sees total memory and is followed strictly:
      whatever the plan does not use is unloaded.

    Args:
        workflow: every task that may be provisioned (the catalogue of models).
        nodes: the live nodes.
        demand: names of the tasks requested now.
        loaded: node -> the tasks running there, with their use.
        mode: the back-end mode.
        time_limit_s: HiGHS time limit per solve, s.
        evict_idle_s: Mode 1: also unload models idle longer than this, s.
        now_s: the clock of ``last_used_s`` (needed with ``evict_idle_s``).

    Raises:
        PlacementError: a demanded task the workflow does not have, or malformed input.
    """
    absorb_banner()
    started = time.perf_counter()
    mode = Mode(mode)
    known = {task.name for task in workflow.tasks}
    unknown = sorted(set(demand) - known)
    if unknown:
        msg = f"demand names tasks the workflow does not have: {', '.join(unknown)}"
        raise PlacementError(msg)
    scoring = build_problem(workflow, nodes)
    full = workflow_requests(scoring, mode)
    rows = [r for r, req in enumerate(full.requests) if req.model in demand]
    edge_nodes = tuple(
        dataclasses.replace(
            node, loaded=tuple(m for m in loaded.get(node.name, ()) if m.model in known)
        )
        for node in full.nodes
    )
    problem = RequestProblem(
        tuple(full.requests[r] for r in rows),
        full.models,
        edge_nodes,
        full.tau_ms[rows],
        full.theta_ms[rows],
    )
    plan = solve_requests(
        problem, mode, time_limit_s=time_limit_s, evict_idle_s=evict_idle_s, now_s=now_s
    )
    assignment = _from_plan(scoring, plan)
    kept: list[tuple[str, str]] = []
    if mode is Mode.AVAILABLE:
        # Mode 1 deletes nothing on the solver's word: an idle model stays where it runs.
        placed = {scoring.instances[i].task.name for i in assignment}
        names = [node.node for node in scoring.nodes]
        for node in edge_nodes:
            for model in node.loaded:
                if model.model in placed or (node.name, model.model) in plan.unload:
                    continue
                index = next(
                    i for i, inst in enumerate(scoring.instances) if inst.task.name == model.model
                )
                assignment[index] = (names.index(node.name), 0.0)
                placed.add(model.model)
                kept.append((node.name, model.model))
    result = _result(
        scoring,
        f"provision-{plan.policy}",
        plan.status,
        assignment,
        plan.rejected,
        started,
        plan.message,
    )
    return Provisioning(result, plan, tuple(kept))


def _tiers(tiers: Sequence[Tier | str] | None) -> tuple[Tier, ...] | None:
    if tiers is None:
        return None
    try:
        return tuple(Tier(tier) for tier in tiers)
    except ValueError:
        msg = f"tiers: expected names among edge, fog, cloud; got {list(tiers)}"
        raise PlacementError(msg) from None


def _weight(weight: WeightClass | str) -> WeightClass:
    try:
        return WeightClass(weight)
    except ValueError:
        msg = f"weight: expected heavy, middle or light; got {weight!r}"
        raise PlacementError(msg) from None


def _heuristic_status(assignment: Assignment, unplaced: Sequence[Unplaced]) -> SolveStatus:
    if not unplaced:
        return SolveStatus.FEASIBLE
    return SolveStatus.PARTIAL if assignment else SolveStatus.INFEASIBLE


def workflow_requests(problem: PlacementProblem, mode: Mode = Mode.AVAILABLE) -> RequestProblem:
    """The workflow's instances as requests of the thesis program (seed 003, §3.2).

    Each instance is a request for its task's "model" (memory counted once per node, compute
    per instance); tau is the round trip between the data sources and the node (eq. 2 for
    the instance's input frame out, the route delay back), theta the task's ``service_ms``.
    Pairs where the platform, accelerator memory or storage cannot fit are forbidden.

    Memory per node, MB, is what ``mode`` sees: the free memory (capacity less ``used``) in
    Mode 1, the total memory in Mode 2 ("the only difference between the modes from the
    solver's perspective is the use of each node's total amount of RAM as opposed to just
    the amount of RAM available", seed 003 §6.2.1). Compute is the free cores in both.
    """
    workflow = problem.workflow
    requests = tuple(Request(inst.id, inst.task.name) for inst in problem.instances)
    models = {
        task.name: ModelSpec(task.name, task.requires.memory_mb, task.requires.cores)
        for task in workflow.tasks
    }
    nodes = tuple(
        EdgeNode(
            node.node,
            node.capacity.memory_mb if Mode(mode) is Mode.TOTAL else node.free.memory_mb,
            node.free.cores,
        )
        for node in problem.nodes
    )
    tau = np.full((len(requests), len(nodes)), np.inf)
    theta = np.zeros_like(tau)
    source = workflow.sources.tier
    for r, inst in enumerate(problem.instances):
        mbit = workflow.frame_mbit(workflow.input_quality(inst.task))
        need = inst.task.requires
        # Memory and compute are the program's own constraints; the rest filters pairs.
        other = Resources(0.0, 0.0, need.accelerator_memory_mb, need.storage_mb)
        for n, node in enumerate(problem.nodes):
            platform_ok = inst.task.accelerator in (None, node.accelerator)
            if not (platform_ok and other.fits_in(node.free)):
                continue
            back = sum(hop.delay_ms for hop in workflow.route(source, node.tier) or ())
            tau[r, n] = workflow.transfer_ms(source, node.tier, mbit) + back
            theta[r, n] = inst.task.service_ms
    return RequestProblem(requests, models, nodes, tau, theta)


def _run_requests(
    problem: PlacementProblem,
    policy: str,
    mode: Mode,
    time_limit_s: float,
    respect_capacity: bool,
) -> RequestPlan:
    requests = workflow_requests(problem, mode)
    if policy == "iterative":
        return iterative_search(requests, mode, respect_capacity=respect_capacity)
    return solve_requests(requests, mode, time_limit_s=time_limit_s)


def _from_plan(problem: PlacementProblem, plan: RequestPlan) -> dict[int, tuple[int, float]]:
    names = [node.node for node in problem.nodes]
    return {
        problem.instance_index(request): (names.index(node), 0.0)
        for request, node in plan.assignment.items()
    }


def _result(
    problem: PlacementProblem,
    policy: str,
    status: SolveStatus,
    assignment: Assignment,
    unplaced: Sequence[Unplaced],
    started: float,
    message: str,
) -> PlacementResult:
    full: dict[int, tuple[int, float]] = {}
    placements: dict[str, Placement] = {}
    for i, instance in enumerate(problem.instances):
        if i not in assignment:
            continue
        n, cores = assignment[i]
        need = instance.task.requires
        # Policies without shares (AVEC, the thesis program) reserve the full requirement.
        cores = cores if cores > 0 else need.cores
        full[i] = (n, cores)
        node = problem.nodes[n]
        placements[instance.id] = Placement(
            instance.id,
            instance.task.name,
            node.node,
            node.tier,
            cores / need.cores,
            need.with_cores(cores),
        )
    cost, transfer = evaluate(problem, full)
    return PlacementResult(
        policy=policy,
        status=status,
        placements=placements,
        unplaced=tuple(unplaced),
        solve_time_s=time.perf_counter() - started,
        cost=cost,
        transfer_ms=transfer,
        message=message,
    )
