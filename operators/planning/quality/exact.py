"""The ``exact`` policy: Algorithm 1 of Houmani et al. (SBAC-PAD 2021) by enumeration.

As written: enumerate the quality distributions ``B`` (counts of each class's sources on
each of its options, stars and bars), keep those with mean accuracy >= the slot's floor
(steps 2-6, eq. 4 and 6) and within every capacity, report infeasibility when none is left
(steps 7-8), take the fastest (step 9, eq. 3) and let the preference rule replace it, in
``B``'s order with ``best`` updated inside the loop (steps 10-12). With the utility
objective the greatest eq. 5 utility wins; with the makespan objective the least makespan,
ties to the most accurate (:func:`min_makespan`). Options that fix a frame rate are more options of
a class; the mean latency over analysed frames is scored exactly, ratio and all. Small
instances only: more than ``exact_limit`` distributions are declined with an ERROR status.

:func:`enumerate_distributions` is shared with ``milp``, which enumerates tiny instances
instead of building a program.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality.compiled import (
    BoolArray,
    Budget,
    Compiled,
    FloatArray,
    IntArray,
    Outcome,
    evaluate,
)
from tierflow.operators.planning.quality.problem import Objective

EXACT_LIMIT = 200_000
"""Most distributions ``exact`` enumerates before it declines the instance."""

_EXACT_CHUNK = 20_000  # distributions scored per numpy batch


def _compositions(n: int, k: int) -> IntArray:
    """Every way to split ``n`` sources over ``k`` options (stars and bars), (M, k).

    Ordered from "all on the first option" on, the order ``B`` is listed in (the paper's
    example lists ``{(2) 512p, (1) 416p}`` from the highest quality down).
    """
    if k == 0:
        return np.zeros((1 if n == 0 else 0, 0), dtype=np.int64)
    rows = []
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        edges = (-1, *bars, n + k - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    return np.asarray(rows[::-1], dtype=np.int64).reshape(-1, k)


def distribution_count(comp_sizes: Iterable[tuple[int, int]]) -> int:
    """Size of Algorithm 1's ``B``: ``prod C(n + k - 1, k - 1)`` over (sources, options)."""
    return math.prod(math.comb(n + k - 1, k - 1) if k else int(n == 0) for n, k in comp_sizes)


def class_sizes(comp: Compiled) -> list[tuple[int, int]]:
    """(sources, columns) per class of ``comp``: the arguments of :func:`distribution_count`."""
    return [
        (len(c.members), int(np.count_nonzero(comp.var_class == i)))
        for i, c in enumerate(comp.classes)
    ]


@dataclass(frozen=True)
class Enumerated:
    """Every distribution of ``B`` scored: eq. 3-5 per distribution, in ``B``'s order."""

    rows: Callable[[IntArray], IntArray]  # counts (D, V) of the distributions at indices
    feasible: BoolArray  # (M,)
    latency_s: FloatArray  # (M,)
    accuracy: FloatArray  # (M,)
    utility: FloatArray  # (M,)
    makespan_s: FloatArray  # (M,) NaN unless the objective is makespan


def enumerate_distributions(comp: Compiled, limit: int) -> Enumerated | None:
    """Score every distribution of ``comp``; None when there are more than ``limit``."""
    sizes = class_sizes(comp)
    total = distribution_count(sizes)
    if total > limit:
        return None
    per_class = [_compositions(n, k) for n, k in sizes]
    shape = tuple(len(p) for p in per_class)

    def rows(flat: IntArray) -> IntArray:  # distributions by their index in B (C order)
        parts = np.unravel_index(flat, shape)
        return np.concatenate([p[i] for p, i in zip(per_class, parts, strict=True)], axis=1)

    scores = [
        evaluate(comp, rows(np.arange(start, min(total, start + _EXACT_CHUNK))))
        for start in range(0, total, _EXACT_CHUNK)  # chunks bound the (D, R) work arrays
    ]
    return Enumerated(
        rows,
        np.concatenate([e.feasible for e in scores]),
        np.concatenate([e.latency_s for e in scores]),
        np.concatenate([e.accuracy for e in scores]),
        np.concatenate([e.utility for e in scores]),
        np.concatenate([e.makespan_s for e in scores]),
    )


NO_DISTRIBUTION = "no distribution meets every constraint"

MAKESPAN_TOL = 1e-9
"""Relative tolerance within which two makespans tie (the more accurate then wins)."""


def min_makespan(scored: Enumerated) -> Outcome:
    """The least makespan among distributions meeting eq. 6, ties to the most accurate.

    Both ``exact`` and ``milp`` (on instances it enumerates) choose so; among equal
    makespan and accuracy the first in ``B``'s order wins.
    """
    ok = np.flatnonzero(scored.feasible)
    if ok.size == 0:
        return Outcome(SolveStatus.INFEASIBLE, message=NO_DISTRIBUTION)
    span = scored.makespan_s[ok]
    tied = ok[span <= span.min() * (1 + MAKESPAN_TOL)]
    best = int(tied[np.argmax(scored.accuracy[tied])])
    return Outcome(SolveStatus.OPTIMAL, scored.rows(np.asarray([best]))[0], "min-makespan")


def exact_core(comp: Compiled, budget: Budget) -> Outcome:
    """Algorithm 1 by enumerating every distribution of ``comp`` (see the module)."""
    limit = budget.exact_limit  # bounds the work instead of the deadline
    scored = enumerate_distributions(comp, limit)
    if scored is None:
        total = distribution_count(class_sizes(comp))
        msg = f"exact: {total} quality distributions exceed the limit {limit}; use 'milp'"
        return Outcome(SolveStatus.ERROR, message=msg)
    problem = comp.problem
    if problem.objective is Objective.MAKESPAN:
        return min_makespan(scored)
    ok = np.flatnonzero(scored.feasible)  # steps 2-6: keep b with A >= a_min
    if ok.size == 0:  # steps 7-8
        return Outcome(SolveStatus.INFEASIBLE, message=NO_DISTRIBUTION)
    lat, acc = scored.latency_s, scored.accuracy
    if problem.objective is Objective.UTILITY:
        best = int(ok[np.argmax(scored.utility[ok])])
        return Outcome(SolveStatus.OPTIMAL, scored.rows(np.asarray([best]))[0], "max-utility")
    best = int(ok[np.argmin(lat[ok])])  # step 9
    rule = "min-latency"
    pref = problem.preference
    if pref is not None:  # steps 10-12, in B's order, best updated as the loop goes
        # best's accuracy only grows, so only these can ever pass the accuracy test
        need = (
            acc[best] * (1 + pref.accuracy_gain)
            if pref.relative
            else acc[best] + pref.accuracy_gain
        )
        for i in ok[acc[ok] >= need - 1e-9]:
            if pref.prefers(float(lat[i] - lat[best]), float(acc[best]), float(acc[i])):
                best, rule = int(i), pref.name
    return Outcome(SolveStatus.OPTIMAL, scored.rows(np.asarray([best]))[0], rule)
