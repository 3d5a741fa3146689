"""The ``milp`` policy: the quality assignment as a mixed-integer program in HiGHS.

Algorithm 1 of Houmani et al. (SBAC-PAD 2021) over all sources at once, on the model of
:mod:`.compiled`: one integer count per (class, option), one row per class (each source gets
one quality and pipeline, §IV-B), eq. 4 + eq. 6's mean accuracy >= the slot's floor, each
resource's utilisation (``T_E = Load/C``, eq. 2's ``S/w``) bounded by its capacity, and the
epigraph of its waiting curve. The objective is eq. 3's mean latency or eq. 5's utility;
Algorithm 1's preference rule (steps 10-12) is a second, lexicographic stage.

Solving fast. Counts per class instead of binaries per source keep 1000 cameras at a few
hundred integer columns. HiGHS first solves the LP relaxation (a bound), then the MIP
restricted to the box ``[floor, ceil]`` of the LP point; a best-improvement local search
(one source moved between options of its class, :class:`_Moves`) polishes that point; if it
is proven within ``gap`` (default 0.1 % of the objective) of the LP bound it is the answer,
otherwise the full MIP starts from it. ``optimal`` therefore means "proven within ``gap``";
at the time limit the best feasible point is returned as ``time-limit`` with its proven gap.
"""

from __future__ import annotations

import enum
import math
import time

import highspy
import numpy as np
import numpy.typing as npt

from tierflow.operators.planning.highs import Rows, SolveStatus, new_model, status_of
from tierflow.operators.planning.quality.compiled import (
    TOL,
    Budget,
    Compiled,
    FloatArray,
    IntArray,
    Outcome,
    evaluate,
)
from tierflow.operators.planning.quality.problem import Objective


class _Goal(enum.Enum):
    LATENCY = enum.auto()
    UTILITY = enum.auto()
    ACCURACY = enum.auto()  # the preference rule's second stage


