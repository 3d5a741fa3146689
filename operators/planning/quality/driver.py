""":func:`assign`: a quality policy by name, with Algorithm 1's refusal and §V's rotation.

Houmani et al. (SBAC-PAD 2021), Algorithm 1 and §V, around the policies of :mod:`.milp`
and :mod:`.exact`:

Refusal (steps 7-8). If no assignment satisfies every constraint and sources are joining,
the others are solved alone and the joining sources are admitted one by one in the order
given (Algorithm 1 runs once per joining source); one that cannot be admitted is refused
with the reason (accuracy below ``a_min``, or no capacity). A source whose qualities no
pipeline serves is refused up front (``no-pipeline``).

Rotation ("the mapping switches periodically between data sources", §V). Within a class,
the levels a source can be given are (quality, frame rate) pairs, ordered quality first,
then rate, highest first (with no option fixing a rate, the qualities). Sources are ordered
for the higher levels by how reduced they were in the previous slot (most reduced first),
ties by a round-robin offset ``(index - slot) mod n``; so a source degraded in one slot is
first in line for full quality and rate in the next, and no camera stays degraded while
others are not. ``Rotation.STICKY`` instead keeps sources at their previous level
(hysteresis). Sources keep their previous pipeline when it still serves the level.

``all-max`` is the paper's baseline: every source at its native quality and native rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from tierflow.operators.planning.highs import SolveStatus, absorb_banner
from tierflow.operators.planning.quality.compiled import (
    Budget,
    Catalogue,
    Compiled,
    Core,
    IntArray,
    OptionFilter,
    Outcome,
    compile_problem,
    evaluate,
    makespan_latency,
    rate_of,
)
from tierflow.operators.planning.quality.exact import EXACT_LIMIT, exact_core
from tierflow.operators.planning.quality.milp import milp_core
from tierflow.operators.planning.quality.problem import (
    RATE_TOL,
    AssignmentResult,
    Objective,
    Option,
    Problem,
    Refusal,
    Rotation,
    SolverError,
    Source,
    SourceAssignment,
)


@dataclass(frozen=True)
class _Policy:
    core: Core
    allow: OptionFilter


def _any_option(_: Source, __: Option) -> bool:
    return True


def _native_only(source: Source, option: Option) -> bool:
    native_rate = abs(option.rate(source) - source.fps) <= RATE_TOL * source.fps
    return option.quality == source.native and native_rate


_POLICIES: dict[str, _Policy] = {
    "milp": _Policy(milp_core, _any_option),
    "exact": _Policy(exact_core, _any_option),
    "all-max": _Policy(milp_core, _native_only),
}

POLICY_NAMES: tuple[str, ...] = tuple(_POLICIES)
"""Names :func:`assign` accepts."""


def assign(
    problem: Problem,
    policy: str = "milp",
    *,
    time_limit_s: float = 1.0,
    gap: float = 1e-3,
    exact_limit: int = EXACT_LIMIT,
) -> AssignmentResult:
    """Assign a quality and pipeline to every source of ``problem`` with ``policy``.

    Args:
        problem: the slot's sources, options, capacities and settings.
        policy: one of :data:`POLICY_NAMES`.
        time_limit_s: budget for all solver calls, seconds.
        gap: relative optimality gap the MILP may stop at, of its objective (mean latency in
            ms, or utility x 1000, whichever is larger in magnitude than 1): 1e-3 of a 70 ms
            mean is 0.07 ms. The answer is proven within it against the LP bound.
        exact_limit: most distributions ``exact`` enumerates before declining.

    Returns:
        the decision; solver failures, infeasibility and time limits are statuses in it.

    Raises:
        SolverError: ``policy`` is not a known name.
    """
    absorb_banner()
    chosen = _POLICIES.get(policy)
    if chosen is None:
        msg = f"assign: unknown policy {policy!r}; known: {', '.join(POLICY_NAMES)}"
        raise SolverError(msg)
    if problem.preference is not None and policy == "all-max":
        problem = replace(problem, preference=None)
    started = time.perf_counter()
    try:
        budget = Budget(started + time_limit_s, gap, exact_limit)
        result = _drive(problem, policy, chosen, budget)
        if policy == "all-max" and result.solved:
            result = replace(result, rule="all-max")
    except Exception as exc:  # a solver crash is reported, never raised into the control loop
        result = AssignmentResult(policy, SolveStatus.ERROR, message=f"{type(exc).__name__}: {exc}")
    return replace(result, solve_time_s=time.perf_counter() - started)


def _drive(problem: Problem, name: str, policy: _Policy, budget: Budget) -> AssignmentResult:
    cat = Catalogue.of(problem)
    refused: list[Refusal] = []
    usable: list[Source] = []
    served: dict[tuple[str, frozenset[int]], bool] = {}
    for s in problem.sources:
        key = (s.site, frozenset(s.qualities))
        if key not in served:
            served[key] = bool(cat.serving(s, policy.allow))
        if served[key]:
            usable.append(s)
        else:
            detail = f"no pipeline serves qualities {sorted(s.qualities)} at site {s.site!r}"
            refused.append(Refusal(s.id, "no-pipeline", detail))

    def solve(sources: Sequence[Source], prob: Problem = problem) -> tuple[Compiled, Outcome]:
        comp = compile_problem(prob, cat, sources, policy.allow)
        if not sources:
            return comp, Outcome(SolveStatus.OPTIMAL, np.zeros(0, dtype=np.int64), "empty")
        return comp, policy.core(comp, budget)

    comp, out = solve(usable)
    if out.counts is not None or out.status is not SolveStatus.INFEASIBLE:
        return _result(name, comp, out, refused)
    joiners = [s for s in usable if s.joining]
    admitted = [s for s in usable if not s.joining]
    comp, out = solve(admitted)
    if out.counts is None:
        detail = "the sources already admitted have no feasible assignment"
        refused += [Refusal(s.id, "infeasible", detail) for s in joiners]
        return _result(name, comp, out, refused, message=_why_infeasible(problem, admitted, solve))
    for joiner in joiners:  # Algorithm 1 once per joining source, in arrival order
        trial = [*admitted, joiner]
        comp_j, out_j = solve(trial)
        if out_j.counts is not None:
            admitted, comp, out = trial, comp_j, out_j
        elif out_j.status is not SolveStatus.INFEASIBLE:
            return _result(name, comp_j, out_j, refused)
        else:
            refused.append(_refusal(problem, trial, joiner, solve))
    return _result(name, comp, out, refused)


Solve = Callable[[Sequence[Source], Problem], tuple[Compiled, Outcome]]


def _refusal(problem: Problem, trial: Sequence[Source], joiner: Source, solve: Solve) -> Refusal:
    """Why ``joiner`` cannot join: accuracy (Algorithm 1 steps 7-8) or capacity."""
    _, relaxed = solve(trial, replace(problem, a_min=0.0, accuracy_floor=None, preference=None))
    if relaxed.counts is not None:
        detail = (
            f"no quality distribution keeps mean accuracy >= {problem.floor:.2f} with "
            f"{joiner.id} (Algorithm 1 steps 7-8)"
        )
        return Refusal(joiner.id, "accuracy", detail)
    detail = (
        f"no pipeline or link has capacity left for {joiner.id} at qualities {joiner.qualities}"
    )
    return Refusal(joiner.id, "capacity", detail)


def _why_infeasible(problem: Problem, sources: Sequence[Source], solve: Solve) -> str:
    relaxed = replace(problem, a_min=0.0, accuracy_floor=None, preference=None)
    _, out = solve(sources, relaxed)
    if out.counts is not None:
        return f"no solution: mean accuracy cannot reach {problem.floor:.2f}"
    return "no solution: pipeline or link capacity is exceeded at every quality"


def _result(
    policy: str,
    comp: Compiled,
    out: Outcome,
    refused: Sequence[Refusal],
    message: str = "",
) -> AssignmentResult:
    if out.counts is None:
        text = message or out.message or f"no solution ({out.status.value})"
        if not text.startswith("no solution"):
            text = f"no solution: {text}"
        return AssignmentResult(policy, out.status, refused=tuple(refused), message=text)
    x = out.counts
    ev = evaluate(comp, x[None, :])
    util, waiting = ev.utilisation[0], ev.waiting[0]
    objective = comp.problem.objective
    if objective is Objective.MAKESPAN:  # zero-load latency + the run's mean backlog wait
        var_latency = makespan_latency(comp, ev.utilisation)[0]
    else:  # per-frame wait at each resource: L_q / lambda (Little's law)
        lam = (x * comp.fps) @ (comp.load > 0).T.astype(np.float64)
        wait_s = np.divide(waiting, lam, out=np.zeros_like(waiting), where=lam > 0)
        var_latency = comp.base_s + (comp.load > 0).T.astype(np.float64) @ wait_s
    assignments = []
    for v, source in _map_counts(comp, x):
        o = comp.var_option[v]
        assignments.append(
            SourceAssignment(
                source.id, o.quality, o.pipeline, float(var_latency[v]), o.accuracy,
                reduced=o.quality < source.native, fps=float(comp.fps[v]),
            )
        )  # fmt: skip
    latency, utility = float(ev.latency_s[0]), float(ev.utility[0])
    makespan = float(ev.makespan_s[0])
    value = {Objective.UTILITY: utility, Objective.MAKESPAN: makespan}.get(objective, latency)
    return AssignmentResult(
        policy=policy,
        status=out.status,
        assignments=tuple(sorted(assignments, key=lambda a: a.source)),
        refused=tuple(refused),
        latency_s=latency if x.size else math.nan,
        accuracy=float(ev.accuracy[0]) if x.size else math.nan,
        utility=utility if x.size else math.nan,
        objective=value if x.size else math.nan,
        makespan_s=makespan if x.size else math.nan,
        rule=out.rule,
        iterations=out.iterations,
        pipeline_utilisation={
            rid: float(util[r]) for r, (k, rid, _) in enumerate(comp.resources) if k == "pipeline"
        },
        link_utilisation={
            rid: float(util[r]) for r, (k, rid, _) in enumerate(comp.resources) if k == "link"
        },
        message=message or out.message,
        solved=True,
        gap=out.gap,
    )


def _map_counts(comp: Compiled, x: IntArray) -> list[tuple[int, Source]]:
    """Hand each class's counts to its sources with rotation (or stickiness) and hysteresis."""
    rotate = comp.problem.rotation is Rotation.ROTATE
    slot = comp.problem.slot
    out: list[tuple[int, Source]] = []

    def level(v: int) -> tuple[int, float]:  # (quality, rate) of a column
        return comp.var_option[v].quality, float(comp.fps[v])

    for c, cls in enumerate(comp.classes):
        mine = [int(v) for v in np.flatnonzero(comp.var_class == c)]
        levels = sorted(
            {(q, cls.fps) for s in cls.members for q in s.qualities} | {level(v) for v in mine},
            reverse=True,
        )
        n = len(cls.members)

        def rank(s: Source, levels: list[tuple[int, float]] = levels) -> int:
            cur = s.current
            at = None if cur is None else (cur.quality, rate_of(cur, s))
            return levels.index(at) if at in levels else 0

        def key(item: tuple[int, Source], n: int = n) -> tuple[int, int]:
            i, s = item
            return (-rank(s), (i - slot) % n) if rotate else (rank(s), i)

        queue = [s for _, s in sorted(enumerate(cls.members), key=key)]
        cols = [v for v in mine if x[v] > 0]
        for at in sorted({level(v) for v in cols}, reverse=True):
            left = {v: int(x[v]) for v in cols if level(v) == at}
            group, queue = queue[: sum(left.values())], queue[sum(left.values()) :]
            rest: list[Source] = []
            for s in group:  # keep the previous pipeline when it still serves this level
                cur = s.current
                keep = [
                    v for v in left
                    if left[v] > 0 and cur is not None
                    and (cur.quality, cur.pipeline, rate_of(cur, s))
                    == (at[0], comp.var_option[v].pipeline, at[1])
                ]  # fmt: skip
                if keep:
                    left[keep[0]] -= 1
                    out.append((keep[0], s))
                else:
                    rest.append(s)
            slots = [v for v, k in left.items() for _ in range(k)]
            out += list(zip(slots, rest, strict=True))
    return out
