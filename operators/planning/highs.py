"""HiGHS (highspy) in one place: how a solve ended, in the words every planner uses.

Quality assignment (Algorithm 1 of seed 000 as a MILP) and placement (Algorithms 2-4, the
thesis program of seed 003) report their outcome with the one :class:`SolveStatus`; HiGHS's
model status is translated into it by :func:`status_of`, never passed on raw.
"""

from __future__ import annotations

import enum

import highspy


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
