"""The makespan objective (seed 000 §VII, eq. 1's ``T_E = Load/C`` over a whole run).

A brute force written from the definition, over every source x every option, is the
reference for ``exact`` (Algorithm 1's enumeration) and for the HiGHS program of
:mod:`tierflow.operators.planning.quality.makespan`, called directly so that it runs even
on instances ``milp`` would enumerate.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.quality import (
    Link,
    Objective,
    Option,
    Pipeline,
    Problem,
    SolverError,
    Source,
    assign,
)
from tierflow.operators.planning.quality.compiled import (
    Budget,
    Catalogue,
    compile_problem,
    evaluate,
)
from tierflow.operators.planning.quality.exact import EXACT_LIMIT
from tierflow.operators.planning.quality.makespan import makespan_program

QUALITIES = (512, 416, 320)


def brute_force(problem: Problem) -> tuple[float, float] | None:
    """(makespan_s, accuracy) of the least makespan, ties to the most accurate; None if none.

    From the definition: each resource is offered ``duration_s * sum(fps)`` frames (or
    ``... * fps * S`` bits on a link) and serves ``C`` frames/s (``w`` bits/s), so it is done
    at ``max(duration_s, Load / C)``; the makespan is the latest; mean accuracy >= a_min.
    """
    pipes = {p.id: p for p in problem.pipelines}
    links = {lk.id: lk for lk in problem.links}
    span_s = problem.duration_s
    choices = [[o for o in problem.options if o.serves(s)] for s in problem.sources]
    best: tuple[float, float] | None = None
    for combo in itertools.product(*choices):
        frames: dict[str, float] = defaultdict(float)  # offered over the run, per pipeline
        bits: dict[str, float] = defaultdict(float)  # offered over the run, per link
        for s, o in zip(problem.sources, combo, strict=True):
            offered = (s.fps if o.fps is None else o.fps) * span_s
            frames[o.pipeline] += offered
            for lk in o.links:
                bits[lk] += offered * o.bits_per_frame
        accuracy = sum(o.accuracy for o in combo) / len(combo)
        if accuracy < problem.a_min - 1e-9:
            continue
        drain = [load / pipes[p].capacity_fps for p, load in frames.items()]
        drain += [load / (links[lk].bandwidth_mbps * 1e6) for lk, load in bits.items()]
        makespan = max([span_s, *drain])
        if (
            best is None
            or makespan < best[0] * (1 - 1e-9)
            or (makespan <= best[0] * (1 + 1e-9) and accuracy > best[1])
        ):
            best = (makespan, accuracy)
    return best


@st.composite
def makespan_problems(draw: st.DrawFn) -> Problem:
    """2-5 sources, 1-3 pipelines (some behind a link), options at reduced rates too."""
    pipelines, links, options = [], [], []
    for p in range(draw(st.integers(1, 3))):
        pid = f"p{p}"
        pipelines.append(Pipeline(pid, draw(st.floats(2.0, 60.0)), draw(st.floats(0.0, 0.2))))
        path: tuple[str, ...] = ()
        if draw(st.booleans()):
            links.append(Link(f"l{p}", draw(st.floats(1.0, 50.0)), 0.004))
            path = (f"l{p}",)
        for q in draw(st.lists(st.sampled_from(QUALITIES), min_size=1, max_size=3, unique=True)):
            acc = draw(st.floats(0.3, 0.95))
            bits = 2.1 * q * q
            options.append(Option(q, pid, acc, bits, path, reduce_s=0.003))
            if draw(st.booleans()):  # the same quality at a lower rate (issue 9's options)
                options.append(Option(q, pid, acc * 0.9, bits, path, fps=5.0))
    sources = []
    for i in range(draw(st.integers(2, 5))):
        qs = tuple(draw(st.lists(st.sampled_from(QUALITIES), min_size=1, max_size=3, unique=True)))
        sources.append(Source(f"s{i}", draw(st.sampled_from([5.0, 12.5, 25.0])), qs))
    # every source has an option (refusals for "no-pipeline" are tested elsewhere)
    assume(all(any(o.serves(s) for o in options) for s in sources))
    return Problem(
        sources,
        options,
        pipelines,
        links,
        a_min=draw(st.floats(0.0, 0.9)),
        objective=Objective.MAKESPAN,
        duration_s=draw(st.sampled_from([60.0, 1200.0])),
    )


def _program(problem: Problem) -> tuple[SolveStatus, float, float]:
    """The HiGHS program on ``problem``'s compiled form: status, makespan_s, accuracy."""
    comp = compile_problem(problem, Catalogue.of(problem), problem.sources, lambda s, o: True)
    out = makespan_program(comp, Budget(time.perf_counter() + 10.0, 0.0, EXACT_LIMIT))
    if out.counts is None:
        return out.status, math.nan, math.nan
    ev = evaluate(comp, out.counts[None, :])
    assert ev.feasible[0]
    return out.status, float(ev.makespan_s[0]), float(ev.accuracy[0])


