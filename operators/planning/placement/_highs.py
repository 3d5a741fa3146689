"""Small helpers around highspy shared by the placement MILP and the thesis program.

Variables are created with ``addBinaries`` / ``addVariables``; constraints are gathered as
numpy-built sparse rows and passed in one ``addRows`` call (building thousands of
``highs_linear_expression`` objects costs more than solving the models we build). The
solve always ends in a :class:`Solved` value: the model status is checked and mapped to a
:class:`SolveStatus`; nothing the solver reports escapes as an exception.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from tierflow.operators.planning.highs import SolveStatus, status_of

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


def new_model() -> highspy.Highs:
    """A silent HiGHS instance."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ bare
    h.setOptionValue("output_flag", False)
    return h


def columns(array: object) -> IntArray:
    """Column indices of an ``addBinaries`` / ``addVariables`` result, in its shape."""
    items = np.asarray(array, dtype=object)
    flat = np.fromiter((var.index for var in items.flat), dtype=np.int32, count=items.size)
    return flat.reshape(items.shape)


class Rows:
    """Sparse constraint rows ``lower <= sum(coef * x[col]) <= upper`` collected for addRows."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._cols: list[IntArray] = []
        self._coefs: list[FloatArray] = []
        self._lower: list[float] = []
        self._upper: list[float] = []
        self._nnz = 0

    def add(
        self,
        cols: Iterable[int] | IntArray,
        coefs: Iterable[float] | FloatArray,
        lower: float = -np.inf,
        upper: float = np.inf,
    ) -> None:
        """Append one row."""
        col_array = np.asarray(list(cols) if not isinstance(cols, np.ndarray) else cols)
        coef_array = np.asarray(list(coefs) if not isinstance(coefs, np.ndarray) else coefs)
        self._starts.append(self._nnz)
        self._cols.append(col_array.astype(np.int32))
        self._coefs.append(coef_array.astype(np.float64))
        self._lower.append(lower)
        self._upper.append(upper)
        self._nnz += col_array.size

    def __len__(self) -> int:
        return len(self._starts)

    def flush(self, h: highspy.Highs) -> None:
        """Pass the collected rows to ``h``."""
        if not self._starts:
            return
        h.addRows(
            len(self._starts),
            np.asarray(self._lower, dtype=np.float64),
            np.asarray(self._upper, dtype=np.float64),
            self._nnz,
            np.asarray(self._starts, dtype=np.int32),
            np.concatenate(self._cols).astype(np.int32),
            np.concatenate(self._coefs).astype(np.float64),
        )


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
