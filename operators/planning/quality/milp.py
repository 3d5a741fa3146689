"""The ``milp`` policy: Algorithm 1 of Houmani et al. (SBAC-PAD 2021) as a program in HiGHS.

The program is :class:`~.program.Program` (eq. 1-6 on the counts of :mod:`.compiled`); with
options that fix frame rates eq. 3's mean is a ratio, solved by the iteration of
:mod:`.ratio`. Algorithm 1's preference rule (steps 10-12) is a second, lexicographic stage:
the most accurate point with mean latency ``N/D < L* + 10 ms``, the linear row
``N - (L* + 10 ms)*D < 0``; it wins when it gains 20 points over the fastest.

Solving fast. Counts per class instead of binaries per source keep 1000 cameras at a few
hundred integer columns. HiGHS first solves the LP relaxation (a bound), then the MIP
restricted to the box ``[floor, ceil]`` of the LP point; a best-improvement local search
(:mod:`.moves`) polishes that point (or the warm start, when better); if it is proven within
``gap`` (default 0.1 % of the objective) of the LP bound it is the answer, otherwise the full
MIP starts from it. ``optimal`` therefore means "proven within ``gap``"; at the time limit
the best feasible point is returned as ``time-limit`` with its proven gap. Instances with at
most :data:`ENUMERATE_BELOW` distributions are enumerated instead: exact, and on the bench's
small instances 1-10 ms where HiGHS took 20-90 ms. The makespan objective (§VII) has a
program of its own, :mod:`.makespan`.
"""

from __future__ import annotations

import numpy as np

from tierflow.operators.planning.highs import SolveStatus, new_model
from tierflow.operators.planning.quality.compiled import (
    Budget,
    Compiled,
    IntArray,
    Outcome,
    evaluate,
)
from tierflow.operators.planning.quality.exact import (
    NO_DISTRIBUTION,
    Enumerated,
    enumerate_distributions,
    min_makespan,
)
from tierflow.operators.planning.quality.makespan import makespan_program
from tierflow.operators.planning.quality.problem import Objective
from tierflow.operators.planning.quality.program import Goal, Program
from tierflow.operators.planning.quality.ratio import minimise

ENUMERATE_BELOW = 50_000
"""``milp`` enumerates instances with at most this many distributions instead of solving."""


def milp_core(comp: Compiled, budget: Budget) -> Outcome:
    """Solve ``comp``: enumerate it when tiny, else as a MILP in a fresh HiGHS instance."""
    scored = enumerate_distributions(comp, ENUMERATE_BELOW)
    makespan = comp.problem.objective is Objective.MAKESPAN
    if scored is not None:
        return min_makespan(scored) if makespan else _pick(comp, scored)
    if makespan:
        return makespan_program(comp, budget)
    with new_model() as h:
        return _milp_solve(comp, Program(comp, h), budget)


def _pick(comp: Compiled, scored: Enumerated) -> Outcome:
    """The ``milp`` policy's answer among enumerated distributions (its lexicographic rule)."""
    ok = np.flatnonzero(scored.feasible)
    if ok.size == 0:
        return Outcome(SolveStatus.INFEASIBLE, message=NO_DISTRIBUTION)
    problem = comp.problem
    if problem.objective is Objective.UTILITY:
        best = int(ok[np.argmax(scored.utility[ok])])
        return Outcome(SolveStatus.OPTIMAL, scored.rows(np.asarray([best]))[0], "max-utility")
    lat, acc = scored.latency_s[ok], scored.accuracy[ok]
    first = int(np.argmin(lat))
    best, rule = first, "min-latency"
    pref = problem.preference
    if pref is not None:  # the most accurate less than 10 ms slower, ties to the faster
        near = np.flatnonzero(lat < lat[first] + pref.latency_s - 1e-9)
        top = near[acc[near] >= acc[near].max() - 1e-12]
        other = int(top[np.argmin(lat[top])])
        if pref.prefers(float(lat[other] - lat[first]), float(acc[first]), float(acc[other])):
            best, rule = other, pref.name
    return Outcome(SolveStatus.OPTIMAL, scored.rows(ok[[best]])[0], rule)


