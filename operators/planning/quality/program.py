"""The quality assignment as a mixed-integer program in HiGHS: the ``milp`` policy's core.

Algorithm 1 of Houmani et al. (SBAC-PAD 2021) over all sources at once, on the model of
:mod:`.compiled`: one integer count per (class, option), one row per class (each source gets
one quality, pipeline and rate, §IV-B), eq. 4 + eq. 6's mean accuracy >= the slot's floor,
each resource's utilisation (``T_E = Load/C``, eq. 2's ``S/w``) bounded by its capacity, and
the epigraph of its waiting curve (exact by Little's law). The objective is eq. 3's mean
latency, eq. 5's utility or (the preference rule's second stage) eq. 4's accuracy; with
options that fix frame rates the latency term is the tangent of the ratio ``N/D`` at an
iterate of :mod:`.ratio`.
"""

from __future__ import annotations

import enum
import math
import time

import highspy
import numpy as np

from tierflow.operators.planning.highs import Rows, SolveStatus, add_columns, status_of
from tierflow.operators.planning.quality.compiled import TOL, Compiled, FloatArray, IntArray
from tierflow.operators.planning.quality.moves import Moves

POLISH_MOVES = 32
"""Most moves :meth:`Program.polish` makes."""

LUMPY = 12
"""A resource that fits at most this many sources gets a superadditivity row."""


class Goal(enum.Enum):
    """What a stage of the program optimises."""

    LATENCY = enum.auto()
    UTILITY = enum.auto()
    ACCURACY = enum.auto()  # the preference rule's second stage