class _Milp:
    """The program over one compiled problem, re-solvable for the preference rule.

    Columns: ``x[v]`` integer counts (class, option); ``u[r]`` utilisation of resource
    ``r`` (bounded by its capacity); ``z[r]`` frames waiting at ``r``. Keeping ``u`` as a
    column makes each piece of ``L_q`` a two-entry row, which keeps the LP sparse. The
    objective is in milliseconds (latency) or thousandths (utility, accuracy), so that the
    solver's absolute tolerances mean the same thing in every stage.

    :meth:`solve` works in three steps: the LP relaxation gives a lower bound; the MIP
    restricted to the box ``[floor, ceil]`` of the LP solution (solved to ``gap / 2``) gives
    within milliseconds an integer point, accepted when it is within ``gap`` of the LP bound
    (so proven within ``gap`` of the optimum); otherwise the full MIP starts from it. At
    1000 sources the box point is typically 0.02-0.07 % above the bound, where the full MIP
    would spend seconds closing the last 0.01 %.
    """

    def __init__(self, comp: Compiled, h: highspy.Highs) -> None:
        self.comp = comp
        self.h = h
        h.setOptionValue("mip_feasibility_tolerance", TOL / 10)
        h.setOptionValue("random_seed", 0)
        n_x = len(comp.var_option)
        self.frames = max(comp.frames_fps, 1e-300)
        self.lat_cost = 1e3 * comp.fps * comp.base_s  # ms of latency contributed per column
        self.ub = comp.count[comp.var_class]
        self.x_idx = np.arange(n_x, dtype=np.int32)
        h.addVariables(n_x, lb=0.0, ub=self.ub.tolist(), type=highspy.HighsVarType.kInteger)
        active = [r for r in range(len(comp.resources)) if np.any(comp.load[r] > 0)]
        if active:
            caps = [comp.resources[r][2].max_utilisation for r in active]
            h.addVariables(len(active), lb=0.0, ub=caps)
        queued = [
            (j, r) for j, r in enumerate(active) if max(comp.resources[r][2].waiting_frames) > 0
        ]
        self.n_x, self.n_u, self.n_z = n_x, len(active), len(queued)
        self.active, self.queued = active, queued
        self.cost_x = np.zeros(n_x)
        self.cost_r = np.zeros(len(comp.resources) + 1)
        self.latency_cap = math.inf  # total frame latency (ms x frames/s) of limit_latency
        self.proven_gap = math.inf  # of the last solve: (objective - bound) / max(1, |objective|)
        self._moves: _Moves | None = None  # built on first use: most solves never need it
        if queued:
            h.addVariables(len(queued), lb=0.0)
        self.z_idx = np.arange(n_x + self.n_u, n_x + self.n_u + self.n_z, dtype=np.int32)
        rows = Rows()
        # Sum over options = sources of the class: one quality and pipeline each
        # (§IV-B: sum_x beta_x = 1 per source).
        for c in range(len(comp.classes)):
            cols = np.flatnonzero(comp.var_class == c)
            rows.add(cols, np.ones(cols.size), comp.count[c], comp.count[c])
        # eq. 4 + eq. 6: mean accuracy over sources >= a_min (or this slot's floor).
        rows.add(self.x_idx, comp.acc, comp.problem.floor * comp.sources - TOL, math.inf)
        for j, r in enumerate(active):
            # u_r = pipeline sum fps/C (T_E = Load/C) or link sum fps*S/w (eq. 2);
            # its column bound is the capacity: u_r <= max utilisation.
            cols = np.flatnonzero(comp.load[r] > 0)
            rows.add(np.append(cols, n_x + j), np.append(comp.load[r, cols], -1.0), 0.0, 0.0)
        for k, (j, r) in enumerate(queued):
            # epigraph of the convex piecewise-linear L_q(u): z_r >= slope_i*u_r + icpt_i
            slopes, icpts = comp.resources[r][2].pieces()
            for slope, icpt in zip(slopes, icpts, strict=True):
                if slope > 0 or icpt > 0:  # z >= 0 already covers the flat zero piece
                    rows.add([n_x + j, n_x + self.n_u + k], [-slope, 1.0], icpt, math.inf)
        rows.flush(h)

    def set_goal(self, goal: _Goal) -> None:
        """Objective: eq. 3 latency (ms), -eq. 5 utility or -eq. 4 accuracy (x 1000)."""
        comp = self.comp
        lat_x, lat_z = self.lat_cost / self.frames, np.full(self.n_z, 1e3 / self.frames)
        acc_x = 1e3 * comp.acc / max(comp.sources, 1)
        if goal is _Goal.LATENCY:
            cost_x, cost_z = lat_x, lat_z
        elif goal is _Goal.UTILITY:
            theta = comp.problem.theta_per_s  # per second; latency terms are in ms
            cost_x, cost_z = theta * lat_x - acc_x, theta * lat_z
        else:  # a tiny latency weight breaks accuracy ties towards the faster choice
            cost_x, cost_z = 1e-6 * lat_x - acc_x, 1e-6 * lat_z
        self.h.changeColsCost(self.n_x, self.x_idx, cost_x)
        if self.n_z:
            self.h.changeColsCost(self.n_z, self.z_idx, cost_z)
        self.cost_x = cost_x
        self.cost_r = np.zeros(len(comp.resources) + 1)  # per resource (+ the moves' dummy)
        self.cost_r[[r for _, r in self.queued]] = cost_z

    def limit_latency(self, latency_bound_s: float) -> None:
        """Add eq. 3's mean latency < ``latency_bound_s`` (the preference rule's window)."""
        cols = np.concatenate([self.x_idx, self.z_idx])
        coefs = np.concatenate([self.lat_cost, np.full(self.n_z, 1e3)])
        rows = Rows()
        self.latency_cap = latency_bound_s * 1e3 * self.frames - 1e-6
        rows.add(cols, coefs, -math.inf, self.latency_cap)
        rows.flush(self.h)

    def _run(self, deadline: float, *, integer: bool, gap: float = 0.0) -> SolveStatus:
        types = np.full(self.n_x, 1 if integer else 0, dtype=np.uint8)
        self.h.changeColsIntegrality(self.n_x, self.x_idx, types)
        self.h.setOptionValue("mip_rel_gap", gap)
        self.h.setOptionValue("mip_abs_gap", 1e-9)
        self.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
        self.h.run()
        return status_of(self.h.getModelStatus())

    def relaxation(self, deadline: float) -> tuple[SolveStatus, float, FloatArray]:
        """LP relaxation: status, objective (a bound on the MIP's), counts."""
        status = self._run(deadline, integer=False)
        x = np.asarray(self.h.getSolution().col_value[: self.n_x], dtype=np.float64)
        return status, self.h.getInfo().objective_function_value, x

    def solve(self, deadline: float, gap: float) -> tuple[SolveStatus, IntArray | None]:
        """Integer counts proven within relative ``gap`` of the optimum (see the class)."""
        status, bound, x_lp = self.relaxation(deadline)
        self.proven_gap = math.inf
        if status is not SolveStatus.OPTIMAL:
            return status, None
        if np.all(np.abs(x_lp - np.rint(x_lp)) <= 1e-9):
            self.proven_gap = 0.0
            return status, np.rint(x_lp).astype(np.int64)
        lo = np.maximum(np.floor(x_lp + 1e-9), 0.0)
        hi = np.minimum(np.ceil(x_lp - 1e-9), self.ub)
        self.h.changeColsBounds(self.n_x, self.x_idx, lo, hi)
        status = self._run(deadline, integer=True, gap=gap / 2)
        found = status is not SolveStatus.ERROR and self.h.getSolution().value_valid
        start = self._counts(self.h.getSolution()) if found else None
        self.h.changeColsBounds(self.n_x, self.x_idx, np.zeros(self.n_x), self.ub)

        def close_enough(x: IntArray, lower: float = bound) -> bool:
            objective = self.objective(x)
            self.proven_gap = max(objective - lower, 0.0) / max(1.0, abs(objective))
            return self.proven_gap <= gap

        if start is not None and not close_enough(start):
            floor_sum = self.comp.problem.floor * self.comp.sources - TOL
            self._moves = self._moves or _Moves(self.comp)
            start = self._moves.improve(
                start, self.cost_x, self.cost_r, floor_sum, self.latency_cap, deadline
            )
        if start is not None:
            if close_enough(start):
                return SolveStatus.OPTIMAL, start
            self.h.setSolution(self.n_x + self.n_u + self.n_z, self._all_cols(), self._point(start))
        if time.perf_counter() >= deadline:
            return SolveStatus.TIME_LIMIT, start
        status = self._run(deadline, integer=True, gap=gap)
        solution = self.h.getSolution()
        if status is SolveStatus.OPTIMAL or (
            status is SolveStatus.TIME_LIMIT and solution.value_valid
        ):
            best = self._counts(solution)
            if start is not None and self.objective(start) < self.objective(best):
                best = start  # HiGHS may stop before it has used the start
            dual = self.h.getInfo().mip_dual_bound
            close_enough(best, max(bound, dual) if math.isfinite(dual) else bound)
            return status, best
        return status, start if status is SolveStatus.TIME_LIMIT else None

    def objective(self, x: IntArray) -> float:
        """The program's objective at counts ``x`` (``z`` at its least feasible value)."""
        waiting = self._waiting(x)
        return float(self.cost_x @ x + self.cost_r[[r for _, r in self.queued]] @ waiting)

    def _waiting(self, x: IntArray) -> FloatArray:
        """``L_q`` of the queued resources at counts ``x``.

        Utilisation is clipped to the capacity: the solver's feasibility tolerance lets it
        overshoot by a hair.
        """
        u = self.comp.load @ x.astype(np.float64)
        curves = [self.comp.resources[r][2] for _, r in self.queued]
        return np.asarray(
            [
                q.waiting(min(u[r], q.max_utilisation))
                for q, (_, r) in zip(curves, self.queued, strict=True)
            ],
            dtype=np.float64,
        )

    def _all_cols(self) -> npt.NDArray[np.int32]:
        return np.arange(self.n_x + self.n_u + self.n_z, dtype=np.int32)

    def _point(self, x: IntArray) -> FloatArray:
        """Every column's value at counts ``x``: a MIP start for HiGHS."""
        u = self.comp.load @ x.astype(np.float64)
        return np.concatenate([x.astype(np.float64), u[self.active], self._waiting(x)])

    def _counts(self, solution: highspy.HighsSolution) -> IntArray:
        values = np.asarray(solution.col_value[: self.n_x], dtype=np.float64)
        return np.rint(values).astype(np.int64)


