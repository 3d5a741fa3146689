"""Algorithms 2, 3 and 4 of seed 000 (§VI-B/C) and the cloud-only / fog-only baselines.

- **Algorithm 2** (reservation): HI instances first, then LI, each reserved at its full
  requirement on the first tier of its priority list that can hold it (HI: Cloud, then Fog;
  LI: Fog, then Cloud), i.e. "reserve on the Cloud what fits, the remainder on the Fog";
  when neither can, Algorithm 4 is triggered for that instance.
- **Algorithm 4** (adjustment): among the allowed nodes whose memory, accelerator memory and
  storage still fit, take the one with the most free cores (``getMAX``). If it offers at
  least ``min_share`` (50 %) of the cores, reserve what it has (up to the requirement).
  Otherwise the missing cores are taken evenly from the reservations on that node that stay
  at or above their own floor after the cut (steps 7-10), and the instance gets exactly its
  floor. We try the next node in the same order when a node cannot be adjusted (the paper
  stops at the first), and report the instance unplaced, with the reason, when none can.
- **Algorithm 3** (scheduling): in topological order, intensive instances take their
  reservation; NI instances take the free node (Edge included, at their full requirement:
  Algorithm 4 only adjusts intensive tasks) nearest to their predecessors, by the eq. (2)
  transfer time from the predecessors' nodes (or from the data sources for an entry task).
  Reservations are made near already reserved predecessors in the same way, so an HI task
  after an HI task lands on the same Cloud node when it fits. Ties between equally near
  nodes are broken at random when a seed is given (as in the paper) and by the most free
  cores otherwise (deterministic).

Cloud-only and fog-only run the same algorithms with every task restricted to one tier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tierflow.operators.planning.placement.problem import (
    Assignment,
    Category,
    PlacementProblem,
    shortfall,
)
from tierflow.operators.planning.placement.result import Unplaced
from tierflow.operators.planning.workflow import Resources

_EPS = 1e-9
_NI_FULL = "NI tasks are placed at their full requirement; Algorithm 4 adjusts intensive ones"


@dataclass
class _Ledger:
    """Free resources per node and the reservations made so far."""

    problem: PlacementProblem
    free: list[Resources]
    reserved: dict[int, tuple[int, float]] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def reserve(self, i: int, n: int, cores: float) -> None:
        need = self.problem.instances[i].task.requires.with_cores(cores)
        self.free[n] = self.free[n] - need
        self.reserved[i] = (n, cores)

    def reduce(self, i: int, cores: float) -> None:
        n, held = self.reserved[i]
        self.reserved[i] = (n, held - cores)
        self.free[n] = self.free[n] + Resources(cores=cores)


def run_algorithms(
    problem: PlacementProblem, *, rng: random.Random | None = None
) -> tuple[Assignment, tuple[Unplaced, ...], str]:
    """Place ``problem`` with Algorithms 2 (reservation), 4 (adjustment) and 3 (scheduling).

    Args:
        problem: the placement problem; its instances carry the allowed tiers in priority
            order and the Algorithm 4 floor.
        rng: breaks ties between equally near nodes at random; None breaks them by the most
            free cores.

    Returns:
        (assignment, unplaced with reasons, remarks on the adjustments made).
    """
    ledger = _Ledger(problem, [node.free for node in problem.nodes])
    for category in (Category.HI, Category.LI):
        for i, instance in enumerate(problem.instances):
            if instance.category is category:
                _reserve(ledger, i, rng)
    assignment: dict[int, tuple[int, float]] = {}
    for i, instance in enumerate(problem.instances):
        if instance.category.intensive:
            # Algorithm 3, steps 4-5: an intensive task takes its reservation.
            if i in ledger.reserved:
                assignment[i] = ledger.reserved[i]
            continue
        # Steps 6-7: an NI task looks for free resources, anywhere, at full requirement.
        need = instance.task.requires
        nodes = [n for n in problem.allowed[i] if need.fits_in(ledger.free[n])]
        if not nodes:
            alone = shortfall(problem, i, full=True)
            why = f"needs {alone}" if alone else "the free nodes are taken by earlier tasks"
            ledger.reasons[i] = f"{why} ({_NI_FULL})"
            continue
        n = _nearest(problem, ledger, i, nodes, assignment, rng)
        ledger.reserve(i, n, need.cores)
        assignment[i] = (n, need.cores)
    # Reductions by Algorithm 4 after an instance was scheduled change its share too.
    assignment = {i: ledger.reserved[i] for i in assignment}
    unplaced = tuple(
        Unplaced(inst.id, inst.task.name, ledger.reasons.get(i, "not placed"))
        for i, inst in enumerate(problem.instances)
        if i not in assignment
    )
    return assignment, unplaced, "; ".join(ledger.notes)


def _reserve(ledger: _Ledger, i: int, rng: random.Random | None) -> None:
    """Algorithm 2 for one instance: its tiers in priority order, else Algorithm 4."""
    problem = ledger.problem
    instance = problem.instances[i]
    need = instance.task.requires
    for tier in instance.tiers:
        nodes = [
            n
            for n in problem.allowed[i]
            if problem.nodes[n].tier is tier and need.fits_in(ledger.free[n])
        ]
        if nodes:
            ledger.reserve(i, _nearest(problem, ledger, i, nodes, ledger.reserved, rng), need.cores)
            return
    _adjust(ledger, i)


def _adjust(ledger: _Ledger, i: int) -> None:
    """Algorithm 4 for one instance whose full requirement fits nowhere."""
    problem = ledger.problem
    instance = problem.instances[i]
    need = instance.task.requires
    floor = instance.floor * need.cores
    nodes = [n for n in problem.allowed[i] if need.fits_except_cores(ledger.free[n])]
    # Step 2, getMAX: the node with the most remaining cores first.
    nodes.sort(key=lambda n: (-ledger.free[n].cores, instance.rank(problem.nodes[n].tier), n))
    best_offer = 0.0
    for n in nodes:
        free = ledger.free[n].cores
        if free >= floor - _EPS:
            # Steps 3-5: the node can give at least the floor; reserve what it has.
            ledger.reserve(i, n, min(free, need.cores))
            ledger.notes.append(
                f"{instance.id} reserved at {min(free, need.cores) / need.cores:.0%} "
                f"on {problem.nodes[n].node} (Algorithm 4)"
            )
            return
        remain = floor - max(free, 0.0)
        # Step 8: reservations on this node that stay at or above their floor after the cut.
        others = [j for j, (m, _) in ledger.reserved.items() if m == n]
        while others:
            part = remain / len(others)
            able = [j for j in others if _slack(ledger, j) >= part - _EPS]
            if len(able) == len(others):
                break
            others = able
        best_offer = max(best_offer, free + sum(_slack(ledger, j) for j in others))
        if not others:
            continue
        # Steps 9-13: cut the remainder evenly, then reserve the floor.
        part = remain / len(others)
        for j in others:
            ledger.reduce(j, part)
        ledger.reserve(i, n, floor)
        cut = ", ".join(problem.instances[j].id for j in others)
        ledger.notes.append(
            f"{instance.id} reserved at {instance.floor:.0%} on {problem.nodes[n].node}; "
            f"{cut} reduced by {part:g} cores each (Algorithm 4)"
        )
        return
    tiers = "/".join(instance.tiers)
    alone = shortfall(problem, i)
    if alone:
        ledger.reasons[i] = f"needs {alone}"
    elif not nodes:
        ledger.reasons[i] = f"the {tiers} nodes' memory and storage are taken by other tasks"
    else:
        ledger.reasons[i] = (
            f"Algorithm 4: needs at least {floor:g} of {need.cores:g} cores "
            f"({instance.floor:.0%}) on a {tiers} node; the most any node can offer after "
            f"reducing other reservations to their floors is {best_offer:g}"
        )


def _slack(ledger: _Ledger, j: int) -> float:
    """Cores reservation ``j`` can give up without going below its floor."""
    instance = ledger.problem.instances[j]
    return ledger.reserved[j][1] - instance.floor * instance.cores


def _nearest(
    problem: PlacementProblem,
    ledger: _Ledger,
    i: int,
    nodes: list[int],
    placed: Assignment,
    rng: random.Random | None,
) -> int:
    """Algorithm 3 step 8: the node nearest to the already placed predecessors of ``i``."""

    def distance(n: int) -> float:
        total = 0.0
        for f, flow in enumerate(problem.flows):
            if flow.dst != i:
                continue
            if flow.src < 0:
                total += flow.weight * problem.pair_ms(f, None, n)
            elif flow.src in placed:
                total += flow.weight * problem.pair_ms(f, placed[flow.src][0], n)
        return total

    scored = {n: round(distance(n), 9) for n in nodes}
    best = min(scored.values())
    nearest = [n for n in nodes if scored[n] == best]
    if rng is not None:
        return rng.choice(nearest)
    return max(nearest, key=lambda n: (ledger.free[n].cores, -n))
