"""Algorithms 2-4 of seed 000 (§VI-B/C) as one mixed-integer program solved by HiGHS.

How the program relates to the algorithms:

- **Category-tier rules** (§VI-B pruning, Algorithm 3 steps 4-7) are constraints: a binary
  ``x[i,n]`` exists only for nodes of an instance's allowed tiers (intensive tasks never on
  the Edge; cloud-only / fog-only restrict every task) whose free resources can hold the
  instance's floor requirement.
- **Reservation priorities** (Algorithm 2: HI on the Cloud first then the Fog, LI the
  reverse) become the tier-rank term of the objective. Its weight sits below the Algorithm 4
  term, so, like Algorithm 2, a full reservation on the second tier beats a trimmed one on
  the first, and above the transfer term, so locality never overrides the priority.
- **Adjustment** (Algorithm 4) is a continuous share: ``u[i,n]`` cores with
  ``floor * c_i * x[i,n] <= u[i,n] <= c_i * x[i,n]`` (floor 50 % for intensive tasks, 100 %
  for NI, which Algorithm 4 never touches) and ``sum_i u[i,n] <= free cores of n``. Cores
  taken away are charged per core, so the solver trims only when capacity is short, and it
  may spread the reduction over several tasks where Algorithm 4 takes it evenly from the
  reservations of one node. Memory, accelerator memory and storage are never trimmed.
- **Next to the predecessor** (Algorithm 3 step 8) is the transfer term of eq. (2): for
  every pair of predecessor/successor instances the cost is the tier-to-tier transfer time,
  linearised with ``w[f,A,B] >= y_src[A] + y_dst[B] - 1`` over tier indicators ``y``, minus
  a co-location credit ``c[f,n] <= x[src,n], x[dst,n]`` (eq. 2: 0 on the same node).
- **Unplaced** instances are a slack ``o[i]`` with the highest weight, so the program is
  always feasible and reports what could not fit instead of failing.

The greedy algorithms decide tier by tier and task by task; the program decides all at once,
so its cost is never above theirs under the same weights (tested), and equals a brute force
over all assignments on small instances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import highspy
import numpy as np

from tierflow.operators.planning import highs
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.placement.problem import Assignment, PlacementProblem, shortfall
from tierflow.operators.planning.placement.result import Unplaced
from tierflow.operators.planning.workflow import TIER_ORDER


def solve_milp(
    problem: PlacementProblem, *, time_limit_s: float = 10.0
) -> tuple[SolveStatus, Assignment, tuple[Unplaced, ...], str]:
    """Solve the placement program.

    Args:
        problem: the placement problem (instances, allowed nodes, flows, weights).
        time_limit_s: HiGHS time limit, s.

    Returns:
        (status, assignment, unplaced, message). On a time limit the assignment is the best
        incumbent (possibly empty); on a solver error it is empty.
    """
    started = time.perf_counter()
    h = highs.new_model()
    nodes, instances, weights = problem.nodes, problem.instances, problem.weights
    pairs = [(i, n) for i, allowed in enumerate(problem.allowed) for n in allowed]
    pair_index = {pair: k for k, pair in enumerate(pairs)}
    npairs = len(pairs)
    x = highs.columns(h.addBinaries(npairs)) if npairs else np.zeros(0, dtype=np.int32)
    cores = np.array([instances[i].cores for i, _ in pairs], dtype=np.float64)
    u = (
        highs.columns(h.addVariables(npairs, lb=0.0, ub=cores.tolist()))
        if npairs
        else np.zeros(0, dtype=np.int32)
    )
    o = highs.columns(h.addVariables(len(instances), lb=0.0, ub=1.0))
    rows = highs.Rows()
    costs: dict[int, float] = {}

    def cost(col: int, value: float) -> None:
        costs[col] = costs.get(col, 0.0) + value

    # Each instance on exactly one allowed node, or unplaced (o = 1).
    for i, instance in enumerate(instances):
        mine = [pair_index[(i, n)] for n in problem.allowed[i]]
        rows.add([*x[mine], o[i]], [1.0] * (len(mine) + 1), 1.0, 1.0)
        # o costs W_u; the c_i * (1 - o_i) part of the reduction term moves to the offset.
        cost(int(o[i]), weights.unplaced - weights.reduced_core * instance.cores)
    # Share bounds of Algorithm 4: floor * c * x <= u <= c * x.
    for k, (i, _) in enumerate(pairs):
        c, floor = instances[i].cores, instances[i].floor
        rows.add([u[k], x[k]], [1.0, -c], upper=0.0)
        rows.add([u[k], x[k]], [1.0, -floor * c], lower=0.0)
        cost(int(u[k]), -weights.reduced_core)
        cost(int(x[k]), weights.tier_rank * instances[i].rank(nodes[pairs[k][1]].tier))
    # Node capacities: cores through the shares, the rest at full requirement.
    on_node: dict[int, list[int]] = {}
    for k, (_, n) in enumerate(pairs):
        on_node.setdefault(n, []).append(k)
    for n, ks in on_node.items():
        free = nodes[n].free
        rows.add(u[ks], [1.0] * len(ks), upper=free.cores)
        for attr in ("memory_mb", "accelerator_memory_mb", "storage_mb"):
            need = [getattr(instances[pairs[k][0]].task.requires, attr) for k in ks]
            if any(need):
                rows.add(x[ks], need, upper=getattr(free, attr))
    _add_flows(problem, h, rows, x, pair_index, cost)
    rows.flush(h)
    costs_array = np.zeros(h.getNumCol(), dtype=np.float64)
    for col, value in costs.items():
        costs_array[col] = value
    highs.set_costs(h, costs_array)
    h.changeObjectiveOffset(weights.reduced_core * sum(inst.cores for inst in instances))

    solved = highs.solve(h, time_limit_s=max(0.0, time_limit_s - (time.perf_counter() - started)))
    return _decode(problem, solved, pairs, x, u)


def _add_flows(
    problem: PlacementProblem,
    h: highspy.Highs,
    rows: highs.Rows,
    x: highs.ColumnIndices,
    pair_index: dict[tuple[int, int], int],
    add_cost: Callable[[int, float], None],
) -> None:
    """The eq. (2) transfer term, linearised over tiers with a co-location credit."""
    nodes = problem.nodes
    for f, flow in enumerate(problem.flows):
        dst_nodes = problem.allowed[flow.dst]
        if not dst_nodes:
            continue
        if flow.src < 0:
            # From the data sources: a linear cost per destination node.
            for n in dst_nodes:
                add_cost(
                    int(x[pair_index[(flow.dst, n)]]), flow.weight * problem.pair_ms(f, None, n)
                )
            continue
        src_nodes = problem.allowed[flow.src]
        if not src_nodes:
            continue
        src_tiers = {nodes[n].tier for n in src_nodes}
        dst_tiers = {nodes[n].tier for n in dst_nodes}
        matrix = problem.transfer[f]
        for a in sorted(src_tiers, key=TIER_ORDER.index):
            for b in sorted(dst_tiers, key=TIER_ORDER.index):
                delay = matrix[TIER_ORDER.index(a)][TIER_ORDER.index(b)]
                # No same-tier link means a single node there: co-located, eq. (2) gives 0.
                if delay <= 0.0 or not math.isfinite(delay):
                    continue
                w = int(highs.columns(h.addVariables(1, lb=0.0, ub=1.0))[0])
                src_cols = [
                    int(x[pair_index[(flow.src, n)]]) for n in src_nodes if nodes[n].tier is a
                ]
                dst_cols = [
                    int(x[pair_index[(flow.dst, n)]]) for n in dst_nodes if nodes[n].tier is b
                ]
                cols = [w, *src_cols, *dst_cols]
                coefs = [1.0] + [-1.0] * (len(src_cols) + len(dst_cols))
                rows.add(cols, coefs, lower=-1.0)
                add_cost(w, flow.weight * delay)
        for n in set(src_nodes) & set(dst_nodes):
            same = matrix[TIER_ORDER.index(nodes[n].tier)][TIER_ORDER.index(nodes[n].tier)]
            if same <= 0.0 or not math.isfinite(same):
                continue
            credit = int(highs.columns(h.addVariables(1, lb=0.0, ub=1.0))[0])
            rows.add([credit, int(x[pair_index[(flow.src, n)]])], [1.0, -1.0], upper=0.0)
            rows.add([credit, int(x[pair_index[(flow.dst, n)]])], [1.0, -1.0], upper=0.0)
            add_cost(credit, -flow.weight * same)


def _decode(
    problem: PlacementProblem,
    solved: highs.Solved,
    pairs: list[tuple[int, int]],
    x: highs.ColumnIndices,
    u: highs.ColumnIndices,
) -> tuple[SolveStatus, Assignment, tuple[Unplaced, ...], str]:
    instances = problem.instances
    assignment: dict[int, tuple[int, float]] = {}
    if solved.values is not None:
        for k, (i, n) in enumerate(pairs):
            if solved.values[x[k]] > 0.5:
                c, floor = instances[i].cores, instances[i].floor
                share_cores = min(c, max(floor * c, float(solved.values[u[k]])))
                assignment[i] = (n, share_cores)
    unplaced = tuple(
        Unplaced(instance.id, instance.task.name, _reason(problem, i, solved))
        for i, instance in enumerate(instances)
        if i not in assignment
    )
    return solved.status, assignment, unplaced, solved.message


def _reason(problem: PlacementProblem, i: int, solved: highs.Solved) -> str:
    instance = problem.instances[i]
    need = instance.task.requires
    tiers = "/".join(instance.tiers) or "no tier"
    floor = f"{instance.floor * need.cores:g} of {need.cores:g} cores, {need.memory_mb:g} MB"
    if solved.values is None:
        return f"the solver found no placement ({solved.message})"
    alone = shortfall(problem, i)
    if alone:
        return f"needs {alone}"
    return f"the {tiers} nodes that could hold it ({floor}) are taken at the optimum"
