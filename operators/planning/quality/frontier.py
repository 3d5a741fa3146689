"""Eq. 5's utility with frame rates: the fixed point checked on the accuracy-latency frontier.

Houmani et al. (SBAC-PAD 2021) eq. 5, ``U = a - Theta*T``, with ``T`` eq. 3's mean over
analysed frames ``N/D``. The tangent steps of :mod:`.ratio` stop at a fixed point, which
need not be the optimum (a*D is not linear, so there is no Dinkelbach step for it). This
closes the difference exactly, within ``gap``: ``U* = max_L g(L) - Theta*L`` with
``g(L) = max {a(x) : N(x) - L*D(x) < 0}`` the most accurate point with mean latency below
``L``, a MILP with one linear row (the preference rule's, :meth:`.Program.limit_latency`).
``g`` only grows with ``L``, so on an interval ``[lo, hi]`` no point beats
``g(hi) - Theta*lo``: a branch and bound over ``L``. An interval is pruned when that bound
is within ``gap`` of the best utility found, else the query at ``hi - eta`` yields a
frontier point (``a``, ``L_x``) that settles ``[L_x, hi]`` and splits the rest in two
(``eta = tol / (2*Theta)``: the sliver above a query is worth less than half the
tolerance, which also keeps a query from returning the point that ended its interval; means
within :data:`RESOLUTION` of each other count as equal, as the solver's row tolerance
cannot tell them apart). The search
starts on ``[min b, (a_max - U)/Theta)``: no frame is faster than the fastest zero-load time,
and above that bound not even the most accurate assignment beats ``U``.
"""

from __future__ import annotations

import heapq
import math
import time

import numpy as np

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality.compiled import Budget, Compiled, IntArray, evaluate
from tierflow.operators.planning.quality.program import Goal, Program

QUERY_LIMIT = 24
"""Most frontier queries (MILPs) one utility stage spends after the fixed point."""

RESOLUTION = 1e-6
"""Mean latencies closer than this (relative) count as equal: the latency row's tolerance."""


def settle_utility(
    comp: Compiled, model: Program, budget: Budget, best: IntArray
) -> tuple[IntArray, float, int]:
    """The best point of eq. 5 with its proven gap and the queries it took (see module).

    Args:
        comp: the compiled problem (frame rates vary).
        model: its program; its latency row is lifted again at the end.
        budget: deadline and relative gap (of ``max(1e-3, |U|)``).
        best: the fixed point, feasible.
    """
    theta = comp.problem.theta_per_s
    k = max(comp.sources, 1)
    top = np.full(len(comp.classes), -np.inf)
    np.maximum.at(top, comp.var_class, comp.acc)
    a_max = float(top @ comp.count) / k
    score = evaluate(comp, best[None, :])
    u_best = float(score.utility[0])
    if theta <= 0:  # eq. 5 is then linear: the fixed point's program was exact
        return best, 0.0, 0
    lo = float(comp.base_s.min(initial=0.0))
    # intervals (-bound, lo, hi, cap): no point with a mean in [lo, hi] is more accurate
    # than cap; each is queried at hi - eta, and the sliver above is within tol / 2
    heap = [(-(a_max - theta * lo), lo, (a_max - u_best) / theta, a_max)]
    queries = 0
    while heap:
        tol = _tolerance(budget, u_best)
        bound, lo, hi, cap = heap[0]
        eta = max(tol / (2 * theta), RESOLUTION * hi)
        if -bound <= u_best + tol:
            break
        if queries >= QUERY_LIMIT or time.perf_counter() >= budget.deadline:
            break
        heapq.heappop(heap)
        if hi - eta < lo:
            continue  # a sliver: within tol / 2
        mean_best = float(score.latency_s[0])
        model.limit_latency(hi - eta)
        model.set_goal(Goal.ACCURACY, tie=0.0)  # a tie-break would loosen the bound below
        start = best if mean_best < hi - eta else None
        # the query's bound must prune within a quarter of the stage's tolerance
        status, x = model.solve(budget.deadline, tol / (4 * max(a_max, 1e-3)), start)
        queries += 1
        if x is None:
            if status is SolveStatus.INFEASIBLE:
                continue  # no point has a mean latency below hi - eta
            heapq.heappush(heap, (bound, lo, hi, cap))
            break
        ev = evaluate(comp, x[None, :])
        mean_x = float(ev.latency_s[0])
        near = model.polish(x, theta, budget.deadline)  # its neighbours, by eq. 5 itself
        for y in (x, near):
            ev_y = evaluate(comp, y[None, :])
            if ev_y.feasible[0] and float(ev_y.utility[0]) > u_best:
                best, score, u_best = y, ev_y, float(ev_y.utility[0])
        # no point with a mean below hi - eta is more accurate (x itself is such a point)
        a_cap = min(max(-model.bound / 1e3, float(ev.accuracy[0])), cap)

        mid = 0.5 * (lo + mean_x)
        parts = [(mean_x, hi - eta), (lo, mid + eta), (mid, mean_x)]
        if mean_x - lo < 4 * eta:
            parts = [(mean_x, hi - eta), (lo, mean_x)]
        for left, right in parts:
            if right > left:
                heapq.heappush(heap, (-(a_cap - theta * left), left, right, a_cap))
    model.limit_latency(math.inf)
    upper = max([u_best + _tolerance(budget, u_best) / 2] + [-b for b, _, _, _ in heap])
    return best, max(upper - u_best, 0.0) / max(1e-3, abs(u_best)), queries


def _tolerance(budget: Budget, utility: float) -> float:
    return budget.gap * max(1e-3, abs(utility))