@settings(max_examples=150, deadline=None)
@given(makespan_problems())
def test_exact_and_the_program_reach_the_brute_force_makespan(problem: Problem) -> None:
    want = brute_force(problem)
    exact = assign(problem, "exact")
    status, span, accuracy = _program(problem)
    if want is None:
        assert exact.status is SolveStatus.INFEASIBLE and not exact.solved
        assert status is SolveStatus.INFEASIBLE
        return
    assert exact.solved and status is SolveStatus.OPTIMAL
    assert exact.makespan_s == pytest.approx(want[0], rel=1e-7)
    assert exact.objective == exact.makespan_s
    assert exact.accuracy == pytest.approx(want[1], abs=1e-7)
    assert span == pytest.approx(want[0], rel=1e-6)
    assert accuracy == pytest.approx(want[1], abs=1e-6)
    assert assign(problem, "milp").makespan_s == pytest.approx(want[0], rel=1e-6)


def _one_pipeline(fps: float, capacity_fps: float, objective: Objective) -> Problem:
    return Problem(
        [Source("cam", fps, (512,))],
        [Option(512, "p", 0.7)],
        [Pipeline("p", capacity_fps, processing_s=0.1)],
        objective=objective,
        duration_s=1200.0,
    )


def test_an_overloaded_pipeline_drains_after_the_run_instead_of_being_infeasible() -> None:
    capped = assign(_one_pipeline(25.0, 10.0, Objective.LATENCY))
    assert capped.status is SolveStatus.INFEASIBLE  # the queue curve caps utilisation
    res = assign(_one_pipeline(25.0, 10.0, Objective.MAKESPAN))
    assert res.solved and res.rule == "min-makespan"
    assert res.makespan_s == pytest.approx(1200.0 * 25.0 / 10.0)  # T_E = Load/C = 3000 s
    assert res.pipeline_utilisation["p"] == pytest.approx(2.5)
    # fluid FIFO: a frame offered at t leaves at 2.5 t; mean wait 1200 * 1.5 / 2 = 900 s
    assert res.latency_s == pytest.approx(0.1 + 900.0)
    assert res.assignments[0].latency_s == pytest.approx(res.latency_s)


def test_an_underloaded_run_ends_with_the_run() -> None:
    res = assign(_one_pipeline(5.0, 10.0, Objective.MAKESPAN))
    assert res.makespan_s == 1200.0 and res.latency_s == pytest.approx(0.1)


def test_the_accuracy_floor_still_refuses_a_joining_source() -> None:
    problem = Problem(
        [Source("a", 25.0, (512, 320)), Source("b", 25.0, (320,), joining=True)],
        [Option(512, "cloud", 0.7), Option(320, "fog", 0.2)],
        [Pipeline("cloud", 10.0), Pipeline("fog", 10.0)],
        a_min=0.5,
        objective=Objective.MAKESPAN,
    )
    res = assign(problem)
    assert [a.source for a in res.assignments] == ["a"] and res.assignments[0].quality == 512
    assert [(r.source, r.reason) for r in res.refused] == [("b", "accuracy")]


def test_ties_in_makespan_go_to_the_more_accurate_assignment() -> None:
    # the link to the fog is the bottleneck whatever the second camera does
    problem = Problem(
        [Source("slow", 25.0, (416,)), Source("free", 25.0, (320, 512))],
        [
            Option(416, "fog", 0.6, 2.1 * 416**2, ("uplink",)),
            Option(512, "cloud", 0.8),
            Option(320, "cloud", 0.4),
        ],
        [Pipeline("fog", 100.0), Pipeline("cloud", 100.0)],
        [Link("uplink", 1.0)],
        a_min=0.0,
        objective=Objective.MAKESPAN,
    )
    for policy in ("exact", "milp"):
        res = assign(problem, policy)
        assert res.by_source()["free"].quality == 512, policy
        assert res.makespan_s == pytest.approx(1200.0 * 25 * 2.1 * 416**2 / 1e6)


def test_all_max_reports_the_no_adaptation_makespan() -> None:
    problem = Problem(
        [Source(f"c{i}", 25.0, (416, 512)) for i in range(4)],
        [Option(512, "cloud", 0.71), Option(416, "fog", 0.6)],
        [Pipeline("cloud", 40.0), Pipeline("fog", 20.0)],
        objective=Objective.MAKESPAN,
    )
    baseline = assign(problem, "all-max")
    adapted = assign(problem)
    assert baseline.makespan_s == pytest.approx(1200.0 * 100 / 40)  # every camera on cloud
    assert adapted.makespan_s == pytest.approx(1200.0 * 75 / 40)  # one camera to the fog
    assert sum(a.reduced for a in adapted.assignments) == 1


def test_other_objectives_leave_makespan_unset() -> None:
    res = assign(_one_pipeline(5.0, 10.0, Objective.LATENCY))
    assert res.solved and math.isnan(res.makespan_s)


def test_duration_must_be_positive() -> None:
    with pytest.raises(SolverError, match="duration_s must be finite and > 0"):
        Problem([], [], [], objective=Objective.MAKESPAN, duration_s=0.0)
