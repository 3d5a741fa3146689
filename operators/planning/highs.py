"""HiGHS (highspy) in one place, for every program the planners build.

Quality assignment (Algorithm 1 of seed 000 as a MILP, :mod:`.quality`) and placement
(Algorithms 2-4 of seed 000, the thesis program of seed 003, :mod:`.placement`) share:

- :func:`new_model`, a silent instance, and :func:`absorb_banner`, which keeps the banner
  HiGHS prints for a process's first instance off stdout;
- :func:`columns`, the indices of ``addBinaries`` / ``addVariables`` results, and
  :func:`add_columns`, bounded columns from arrays without a Python object each;
- :class:`Rows`, constraints gathered as numpy-built sparse rows and passed in one
  ``addRows`` call (building thousands of ``highs_linear_expression`` objects costs more
  than solving the models we build), and :func:`set_costs`;
- one status vocabulary, :class:`SolveStatus`: HiGHS's model status is translated by
  :func:`status_of`, never passed on raw; :func:`solve` always ends in a :class:`Solved`
  value, and nothing the solver reports escapes as an exception.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import math
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

ColumnIndices = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


class SolveStatus(enum.StrEnum):
    """How a solve (or a heuristic) ended; the values appear in JSON output and metrics."""

    OPTIMAL = "optimal"
    """Proven optimal: within the requested relative gap for the quality MILP (exactly for
    ``exact``); for placement, instances may still be unplaced when capacity is short (the
    optimum leaves them out)."""
    FEASIBLE = "feasible"
    """Every instance placed, optimality not proven (the placement heuristics)."""
    PARTIAL = "partial"
    """A heuristic left some instances (or requests) unplaced."""
    TIME_LIMIT = "time-limit"
    """Stopped by the time limit; the result holds the best feasible point found, if any."""
    INFEASIBLE = "infeasible"
    """Proven that nothing meets every constraint."""
    ERROR = "error"
    """The solver failed or declined (``exact`` above its size limit); the message says why."""


_TIME_LIMITS = (
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kIterationLimit,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kInterrupt,
)
_INFEASIBLE = (
    highspy.HighsModelStatus.kInfeasible,
    highspy.HighsModelStatus.kUnboundedOrInfeasible,
)


def status_of(model_status: highspy.HighsModelStatus) -> SolveStatus:
    """The :class:`SolveStatus` of a HiGHS model status; anything unexpected is ERROR."""
    if model_status == highspy.HighsModelStatus.kOptimal:
        return SolveStatus.OPTIMAL
    if model_status in _INFEASIBLE:
        return SolveStatus.INFEASIBLE
    if model_status in _TIME_LIMITS:
        return SolveStatus.TIME_LIMIT
    return SolveStatus.ERROR


@functools.cache
def absorb_banner() -> None:
    """Create the process's first HiGHS instance with its banner sent to stderr (once).

    HiGHS prints a banner to the C-level stdout when a process creates its first solver,
    which would corrupt machine-readable output (``tierflow plan --json``), and highspy
    offers no switch that acts before the first instance exists. This creates that first
    instance with file descriptor 1 pointed at stderr; every later instance is silent.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ bare
        ctypes.CDLL(None).fflush(None)  # the banner sits in C's stdout buffer until flushed
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_model() -> highspy.Highs:
    """A silent HiGHS instance (usable as a context manager, which clears it on exit)."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ bare
    h.setOptionValue("output_flag", False)
    return h


def add_columns(
    h: highspy.Highs, lower: npt.ArrayLike, upper: npt.ArrayLike, *, integer: bool = False
) -> None:
    """Append columns with bounds and no cost or entries, from numpy arrays.

    ``addVariables`` builds a Python object per column, which costs more than the solve of
    a few thousand columns; this passes the bounds as arrays.
    """
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), lo.shape)
    hi = np.minimum(hi, highspy.kHighsInf)
    n = lo.size
    first = h.getNumCol()
    empty = np.zeros(0, dtype=np.int32)
    h.addCols(n, np.zeros(n), lo, hi, 0, np.zeros(n, dtype=np.int32), empty, np.zeros(0))
    if integer:
        kind = np.full(n, 1, dtype=np.uint8)  # HighsVarType.kInteger
        h.changeColsIntegrality(n, np.arange(first, first + n, dtype=np.int32), kind)


def columns(array: object) -> ColumnIndices:
    """Column indices of an ``addBinaries`` / ``addVariables`` result, in its shape."""
    items = np.asarray(array, dtype=object)
    flat = np.fromiter((var.index for var in items.flat), dtype=np.int32, count=items.size)
    return flat.reshape(items.shape)


class Rows:
    """Sparse rows ``lower <= sum(coef * x[col]) <= upper`` gathered for one ``addRows`` call."""

    def __init__(self) -> None:
        self._cols: list[ColumnIndices] = []
        self._coefs: list[FloatArray] = []
        self._lower: list[float] = []
        self._upper: list[float] = []

    def add(
        self,
        cols: npt.ArrayLike,
        coefs: npt.ArrayLike,
        lower: float = -math.inf,
        upper: float = math.inf,
    ) -> None:
        """Append one row over columns ``cols`` with coefficients ``coefs`` (same length)."""
        self._cols.append(np.asarray(cols, dtype=np.int32).reshape(-1))
        self._coefs.append(np.asarray(coefs, dtype=np.float64).reshape(-1))
        self._lower.append(lower)
        self._upper.append(upper)

    def __len__(self) -> int:
        return len(self._lower)

    def flush(self, h: highspy.Highs) -> None:
        """Pass the gathered rows to ``h`` (infinite bounds become HiGHS's infinity)."""
        if not self._cols:
            return
        sizes = [cols.size for cols in self._cols]
        starts = np.cumsum([0, *sizes[:-1]]).astype(np.int32)
        inf = highspy.kHighsInf
        lower = np.clip(np.asarray(self._lower, dtype=np.float64), -inf, inf)
        upper = np.clip(np.asarray(self._upper, dtype=np.float64), -inf, inf)
        h.addRows(len(self._lower), lower, upper, sum(sizes), starts,
                  np.concatenate(self._cols), np.concatenate(self._coefs))  # fmt: skip


def set_costs(h: highspy.Highs, costs: FloatArray) -> None:
    """Set the objective coefficient of every column (``costs`` has one per column)."""
    h.changeColsCost(costs.size, np.arange(costs.size, dtype=np.int32), costs)


@dataclass(frozen=True)
class Solved:
    """Outcome of :func:`solve`.

    Attributes:
        status: mapped model status.
        values: column values of the best solution found, or None without one.
        objective: objective value (nan without a solution).
        seconds: solver run time, s.
        message: HiGHS's model status text.
    """

    status: SolveStatus
    values: FloatArray | None
    objective: float
    seconds: float
    message: str


def solve(h: highspy.Highs, *, time_limit_s: float, exact: bool = True) -> Solved:
    """Run HiGHS and translate the outcome into values.

    Args:
        h: the model.
        time_limit_s: wall-clock limit, s.
        exact: demand a zero relative MIP gap (our objectives are lexicographic sums
            whose small terms would hide inside the default 1e-4 gap).
    """
    h.setOptionValue("time_limit", float(time_limit_s))
    if exact:
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-6)
    started = time.perf_counter()
    try:
        run_status = h.run()
    except Exception as exc:  # a solver failure is a status, not a crash
        return Solved(SolveStatus.ERROR, None, float("nan"), 0.0, f"HiGHS failed: {exc}")
    seconds = time.perf_counter() - started
    model_status = h.getModelStatus()
    message = h.modelStatusToString(model_status)
    if run_status == highspy.HighsStatus.kError:
        # The reason went to HiGHS's (silenced) log; say at least where it failed.
        text = f"HiGHS run returned an error (model status: {message})"
        return Solved(SolveStatus.ERROR, None, float("nan"), seconds, text)
    status = status_of(model_status)
    info = h.getInfo()
    if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return Solved(status, None, float("nan"), seconds, message)
    values = np.asarray(h.getSolution().col_value, dtype=np.float64)
    return Solved(status, values, float(info.objective_function_value), seconds, message)