class _Moves:
    """Local search: move one source at a time between options of its class.

    Best improvement over every (from, to) pair of columns of a class, vectorised: a move
    changes the utilisation only of the resources either column touches, so each pair
    carries those (padded to a fixed width, with a dummy resource ``R`` of no cost) and the
    change of ``L_q`` is the max-of-pieces form of the convex curves on them.
    """

    def __init__(self, comp: Compiled) -> None:
        n_r = len(comp.resources)
        cols_of = [np.flatnonzero(comp.var_class == c) for c in range(len(comp.classes))]
        pairs = [(a, b) for cols in cols_of for a in cols for b in cols if a != b]
        self.src = np.asarray([a for a, _ in pairs], dtype=np.int64)
        self.dst = np.asarray([b for _, b in pairs], dtype=np.int64)
        touched = comp.load > 0  # (R, V)
        width = max(1, int(touched.sum(axis=0).max(initial=0)))
        per_col = np.full((len(comp.var_option), width), n_r, dtype=np.int64)
        for v in range(len(comp.var_option)):
            rs = np.flatnonzero(touched[:, v])
            per_col[v, : rs.size] = rs
        both = np.sort(np.concatenate([per_col[self.src], per_col[self.dst]], axis=1), axis=1)
        both[:, 1:][both[:, 1:] == both[:, :-1]] = n_r  # a resource both columns touch: once
        self.res = both
        load = np.vstack([comp.load, np.zeros((1, comp.load.shape[1]))])
        self.dload = load[both, self.dst[:, None]] - load[both, self.src[:, None]]
        self.load = load
        self.dacc = comp.acc[self.dst] - comp.acc[self.src]
        self.dlat = 1e3 * comp.fps * comp.base_s  # ms x frames/s per column
        self.dlat = self.dlat[self.dst] - self.dlat[self.src]
        width_k = max(len(q.utilisation) - 1 for _, _, q in comp.resources) if n_r else 1
        self.slopes = np.zeros((n_r + 1, width_k))
        self.icpts = np.full((n_r + 1, width_k), -np.inf)
        self.icpts[n_r, 0] = 0.0
        self.cap = np.full(n_r + 1, np.inf)
        for r, (_, _, curve) in enumerate(comp.resources):
            slopes, icpts = curve.pieces()
            self.slopes[r, : slopes.size] = slopes
            self.icpts[r, : icpts.size] = icpts
            self.cap[r] = curve.max_utilisation + TOL
        self.acc = comp.acc
        self.lat_x = 1e3 * comp.fps * comp.base_s
        self.queued = np.zeros(n_r + 1, dtype=np.bool_)
        self.queued[:n_r] = [max(q.waiting_frames) > 0 for _, _, q in comp.resources]

    def _q(self, res: IntArray, u: FloatArray) -> FloatArray:
        pieces = self.slopes[res] * u[..., None] + self.icpts[res]
        return np.asarray(pieces.max(axis=-1), dtype=np.float64)

    def improve(
        self,
        x: IntArray,
        cost_x: FloatArray,
        cost_r: FloatArray,
        floor_sum: float,
        latency_cap: float,
        deadline: float,
    ) -> IntArray:
        """Apply improving moves that keep every constraint until none is left (or time)."""
        x = x.copy()
        if self.src.size == 0:
            return x
        dcost = cost_x[self.dst] - cost_x[self.src]
        u = self.load @ x.astype(np.float64)
        acc_sum = float(self.acc @ x)
        all_r = np.arange(u.size)
        latency = float(self.lat_x @ x) + 1e3 * float(self._q(all_r, u)[self.queued].sum())
        for _ in range(4 * int(x.sum()) + 10):
            if time.perf_counter() >= deadline:
                break
            cand = np.flatnonzero((x[self.src] > 0) & (acc_sum + self.dacc >= floor_sum))
            res = self.res[cand]
            u_new = u[res] + self.dload[cand]
            d_q = self._q(res, u_new) - self._q(res, u[res])
            delta = dcost[cand] + np.sum(cost_r[res] * d_q, axis=1)
            d_lat = self.dlat[cand] + 1e3 * np.sum(np.where(self.queued[res], d_q, 0.0), axis=1)
            ok = np.all(u_new <= self.cap[res], axis=1) & (latency + d_lat <= latency_cap)
            ok &= delta < -1e-9 * max(1.0, abs(float(cost_x @ x)))
            if not ok.any():
                break
            best = int(np.argmin(np.where(ok, delta, np.inf)))
            i = cand[best]
            x[self.src[i]] -= 1
            x[self.dst[i]] += 1
            u[res[best]] = u_new[best]
            u[-1] = 0.0
            acc_sum += float(self.dacc[i])
            latency += float(d_lat[best])
        return x