class Program:
    """The program over one compiled problem, re-solvable with other objectives.

    Columns: ``x[v]`` integer counts (class, option); ``u[r]`` utilisation of resource
    ``r`` (bounded by its capacity); ``z[r]`` frames waiting at ``r``. Keeping ``u`` as a
    column makes each piece of ``L_q`` a two-entry row, which keeps the LP sparse. The
    objective is in milliseconds (latency) or thousandths (utility, accuracy), so that the
    solver's absolute tolerances mean the same thing in every stage.

    The latency term at an iterate ``(lambda, D_k)`` of :mod:`.ratio` is
    ``lambda + (N - lambda*D) / D_k``: eq. 3's mean ``N / D`` where ``D = D_k``, its tangent
    in ``D`` elsewhere; with ``lambda = 0`` and ``D_k`` the constant ``D`` it is eq. 3.

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
        # HiGHS 1.16's presolve misreports the objective and dual bound of some of these
        # programs after a MIP start (half the true value): the proof must not rest on it
        h.setOptionValue("presolve", "off")
        n_x = len(comp.var_option)
        self.frames = max(comp.denominator, 1e-300)
        self.wait_weight = comp.wait_weight.copy()  # per resource; refined when rates mix
        self.ub = comp.count[comp.var_class]
        self.x_idx = np.arange(n_x, dtype=np.int32)
        add_columns(h, np.zeros(n_x), self.ub, integer=True)
        active = [r for r in range(len(comp.resources)) if np.any(comp.load[r] > 0)]
        if active:
            caps = [comp.resources[r][2].max_utilisation for r in active]
            add_columns(h, np.zeros(len(active)), caps)
        queued = [
            (j, r) for j, r in enumerate(active) if max(comp.resources[r][2].waiting_frames) > 0
        ]
        self.n_x, self.n_u, self.n_z = n_x, len(active), len(queued)
        self.active, self.queued = active, queued
        self.cost_x = np.zeros(n_x)
        self.cost_r = np.zeros(len(comp.resources) + 1)
        self.offset = 0.0
        # the preference rule's row: ms x frames/s per column (waiting: 1e3 per frame), bound
        self.latency_row: tuple[FloatArray, float] = (1e3 * comp.weight * comp.base_s, math.inf)
        self.latency_index: int | None = None  # that row's index once it exists
        self.proven_gap = math.inf  # of the last solve: (objective - bound) / max(1, |objective|)
        self.bound = -math.inf  # of the last solve: a lower bound on the program's optimum
        self._moves: Moves | None = None  # built on first use: most solves never need it
        if queued:
            add_columns(h, np.zeros(len(queued)), math.inf)
        self.z_idx = np.arange(n_x + self.n_u, n_x + self.n_u + self.n_z, dtype=np.int32)
        rows = Rows()
        # Sum over options = sources of the class: one quality, pipeline and rate each
        # (§IV-B: sum_x beta_x = 1 per source).
        for c in range(len(comp.classes)):
            cols = np.flatnonzero(comp.var_class == c)
            rows.add(cols, np.ones(cols.size), comp.count[c], comp.count[c])
        # eq. 4 + eq. 6: mean accuracy over sources >= a_min (or this slot's floor).
        rows.add(self.x_idx, comp.acc, comp.problem.floor * comp.sources - TOL, math.inf)
        for j, r in enumerate(active):
            # u_r = pipeline sum f/C (T_E = Load/C) or link sum f*S/w (eq. 2), f the
            # analysed rates; its column bound is the capacity: u_r <= max utilisation.
            cols = np.flatnonzero(comp.load[r] > 0)
            rows.add(np.append(cols, n_x + j), np.append(comp.load[r, cols], -1.0), 0.0, 0.0)
        for k, (j, r) in enumerate(queued):
            # epigraph of the convex piecewise-linear L_q(u): z_r >= slope_i*u_r + icpt_i
            curve = comp.resources[r][2]
            slopes, icpts = curve.pieces()
            for slope, icpt in zip(slopes, icpts, strict=True):
                if slope > 0 or icpt > 0:  # z >= 0 already covers the flat zero piece
                    rows.add([n_x + j, n_x + self.n_u + k], [-slope, 1.0], icpt, math.inf)
            cols = np.flatnonzero(comp.load[r] > 0)
            if curve.max_utilisation <= LUMPY * comp.load[r, cols].min():
                # L_q is convex with L_q(0) = 0, so superadditive: the frames waiting are at
                # least the sum of what each source would cause alone. Valid for integer
                # counts, and much tighter than the curve when few sources share r (the
                # LP can no longer halve a camera's load over two pipelines for free); it
                # only slows the LP where many share r.
                alone = curve.waiting_array(np.minimum(comp.load[r, cols], curve.max_utilisation))
                rows.add(np.append(cols, n_x + self.n_u + k), np.append(-alone, 1.0), 0.0)
        rows.flush(h)

    def set_goal(
        self, goal: Goal, lam_s: float = 0.0, frames: float | None = None, tie: float = 1e-6
    ) -> None:
        """Objective: eq. 3 latency (ms), -eq. 5 utility or -eq. 4 accuracy (x 1000).

        Args:
            goal: what to optimise.
            lam_s: ``lambda`` of the latency term, seconds (0: eq. 3 with ``D`` constant).
            frames: ``D_k``, frames/s (None: the native rates' ``D``).
            tie: weight of the latency term (ms) that breaks accuracy ties (ACCURACY).
        """
        comp = self.comp
        d_k = self.frames if frames is None else frames
        lat_x = 1e3 * comp.weight * (comp.base_s - lam_s) / d_k
        waits = self.wait_weight[[r for _, r in self.queued]]
        lat_z, lat_0 = 1e3 * waits / d_k, 1e3 * lam_s
        acc_x = 1e3 * comp.acc / max(comp.sources, 1)
        if goal is Goal.LATENCY:
            weight, cost_x = 1.0, lat_x
        elif goal is Goal.UTILITY:
            weight = comp.problem.theta_per_s  # per second; latency terms are in ms
            cost_x = weight * lat_x - acc_x
        else:  # a tiny latency weight breaks accuracy ties towards the faster choice
            weight = tie
            cost_x = weight * lat_x - acc_x
        cost_z = weight * lat_z
        self.h.changeColsCost(self.n_x, self.x_idx, cost_x)
        if self.n_z:
            self.h.changeColsCost(self.n_z, self.z_idx, cost_z)
        self.offset = weight * lat_0
        self.h.changeObjectiveOffset(self.offset)
        self.cost_x = cost_x
        self.cost_r = np.zeros(len(comp.resources) + 1)  # per resource (+ the moves' dummy)
        self.cost_r[[r for _, r in self.queued]] = cost_z

    def limit_latency(self, latency_bound_s: float) -> None:
        """Hold eq. 3's mean latency ``N/D < latency_bound_s`` (the preference rule's window).

        As ``N - bound*D < 0``, linear also when ``D`` varies: ``D`` is then a column ``d``
        and a new bound changes one coefficient; with ``D`` constant the ``bound*D`` term is
        the right-hand side. A second call replaces the first bound; inf lifts it.
        """
        comp = self.comp
        base = 1e3 * comp.weight * comp.base_s
        bound = min(latency_bound_s, 1e12)  # inf lifts the row: a bound nothing reaches
        if comp.variable_denominator:
            coefs, cap = base - 1e3 * bound * comp.fps, -1e-6
        else:
            coefs, cap = base, bound * 1e3 * self.frames - 1e-6
        if self.latency_index is None:
            waits = self.wait_weight[[r for _, r in self.queued]]
            cols, values = np.concatenate([self.x_idx, self.z_idx]), 1e3 * waits
            rows = Rows()
            if comp.variable_denominator:  # d = D(x), frames/s
                d = self.n_x + self.n_u + self.n_z
                add_columns(self.h, np.zeros(1), math.inf)
                rows.add(np.append(self.x_idx, d), np.append(comp.fps, -1.0), 0.0, 0.0)
                rows.add(np.append(cols, d), np.concatenate([base, values, [-1e3 * bound]]))
            else:
                rows.add(cols, np.concatenate([base, values]))
            self.latency_index = self.h.getNumRow() + len(rows) - 1
            rows.flush(self.h)
        elif comp.variable_denominator:
            self.h.changeCoeff(self.latency_index, self.n_x + self.n_u + self.n_z, -1e3 * bound)
        self.h.changeRowBounds(self.latency_index, -highspy.kHighsInf, cap)
        self.latency_row = (coefs, cap)

    def _run(self, deadline: float, *, integer: bool, gap: float = 0.0) -> SolveStatus:
        types = np.full(self.n_x, 1 if integer else 0, dtype=np.uint8)
        self.h.changeColsIntegrality(self.n_x, self.x_idx, types)
        self.h.setOptionValue("mip_rel_gap", gap)
        self.h.setOptionValue("mip_abs_gap", 1e-9)
        self.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
        self.h.run()
        if not integer and self.h.getModelStatus() == highspy.HighsModelStatus.kUnknown:
            # a nearly infeasible latency row (frontier queries) can leave the simplex
            # undecided: once more from scratch, with presolve, which decides it
            self.h.clearSolver()
            self.h.setOptionValue("presolve", "on")
            self.h.run()
            self.h.setOptionValue("presolve", "off")
        return status_of(self.h.getModelStatus())

    def relaxation(self, deadline: float) -> tuple[SolveStatus, float, FloatArray]:
        """LP relaxation: status, objective (a bound on the MIP's), counts."""
        status = self._run(deadline, integer=False)
        x = np.asarray(self.h.getSolution().col_value[: self.n_x], dtype=np.float64)
        return status, self.h.getInfo().objective_function_value, x

    def solve(
        self, deadline: float, gap: float, start: IntArray | None = None
    ) -> tuple[SolveStatus, IntArray | None]:
        """Integer counts proven within relative ``gap`` of the optimum (see the class).

        Args:
            deadline: ``time.perf_counter()`` value to stop at.
            gap: relative optimality gap accepted.
            start: a feasible point to start from when it beats the box point (warm start).
        """
        status, bound, x_lp = self.relaxation(deadline)
        self.proven_gap, self.bound = math.inf, bound
        if status is not SolveStatus.OPTIMAL:
            return status, None
        if np.all(np.abs(x_lp - np.rint(x_lp)) <= 1e-9):
            self.proven_gap = 0.0
            return status, np.rint(x_lp).astype(np.int64)
        lo = np.maximum(np.floor(x_lp + 1e-9), 0.0)
        hi = np.minimum(np.ceil(x_lp - 1e-9), self.ub)
        self.h.changeColsBounds(self.n_x, self.x_idx, lo, hi)
        # presolve removes the columns the box fixes; its objective is not trusted here
        self.h.setOptionValue("presolve", "on")
        status = self._run(deadline, integer=True, gap=gap / 2)
        self.h.setOptionValue("presolve", "off")
        found = status is not SolveStatus.ERROR and self.h.getSolution().value_valid
        first = self._counts(self.h.getSolution()) if found else None
        self.h.changeColsBounds(self.n_x, self.x_idx, np.zeros(self.n_x), self.ub)
        if start is not None and (first is None or self.objective(start) < self.objective(first)):
            first = start

        def close_enough(x: IntArray, lower: float = bound) -> bool:
            objective = self.objective(x)
            self.bound = max(self.bound, lower)
            self.proven_gap = max(objective - self.bound, 0.0) / max(1.0, abs(objective))
            return self.proven_gap <= gap

        if first is not None and not close_enough(first):
            first = self._search(first, deadline)
        if first is not None:
            if close_enough(first):
                return SolveStatus.OPTIMAL, first
            point = self._point(first)
            self.h.setSolution(point.size, np.arange(point.size, dtype=np.int32), point)
        if time.perf_counter() >= deadline:
            return SolveStatus.TIME_LIMIT, first
        status = self._run(deadline, integer=True, gap=gap)
        solution = self.h.getSolution()
        if status is SolveStatus.OPTIMAL or (
            status is SolveStatus.TIME_LIMIT and solution.value_valid
        ):
            best = self._counts(solution)
            if first is not None and self.objective(first) < self.objective(best):
                best = first  # HiGHS may stop before it has used the start
            dual = self.h.getInfo().mip_dual_bound
            close_enough(best, dual if math.isfinite(dual) else bound)
            return status, best
        return status, first if status is SolveStatus.TIME_LIMIT else None

    def _search(
        self,
        x: IntArray,
        deadline: float,
        exact: tuple[float | None] | None = None,
        moves: int | None = None,
    ) -> IntArray:
        floor_sum = self.comp.problem.floor * self.comp.sources - TOL
        self._moves = self._moves or Moves(self.comp)
        waits = np.append(self.wait_weight, 0.0)  # + the moves' dummy resource
        return self._moves.improve(
            x, self.cost_x, self.cost_r, floor_sum, self.latency_row, deadline, exact, moves, waits
        )

    def polish(self, x: IntArray, theta: float | None, deadline: float) -> IntArray:
        """Local search on the true objective at feasible counts ``x`` (:mod:`.moves`).

        At most :data:`POLISH_MOVES` moves: it mends what the program's tangent misses near
        its iterate; far from it the next program step is the cheaper move (at 1000
        sources, hundreds of single moves took 300 ms).

        Args:
            x: feasible counts.
            theta: None for eq. 3's mean over analysed frames, else eq. 5's ``Theta``.
            deadline: ``time.perf_counter()`` value to stop at.
        """
        return self._search(x, deadline, (theta,), POLISH_MOVES)

    def objective(self, x: IntArray) -> float:
        """The program's objective at counts ``x`` (``z`` at its least feasible value)."""
        waiting = self._waiting(x)
        cost_z = self.cost_r[[r for _, r in self.queued]]
        return float(self.cost_x @ x + cost_z @ waiting) + self.offset

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

    def _point(self, x: IntArray) -> FloatArray:
        """Every column's value at counts ``x``: a MIP start for HiGHS."""
        u = self.comp.load @ x.astype(np.float64)
        point = [x.astype(np.float64), u[self.active], self._waiting(x)]
        if self.latency_index is not None and self.comp.variable_denominator:
            point.append(self.comp.frames(x[None, :]))
        return np.concatenate(point)

    def _counts(self, solution: highspy.HighsSolution) -> IntArray:
        values = np.asarray(solution.col_value[: self.n_x], dtype=np.float64)
        return np.rint(values).astype(np.int64)