def _milp_solve(comp: Compiled, model: Program, budget: Budget) -> Outcome:
    problem = comp.problem
    utility = problem.objective is Objective.UTILITY
    stage = minimise(comp, model, Goal.UTILITY if utility else Goal.LATENCY, budget)
    status, x, gap1, iterations = stage.status, stage.x, stage.gap, stage.iterations
    if x is None:
        return Outcome(status, message=f"no solution from HiGHS ({status.value})")
    rule = "max-utility" if utility else "min-latency"
    pref = problem.preference
    if utility or pref is None:
        return _outcome(status, x, rule, gap1, iterations)
    # Preference rule, lexicographically: the most accurate point less than 10 ms slower.
    first = evaluate(comp, x[None, :])
    lat1, acc1 = float(first.latency_s[0]), float(first.accuracy[0])
    # Bounds first: a Lagrangian bound of the window without waiting, then stage two's LP.
    if not pref.prefers(0.0, acc1, _accuracy_bound(comp, lat1 + pref.latency_s) + 1e-9):
        return _outcome(status, x, rule, gap1, iterations)
    model.limit_latency(lat1 + pref.latency_s)
    if comp.variable_denominator:  # tie-breaking latency: the tangent at stage one's point
        model.set_goal(Goal.ACCURACY, lat1, float(comp.frames(x[None, :])[0]))
    else:
        model.set_goal(Goal.ACCURACY)
    status2, _, x_lp = model.relaxation(budget.deadline)
    acc_bound = float(comp.acc @ x_lp) / max(comp.sources, 1) + 1e-9
    if status2 is SolveStatus.OPTIMAL and not pref.prefers(0.0, acc1, acc_bound):
        return _outcome(status, x, rule, gap1, iterations)  # even the LP gains too little
    status2, x2 = model.solve(budget.deadline, budget.gap)
    iterations += 1
    if x2 is not None:
        second = evaluate(comp, x2[None, :])
        gap = float(second.latency_s[0]) - lat1
        if second.feasible[0] and pref.prefers(gap, acc1, float(second.accuracy[0])):
            x, rule, gap1 = x2, pref.name, model.proven_gap
    if status2 is SolveStatus.TIME_LIMIT:
        status = status2
    return _outcome(status, x, rule, gap1, iterations)


def _accuracy_bound(comp: Compiled, latency_s: float) -> float:
    """An upper bound on eq. 4's mean accuracy with eq. 3's mean below ``latency_s``.

    Waiting only adds to ``N``, so the window implies ``sum_v c_v x_v <= 0`` with
    ``c_v = w_v (b_v - latency_s)`` (``w_v = f_v`` over frames, 1 over sources); for any
    ``mu >= 0`` each class may then take its best ``acc_v - mu*c_v`` (weak duality), and the
    least over a grid of ``mu`` is the bound (``mu = 0``: every source on its most accurate
    option).
    """
    cost = comp.weight * (comp.base_s - latency_s)
    scale = max(float(np.abs(cost).max(initial=0.0)), 1e-12)
    mus = np.concatenate([[0.0], np.geomspace(1e-4, 1e2, 40)]) / scale
    starts = np.flatnonzero(np.r_[True, np.diff(comp.var_class) != 0])
    best = np.maximum.reduceat(comp.acc[None, :] - mus[:, None] * cost[None, :], starts, axis=1)
    return float((best @ comp.count[comp.var_class[starts]]).min()) / max(comp.sources, 1)


def _outcome(status: SolveStatus, x: IntArray, rule: str, gap: float, iterations: int) -> Outcome:
    message = ""
    if status is SolveStatus.TIME_LIMIT:
        message = f"time limit: best assignment found, within {gap:.2%} of the optimum"
    elif status is SolveStatus.FEASIBLE:
        message = f"the iteration stopped within {gap:.2%} of the optimum (proven)"
    return Outcome(status, x, rule, message, gap, iterations)