def milp_core(comp: Compiled, budget: Budget) -> Outcome:
    """Solve ``comp`` as a MILP in a fresh HiGHS instance (see the module)."""
    with new_model() as h:
        return _milp_solve(comp, _Milp(comp, h), budget)


def _milp_solve(comp: Compiled, model: _Milp, budget: Budget) -> Outcome:
    problem = comp.problem
    utility = problem.objective is Objective.UTILITY
    model.set_goal(_Goal.UTILITY if utility else _Goal.LATENCY)
    status, x = model.solve(budget.deadline, budget.gap)
    if x is None:
        return Outcome(status, message=f"no solution from HiGHS ({status.value})")
    rule = "max-utility" if utility else "min-latency"
    pref = problem.preference
    gap1 = model.proven_gap
    if utility or pref is None:
        return _outcome(status, x, rule, gap1)
    # Preference rule, lexicographically: the most accurate point less than 10 ms slower.
    first = evaluate(comp, x[None, :])
    lat1, acc1 = float(first.latency_s[0]), float(first.accuracy[0])
    # Bounds first: every source on its most accurate option, then the LP of stage two.
    best_acc = np.full(len(comp.classes), -np.inf)
    np.maximum.at(best_acc, comp.var_class, comp.acc)
    if not pref.prefers(0.0, acc1, float(best_acc @ comp.count) / max(comp.sources, 1) + 1e-9):
        return _outcome(status, x, rule, gap1)
    model.limit_latency(lat1 + pref.latency_s)
    model.set_goal(_Goal.ACCURACY)
    status2, _, x_lp = model.relaxation(budget.deadline)
    acc_bound = float(comp.acc @ x_lp) / max(comp.sources, 1) + 1e-9
    if status2 is SolveStatus.OPTIMAL and not pref.prefers(0.0, acc1, acc_bound):
        return _outcome(status, x, rule, gap1)  # even the LP gains too little
    status2, x2 = model.solve(budget.deadline, budget.gap)
    if x2 is not None:
        second = evaluate(comp, x2[None, :])
        gap = float(second.latency_s[0]) - lat1
        if second.feasible[0] and pref.prefers(gap, acc1, float(second.accuracy[0])):
            x, rule, gap1 = x2, pref.name, model.proven_gap
    if status2 is SolveStatus.TIME_LIMIT:
        status = status2
    return _outcome(status, x, rule, gap1)


def _outcome(status: SolveStatus, x: IntArray, rule: str, gap: float) -> Outcome:
    message = ""
    if status is SolveStatus.TIME_LIMIT:
        message = f"time limit: best assignment found, within {gap:.2%} of the optimum"
    return Outcome(status, x, rule, message, gap)
