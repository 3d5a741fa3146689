"""Frame rate as a decision: eq. 3's mean over analysed frames as a ratio (issue 9).

Eq. 3 of Houmani et al. (SBAC-PAD 2021) is the mean latency over frames,
``N(x) / D(x)`` with ``N = sum_v x_v f_v b_v + sum_r L_q,r(u_r)`` (frame-seconds per
second; by Little's law the waiting is exact and linear through the epigraphs) and
``D = sum_v x_v f_v`` the analysed frames per second. Without options that fix a rate ``D``
is a constant and the program of :mod:`.program` is solved once, as before. With them ``D``
is a decision, and we keep the exact mean over analysed frames (it is what a camera's
frames experience, and what eq. 5 prices) rather than a mean over sources: it is a ratio.
(It weighs each camera by its rate, so lowering the rate of a camera on a slow path also
lowers the mean; the accuracy floor of eq. 4/6 is what bounds that.)

Decision: a Dinkelbach / fixed-point iteration on the denominator. Each step solves the
program with the latency term ``lambda + (N - lambda*D) / D_k``, the tangent of ``N/D`` at the
current iterate ``(lambda, D_k)`` = (its mean latency, its analysed rate) — exact where
``D = D_k``, linear, so the step is a MILP of the same shape as without rates. The start is
the previous slot's assignment (the sources' ``current``) when it covers every source, else
all sources at their native rate (``D_k``; ``lambda`` the mean of their fastest zero-load
times). The iteration runs first on the LP relaxation (cheap: only costs change, HiGHS
keeps its basis) until the denominator and the mean change by < 0.1 %, then on the MILP,
at most :data:`MAX_ITERATIONS` (3) programs, each followed by a short local search on the
true ratio (:meth:`.Program.polish`). The ``-lambda*D`` term is what makes this Dinkelbach:
with the denominator merely held at ``D_k`` the step would minimise ``N`` alone, whose
minimiser does not depend on ``D_k`` (it sends every source to its lowest rate the floor
allows), so that iteration would stop at once, away from the least mean.

* Latency objective: minimising ``N - lambda*D`` is Dinkelbach's method, exact at
  convergence: if no point has ``N - lambda*D < 0`` then no point has a mean below
  ``lambda``. After the first MILP, each step asks exactly that for ``lambda`` = the best
  mean found less ``gap``: either a better point turns up (and is the next iterate) or the
  program's bound proves the best within ``gap``. A bound ``B`` of a step's program bounds
  every mean: ``N/D >= lambda + (B - lambda)*D_k/D`` with ``D`` at the end of its range
  that makes this least, so the reported ``gap`` is proven. Without a proof after three
  programs the answer is ``feasible`` with its proven gap.
* Utility objective (eq. 5, ``a - Theta*N/D``): ``a*D`` is not linear, so there is no
  Dinkelbach equivalent; the same tangent steps stop at a fixed point (the denominator and
  the mean change by < 0.1 %). That fixed point need not be eq. 5's optimum: on 300 small
  random instances it was the optimum in 293, and up to 0.06 below it (mean 5e-4). So it is
  the incumbent of a search over the accuracy-latency frontier (:mod:`.frontier`) that
  proves the answer within ``gap`` or improves it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality.compiled import (
    Budget,
    Compiled,
    FloatArray,
    IntArray,
    evaluate,
    per_source_wait_weights,
)
from tierflow.operators.planning.quality.frontier import settle_utility
from tierflow.operators.planning.quality.program import Goal, Program

MAX_ITERATIONS = 3
"""Most MILPs one stage solves for the frame-rate iteration."""

RATE_STEP = 1e-3
"""The iteration has converged when the denominator changes by less (relative)."""

_LP_ROUNDS = 8  # most LP relaxations of the iteration's first phase


@dataclass(frozen=True)
class Stage:
    """What one stage of the program found."""

    status: SolveStatus
    x: IntArray | None
    gap: float  # proven (latency), or of the last program (utility)
    iterations: int  # MILPs solved


def minimise(comp: Compiled, model: Program, goal: Goal, budget: Budget) -> Stage:
    """Solve ``model`` for ``goal`` (latency or utility), iterating when ``D`` varies."""
    previous, complete = comp.previous()
    warm = previous if complete and bool(evaluate(comp, previous[None, :]).feasible[0]) else None
    if not comp.variable_denominator:
        if comp.mixed:
            return _mixed_waits(comp, model, goal, budget, warm)
        model.set_goal(goal)
        status, x = model.solve(budget.deadline, budget.gap, warm)
        return Stage(status, x, model.proven_gap, 1)
    if complete and previous.any():
        lam, frames = _mean(comp, previous)
    else:  # all sources at their native rate, each on its fastest option at zero load
        lam, frames = _native_start(comp), comp.frames_fps
    bounds = _Bounds(comp, goal, budget.gap)
    for _ in range(_LP_ROUNDS):
        model.set_goal(goal, lam, frames)
        status, value, y = model.relaxation(budget.deadline)
        if status is not SolveStatus.OPTIMAL:
            return Stage(status, None, math.inf, 0)
        bounds.add(lam, frames, value)
        lam_y, frames_y = _mean(comp, y)
        converged = _close(frames_y, frames) and _close(lam_y, lam)
        lam, frames = lam_y, frames_y
        if converged:
            break
    stage = _milp_steps(comp, model, goal, budget, bounds, (lam, frames), warm)
    if goal is not Goal.UTILITY or stage.x is None:
        return stage
    x, gap, queries = settle_utility(comp, model, budget, stage.x)
    if gap <= budget.gap:
        status = SolveStatus.OPTIMAL
    elif time.perf_counter() >= budget.deadline:
        status = SolveStatus.TIME_LIMIT
    else:
        status = SolveStatus.FEASIBLE
    return Stage(status, x, gap, stage.iterations + queries)


def _mixed_waits(
    comp: Compiled, model: Program, goal: Goal, budget: Budget, warm: IntArray | None
) -> Stage:
    """Eq. 3 over sources where a queued resource serves unlike rates: a fixed point.

    The true waiting weight ``n_r / lambda_r`` (:func:`.compiled.per_source_wait_weights`)
    is at least ``1 / (the highest rate on r)``, the program's start weight, so the first
    program (solved at those weights) is a relaxation: its bound is a lower bound on the true
    objective, the only proof this stage has. Then the weights are held at their value at
    the last point and the program solved again, until they change by < 0.1 % (at most
    :data:`MAX_ITERATIONS` programs in all); the best point by the true objective wins. A
    fixed point is not a proof (the weights are exact at it, not at the points it rejects),
    so the answer is ``optimal`` only when it is within ``gap`` of the first program's bound.
    """
    best = warm
    status, iterations = SolveStatus.OPTIMAL, 0
    model.wait_weight = comp.wait_weight.copy()
    lower = -math.inf
    while iterations < MAX_ITERATIONS:
        model.set_goal(goal)
        status, x = model.solve(budget.deadline, budget.gap, best)
        iterations += 1
        if iterations == 1:
            lower = model.bound
        if x is None:
            break
        best = x if best is None else _Bounds(comp, goal, budget.gap).better(best, x)
        weights = per_source_wait_weights(comp, x)
        exact = bool(np.all(np.abs(weights - model.wait_weight) <= RATE_STEP * weights))
        model.wait_weight = weights
        if exact or status is SolveStatus.TIME_LIMIT:  # exact at once: the relaxation is tight
            break
    if best is None:
        return Stage(status, None, math.inf, iterations)
    ev = evaluate(comp, best[None, :])
    objective = 1e3 * float(
        ev.latency_s[0] if goal is Goal.LATENCY else -ev.utility[0]
    )  # the program's units: ms, or -1000 x eq. 5
    gap = max(objective - lower, 0.0) / max(1.0, abs(objective))
    if status is not SolveStatus.TIME_LIMIT:
        status = SolveStatus.OPTIMAL if gap <= budget.gap else SolveStatus.FEASIBLE
    return Stage(status, best, gap, iterations)


def _milp_steps(
    comp: Compiled,
    model: Program,
    goal: Goal,
    budget: Budget,
    bounds: _Bounds,
    iterate: tuple[float, float],
    best: IntArray | None,
) -> Stage:
    lam, frames = iterate
    status = SolveStatus.OPTIMAL
    iterations = 0
    while iterations < MAX_ITERATIONS:
        # the first step at the LP's iterate (a warm start may be far from it: it is the
        # incumbent then), the next ones at the best less the gap: prove it, or beat it
        if iterations and best is not None and goal is Goal.LATENCY:
            lam_best, frames = _mean(comp, best)
            lam = lam_best * (1.0 - budget.gap)
        model.set_goal(goal, lam, frames)
        status, x = model.solve(budget.deadline, budget.gap, best)
        iterations += 1
        if x is None:
            break
        best = bounds.better(best, x)
        if goal is Goal.LATENCY:
            bounds.add(lam, frames, model.bound)
            if bounds.gap(best) > budget.gap:  # the program's optimum is not the ratio's
                best = bounds.better(best, model.polish(best, None, budget.deadline))
            if bounds.gap(best) <= budget.gap:
                return Stage(SolveStatus.OPTIMAL, best, bounds.gap(best), iterations)
        else:
            x = model.polish(x, comp.problem.theta_per_s, budget.deadline)
            best = bounds.better(best, x)
            lam_x, frames_x = _mean(comp, x)
            if _close(frames_x, frames) and _close(lam_x, lam):  # the fixed point
                return Stage(status, best, model.proven_gap, iterations)
            lam, frames = lam_x, frames_x
        if status is SolveStatus.TIME_LIMIT:
            break
    if best is None:
        return Stage(status, None, math.inf, iterations)
    if goal is Goal.LATENCY:
        gap = bounds.gap(best)
        if status is not SolveStatus.TIME_LIMIT:
            status = SolveStatus.OPTIMAL if gap <= budget.gap else SolveStatus.FEASIBLE
        return Stage(status, best, gap, iterations)
    return Stage(status, best, model.proven_gap, iterations)


class _Bounds:
    """The best lower bound on eq. 3's mean latency the steps have proven, and scoring."""

    def __init__(self, comp: Compiled, goal: Goal, gap: float) -> None:
        self.comp = comp
        self.goal = goal
        self.frames_lo, self.frames_hi = comp.frame_range()
        self.lower_s = -math.inf
        self.tol = gap

    def add(self, lam_s: float, frames: float, bound_ms: float) -> None:
        """Fold in a latency program's bound ``B`` at iterate ``(lam_s, frames)`` (see module)."""
        if self.goal is not Goal.LATENCY or not math.isfinite(bound_ms):
            return
        excess = bound_ms / 1e3 - lam_s  # min (N - lam*D) / D_k, seconds
        extreme = self.frames_hi if excess >= 0 else self.frames_lo
        self.lower_s = max(self.lower_s, lam_s + excess * frames / extreme)

    def gap(self, x: IntArray) -> float:
        """Proven relative gap of ``x``'s mean latency (the ms scale of :mod:`.program`)."""
        mean = _mean(self.comp, x)[0]
        return max(mean - self.lower_s, 0.0) / max(1e-3, mean)

    def better(self, best: IntArray | None, x: IntArray) -> IntArray:
        """The better of two feasible points by the true objective (eq. 3 or eq. 5)."""
        if best is None:
            return x
        ev = evaluate(self.comp, np.stack([best, x]))
        score = ev.latency_s if self.goal is Goal.LATENCY else -ev.utility
        return x if score[1] < score[0] else best


def _mean(comp: Compiled, x: IntArray | FloatArray) -> tuple[float, float]:
    """Eq. 3's mean latency (s) and ``D`` (frames/s) at counts ``x`` (fractional allowed)."""
    rows = x[None, :]
    return float(evaluate(comp, rows).latency_s[0]), float(comp.frames(rows)[0])


def _native_start(comp: Compiled) -> float:
    """Eq. 3's mean with every source at its native rate on its fastest option, unloaded."""
    native = np.abs(comp.fps - comp.native_fps) <= 1e-9 * comp.native_fps
    fastest = np.full(len(comp.classes), np.inf)
    np.minimum.at(fastest, comp.var_class[native], comp.base_s[native])
    rates = np.zeros(len(comp.classes))
    np.maximum.at(rates, comp.var_class, comp.native_fps)
    weight = comp.count * rates * np.isfinite(fastest)
    total = max(float(weight.sum()), 1e-300)
    return float(weight @ np.where(np.isfinite(fastest), fastest, 0.0)) / total


def _close(new: float, old: float) -> bool:
    return abs(new - old) <= RATE_STEP * max(abs(old), 1e-12)
