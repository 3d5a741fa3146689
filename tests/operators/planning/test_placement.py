"""Placement policies: categories, Algorithms 2-4, the MILP, the thesis program, AVEC."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence

import highspy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.placement import (
    AUTO,
    AVEC_WEIGHTS,
    POLICIES,
    AvecPolicy,
    Category,
    EdgeNode,
    LoadedModel,
    Mode,
    ModelSpec,
    PlacementError,
    PlacementProblem,
    PlacementResult,
    Request,
    RequestPlan,
    RequestProblem,
    WeightClass,
    Workload,
    build_problem,
    categorise,
    evaluate,
    execution_time_with_migrations_s,
    iterative_search,
    place,
    select_node,
    solve_requests,
)
from tierflow.operators.planning.placement.algorithms import run_algorithms
from tierflow.operators.planning.placement.milp import solve_milp
from tierflow.operators.planning.placement.requests import memory_view, reject_penalty_ms
from tierflow.operators.planning.workflow import (
    NodeMetrics,
    Resources,
    Stage,
    Task,
    TaskType,
    Tier,
    TierSpec,
    Workflow,
    default_workflow,
)

# Derandomized and without an example database: the same examples on every run and machine.
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def task(
    name: str,
    kind: TaskType,
    cores: float,
    *,
    memory_mb: float = 0.0,
    storage_mb: float = 0.0,
    after: Sequence[str] = (),
    model: str | None = None,
    quality: int | None = None,
    instances: int = 1,
    stage: Stage | None = None,
) -> Task:
    stages = {
        TaskType.PRE_PROCESSING: Stage.PRE,
        TaskType.POST_PROCESSING: Stage.POST,
        TaskType.STORAGE: Stage.POST,
        TaskType.SHALLOW: Stage.ANALYSIS,
        TaskType.MODEL: Stage.ANALYSIS,
    }
    return Task(
        name=name,
        stage=stage or stages[kind],
        type=kind,
        requires=Resources(cores, memory_mb, 0.0, storage_mb),
        instances=instances,
        after=tuple(after),
        model=model,
        quality=quality,
    )


def workflow_of(
    tasks: Sequence[Task], tiers: Sequence[TierSpec], min_share: float = 0.5
) -> Workflow:
    """A workflow with the paper's Table II links."""
    return dataclasses.replace(
        default_workflow(), name="test", tasks=tuple(tasks), tiers=tuple(tiers), min_share=min_share
    )


def tier(
    t: Tier, nodes: int, cores: float, memory_mb: float = 65536, storage_mb: float = math.inf
) -> TierSpec:
    return TierSpec(t, nodes, Resources(cores, memory_mb, 0.0, storage_mb))


def check_capacities(result: PlacementResult, nodes: Sequence[NodeMetrics]) -> None:
    """No node holds more than its free resources; every share within [floor, 1]."""
    for node in nodes:
        used = result.used(node.node)
        assert used.fits_in(node.free, tolerance=1e-6), (node.node, used, node.free)


# --------------------------------------------------------------------------------------
# Categorisation (§VI-A)


def test_default_workflow_categories_match_the_paper() -> None:
    assert categorise(default_workflow()) == {
        "resize": Category.NI,
        "detect-416": Category.LI,
        "detect-512": Category.HI,
        "draw": Category.HI,
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (TaskType.PRE_PROCESSING, Category.NI),
        (TaskType.POST_PROCESSING, Category.NI),
        (TaskType.STORAGE, Category.HI),
        (TaskType.SHALLOW, Category.LI),
    ],
)
def test_declared_type_decides_the_category(kind: TaskType, expected: Category) -> None:
    workflow = workflow_of([task("t", kind, 1)], [tier(Tier.CLOUD, 1, 8)])
    assert categorise(workflow) == {"t": expected}


def test_lowest_resolution_of_each_model_family_is_li_the_others_hi() -> None:
    tasks = [
        task("yolo-320", TaskType.MODEL, 1, model="yolo", quality=320),
        task("yolo-608", TaskType.MODEL, 1, model="yolo", quality=608),
        task("rcnn-800", TaskType.MODEL, 1, model="rcnn", quality=800),
        task("rcnn-600", TaskType.MODEL, 1, model="rcnn", quality=600),
        task("ssd-300", TaskType.MODEL, 1, model="ssd", quality=300),
    ]
    assert categorise(workflow_of(tasks, [tier(Tier.CLOUD, 1, 8)])) == {
        "yolo-320": Category.LI,
        "yolo-608": Category.HI,
        "rcnn-800": Category.HI,
        "rcnn-600": Category.LI,
        "ssd-300": Category.LI,  # the only implementation is the lowest
    }


def test_intensive_instances_may_never_use_the_edge() -> None:
    problem = build_problem(default_workflow(), default_workflow().nodes())
    for instance, allowed in zip(problem.instances, problem.allowed, strict=True):
        tiers = {problem.nodes[n].tier for n in allowed}
        if instance.category.intensive:
            assert Tier.EDGE not in tiers and tiers, instance.id
        else:
            assert Tier.EDGE in tiers
    hi = next(i for i in problem.instances if i.category is Category.HI)
    li = next(i for i in problem.instances if i.category is Category.LI)
    assert hi.tiers == (Tier.CLOUD, Tier.FOG) and li.tiers == (Tier.FOG, Tier.CLOUD)


# --------------------------------------------------------------------------------------
# Algorithms 2-4 and the MILP on the paper's use case


@pytest.mark.parametrize("policy", ["algorithms", "milp"])
def test_default_workflow_goes_where_the_paper_put_it(policy: str) -> None:
    workflow = default_workflow()
    result = place(workflow, policy=policy)
    assert result.complete and result.status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL)
    assert result.tiers_of("detect-512") == {Tier.CLOUD}
    assert result.tiers_of("draw") == {Tier.CLOUD}
    assert result.tiers_of("detect-416") == {Tier.FOG}
    assert result.tiers_of("resize") == {Tier.EDGE}
    # One Resize per Edge node; every task at its full requirement (capacities allow it).
    resize_nodes = [p.node for p in result.placements.values() if p.task == "resize"]
    assert len(set(resize_nodes)) == 11
    assert all(p.share == pytest.approx(1.0) for p in result.placements.values())
    # YOLOv4-512 and Draw share the Cloud node by half (§VII-A).
    assert result.used("cloud-0").cores == pytest.approx(8.0)
    check_capacities(result, workflow.nodes())


def test_milp_and_algorithms_agree_on_the_default_cost() -> None:
    workflow = default_workflow()
    assert place(workflow, policy="milp").cost == pytest.approx(
        place(workflow, policy="algorithms").cost, rel=1e-9
    )


def test_hi_overflow_goes_to_the_fog_at_full_share_before_any_adjustment() -> None:
    tasks = [
        task("pre", TaskType.PRE_PROCESSING, 1),
        task("m-416", TaskType.MODEL, 2, model="m", quality=416, after=["pre"]),
        task("m-512", TaskType.MODEL, 4, model="m", quality=512, after=["pre"]),
        task("post", TaskType.STORAGE, 4, after=["m-416", "m-512"]),
    ]
    tiers = [tier(Tier.EDGE, 1, 1), tier(Tier.FOG, 2, 4), tier(Tier.CLOUD, 1, 4)]
    workflow = workflow_of(tasks, tiers)
    for policy in ("algorithms", "milp"):
        result = place(workflow, policy=policy)
        assert result.complete, policy
        assert all(p.share == pytest.approx(1.0) for p in result.placements.values()), policy
        hi_tiers = result.tiers_of("m-512") | result.tiers_of("post")
        assert hi_tiers == {Tier.CLOUD, Tier.FOG}, policy
        assert result.tiers_of("m-416") == {Tier.FOG}, policy


def test_algorithm_4_reduces_reservations_evenly_down_to_half() -> None:
    # Cloud-only on the paper's use case: 12 cores of intensive work on an 8-core Cloud.
    result = place(default_workflow(), policy="cloud-only")
    shares = {p.task: p.share for p in result.placements.values() if p.tier is Tier.CLOUD}
    assert shares == {"detect-512": 0.75, "detect-416": 0.5, "draw": 0.75}
    assert result.used("cloud-0").cores == pytest.approx(8.0)
    assert "Algorithm 4" in result.message
    # Resize stays next to the cameras in the Cloud-only pipeline.
    assert result.tiers_of("resize") == {Tier.EDGE}


def test_fog_only_reports_what_the_fog_cannot_store() -> None:
    result = place(default_workflow(), policy="fog-only")
    assert result.status is SolveStatus.PARTIAL
    (draw,) = result.unplaced
    assert draw.task == "draw" and "storage 51200 MB" in draw.reason
    assert result.tiers_of("detect-512") == {Tier.FOG}


@pytest.mark.parametrize("policy", ["algorithms", "milp"])
def test_a_task_lands_on_its_predecessors_node_when_it_fits(policy: str) -> None:
    tasks = [
        task("pre", TaskType.PRE_PROCESSING, 1),
        task("m", TaskType.MODEL, 2, model="m", quality=416, after=["pre"]),
        task("post", TaskType.POST_PROCESSING, 1, after=["m"]),
    ]
    tiers = [tier(Tier.EDGE, 1, 1), tier(Tier.FOG, 3, 4), tier(Tier.CLOUD, 1, 1)]
    result = place(workflow_of(tasks, tiers), policy=policy)
    # Eq. (2): nothing to transfer between co-located services (Algorithm 3, step 8).
    assert result.node_of("post#0") == result.node_of("m#0")
    assert result.tiers_of("m") == {Tier.FOG} and result.tiers_of("pre") == {Tier.EDGE}


def test_a_task_that_cannot_get_even_half_is_unplaced_with_a_reason() -> None:
    tasks = [
        task("pre", TaskType.PRE_PROCESSING, 1),
        task("big", TaskType.STORAGE, 8, after=["pre"]),
    ]
    workflow = workflow_of(
        tasks, [tier(Tier.EDGE, 1, 8), tier(Tier.FOG, 1, 3), tier(Tier.CLOUD, 1, 3)]
    )
    for policy in ("algorithms", "milp"):
        result = place(workflow, policy=policy)
        assert result.node_of("big#0") is None, policy
        (unplaced,) = result.unplaced
        assert "cores 4" in unplaced.reason, (policy, unplaced.reason)
        assert result.node_of("pre#0") == "edge-0"


def test_adjustment_fails_when_other_reservations_are_already_at_their_floor() -> None:
    tasks = [
        task("a", TaskType.STORAGE, 4),
        task("b", TaskType.STORAGE, 4),
        task("c", TaskType.STORAGE, 4),
    ]
    workflow = workflow_of(tasks, [tier(Tier.CLOUD, 1, 5)])
    result = place(workflow, policy="algorithms")
    # a takes 4 cores, b gets the 1 left... below 2: Algorithm 4 cuts a by 1 to reach 2.
    assert result.placements["a#0"].share == pytest.approx(0.75)
    assert result.placements["b#0"].share == pytest.approx(0.5)
    # c would need 2 more cores; a can give 1 more, b none: c is unplaced, nothing below 50 %.
    assert result.node_of("c#0") is None
    assert "Algorithm 4" in result.unplaced[0].reason
    assert all(p.share >= 0.5 - 1e-9 for p in result.placements.values())


def test_ni_task_is_never_adjusted() -> None:
    tasks = [task("pre", TaskType.PRE_PROCESSING, 2), task("pre2", TaskType.PRE_PROCESSING, 2)]
    workflow = workflow_of(tasks, [tier(Tier.EDGE, 1, 3)])
    for policy in ("algorithms", "milp"):
        result = place(workflow, policy=policy)
        assert len(result.placements) == 1 and len(result.unplaced) == 1, policy
        assert all(p.share == 1.0 for p in result.placements.values())


def test_seeded_tie_breaking_is_reproducible() -> None:
    workflow = default_workflow()
    first = place(workflow, policy="algorithms", seed=7)
    again = place(workflow, policy="algorithms", seed=7)
    assert {k: p.node for k, p in first.placements.items()} == {
        k: p.node for k, p in again.placements.items()
    }


# --------------------------------------------------------------------------------------
# The MILP on random instances


@st.composite
def small_instances(draw: st.DrawFn) -> Workflow:
    """Up to 4 instances on 3-5 nodes, sized so that Algorithm 4's shares and unplaced
    instances both occur (node cores are of the order of one or two tasks)."""
    cores = st.sampled_from([1.0, 2.0, 3.0, 4.0])
    memory = st.sampled_from([0.0, 500.0, 2000.0])
    tasks = [
        task("pre", TaskType.PRE_PROCESSING, draw(cores), memory_mb=draw(memory)),
        task("m-lo", TaskType.MODEL, draw(cores), memory_mb=draw(memory), model="m",
             quality=320, after=["pre"]),
        task("m-hi", TaskType.MODEL, draw(cores), memory_mb=draw(memory), model="m",
             quality=512, after=["pre"], instances=draw(st.integers(1, 2))),
    ]  # fmt: skip
    if len(tasks) + tasks[-1].instances - 1 < 4 and draw(st.booleans()):
        post = TaskType.STORAGE if draw(st.booleans()) else TaskType.POST_PROCESSING
        tasks.append(task("post", post, draw(cores), after=["m-lo", "m-hi"]))
    node_cores = st.sampled_from([1.0, 2.0, 3.0, 5.0, 6.0])
    node_memory = st.sampled_from([1000.0, 3000.0, 8000.0])
    counts = draw(st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 2, 2)]))
    tiers = [
        tier(t, count, draw(node_cores), draw(node_memory))
        for t, count in zip((Tier.EDGE, Tier.FOG, Tier.CLOUD), counts, strict=True)
    ]
    return workflow_of(tasks, tiers, min_share=draw(st.sampled_from([0.5, 0.75])))


def brute_force(problem: PlacementProblem) -> float:
    """The lowest placement cost over every assignment (each instance: an allowed node or none).

    For a fixed assignment the best shares only depend on each node's overflow: the cores
    above its free cores must be taken away, which is possible iff the floors fit.
    """
    best = math.inf
    choices = [(None, *allowed) for allowed in problem.allowed]
    for combo in itertools.product(*choices):
        load: dict[int, list[int]] = {}
        for i, n in enumerate(combo):
            if n is not None:
                load.setdefault(n, []).append(i)
        reduction = 0.0
        feasible = True
        for n, members in load.items():
            free = problem.nodes[n].free
            needs = [problem.instances[i] for i in members]
            total = Resources()
            for inst in needs:
                total = total + inst.task.requires
            floors = sum(inst.floor * inst.cores for inst in needs)
            if not total.fits_except_cores(free) or floors > free.cores + 1e-9:
                feasible = False
                break
            reduction += max(0.0, total.cores - free.cores)
        if not feasible:
            continue
        assignment = {
            i: (n, problem.instances[i].cores) for i, n in enumerate(combo) if n is not None
        }
        cost, _ = evaluate(problem, assignment)
        best = min(best, cost + problem.weights.reduced_core * reduction)
    return best


def check_problem_capacities(
    problem: PlacementProblem, assignment: dict[int, tuple[int, float]]
) -> None:
    used = [Resources() for _ in problem.nodes]
    for i, (n, cores) in assignment.items():
        inst = problem.instances[i]
        assert inst.floor * inst.cores - 1e-6 <= cores <= inst.cores + 1e-6
        assert problem.nodes[n].tier in inst.tiers
        used[n] = used[n] + inst.task.requires.with_cores(cores)
    for n, node in enumerate(problem.nodes):
        assert used[n].fits_in(node.free, tolerance=1e-6), (node.node, used[n])


@PROPERTY
@given(small_instances())
def test_milp_equals_brute_force_and_respects_every_capacity(workflow: Workflow) -> None:
    problem = build_problem(workflow, workflow.nodes())
    status, assignment, _, _ = solve_milp(problem)
    assert status is SolveStatus.OPTIMAL
    check_problem_capacities(problem, dict(assignment))
    cost, _ = evaluate(problem, assignment)
    assert cost == pytest.approx(brute_force(problem), rel=1e-7, abs=1e-3)


@PROPERTY
@given(small_instances())
def test_algorithms_respect_capacities_and_never_beat_the_milp(workflow: Workflow) -> None:
    problem = build_problem(workflow, workflow.nodes())
    assignment, unplaced, _ = run_algorithms(problem)
    check_problem_capacities(problem, dict(assignment))
    assert len(assignment) + len(unplaced) == len(problem.instances)
    _, milp, _, _ = solve_milp(problem)
    assert evaluate(problem, milp)[0] <= evaluate(problem, assignment)[0] + 1e-6


@settings(PROPERTY, max_examples=15)
@given(
    st.lists(st.sampled_from([1.0, 2.0, 4.0]), min_size=2, max_size=5),
    st.lists(st.sampled_from([2.0, 4.0, 8.0]), min_size=1, max_size=3),
)
def test_milp_respects_capacity_on_larger_random_instances(
    task_cores: list[float], cloud_cores: list[float]
) -> None:
    tasks = [task("pre", TaskType.PRE_PROCESSING, 1, instances=3)] + [
        task(f"s{k}", TaskType.STORAGE, c, memory_mb=1000, after=["pre"])
        for k, c in enumerate(task_cores)
    ]
    nodes = [
        NodeMetrics(f"c{k}", Tier.CLOUD, cores=c, memory_mb=2500, used=Resources(0.5, 100))
        for k, c in enumerate(cloud_cores)
    ] + [NodeMetrics(f"e{k}", Tier.EDGE, cores=1, memory_mb=1000) for k in range(3)]
    workflow = workflow_of(tasks, [tier(Tier.EDGE, 3, 1), tier(Tier.CLOUD, 1, 8)])
    result = place(workflow, nodes, policy="milp")
    assert result.status is SolveStatus.OPTIMAL
    check_capacities(result, nodes)
    assert all(p.share >= 0.5 - 1e-6 for p in result.placements.values())
    assert len(result.placements) + len(result.unplaced) == 3 + len(task_cores)


def test_time_limit_and_solver_failure_are_statuses(monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = default_workflow()
    timed_out = place(workflow, policy="milp", time_limit_s=0.0)
    assert timed_out.status is SolveStatus.TIME_LIMIT
    assert len(timed_out.unplaced) == 14 and "Time limit" in timed_out.unplaced[0].reason

    def broken(self: highspy.Highs) -> highspy.HighsStatus:
        raise RuntimeError("boom")

    monkeypatch.setattr(highspy.Highs, "run", broken)
    failed = place(workflow, policy="milp")
    assert failed.status is SolveStatus.ERROR and "boom" in failed.message


# --------------------------------------------------------------------------------------
# The thesis's request x node program (seed 003)


def request_problem(
    rng: random.Random, requests: int, nodes: int, models: int, *, loaded: bool
) -> RequestProblem:
    specs = {
        f"m{k}": ModelSpec(f"m{k}", rng.choice([100.0, 300.0, 500.0]), rng.choice([1.0, 2.0]))
        for k in range(models)
    }
    edge = []
    for k in range(nodes):
        memory = rng.choice([300.0, 600.0, 900.0])
        # A consistent state: a model is loaded only where it fits.
        fits = specs["m0"].memory_mb <= memory
        resident = (
            (LoadedModel("m0", rng.random(), 1),) if loaded and fits and rng.random() < 0.5 else ()
        )
        edge.append(EdgeNode(f"n{k}", memory, rng.choice([1.0, 2.0, 3.0]), resident))
    reqs = tuple(Request(f"r{k}", rng.choice(list(specs))) for k in range(requests))
    tau = np.array([[rng.uniform(100, 500) for _ in edge] for _ in reqs])
    theta = np.array([[rng.uniform(100, 800) for _ in edge] for _ in reqs])
    return RequestProblem(reqs, specs, tuple(edge), tau, theta)


def brute_force_requests(problem: RequestProblem, mode: Mode) -> tuple[float, int]:
    """(latency, rejected) of the best plan over every dispatch, under ``mode``'s memory view."""
    view = memory_view(problem, mode)
    present = [
        {m.model for m in node.loaded} if mode is Mode.AVAILABLE else set()
        for node in problem.nodes
    ]
    penalty = reject_penalty_ms(problem)
    best = (math.inf, 0, 0)
    cost = problem.cost_ms
    options = [(None, *range(len(problem.nodes)))] * len(problem.requests)
    for combo in itertools.product(*options):
        ok = True
        for n, node in enumerate(problem.nodes):
            mine = [problem.requests[r].model for r, m in enumerate(combo) if m == n]
            compute = sum(problem.models[m].compute for m in mine)
            memory = sum(problem.models[m].memory_mb for m in set(mine) - present[n])
            if compute > node.compute + 1e-9 or memory > view[n] + 1e-9:
                ok = False
                break
        if not ok:
            continue
        latency = sum(cost[r, n] for r, n in enumerate(combo) if n is not None)
        rejected = sum(n is None for n in combo)
        total = latency + penalty * rejected
        if total < best[0]:
            best = (total, latency, rejected)
    return best[1], best[2]


def check_plan_capacity(problem: RequestProblem, plan: RequestPlan, mode: Mode) -> None:
    names = [node.name for node in problem.nodes]
    unloaded = set(plan.unload)
    for n, node in enumerate(problem.nodes):
        served = [r for r in problem.requests if plan.assignment.get(r.id) == names[n]]
        assert sum(problem.models[r.model].compute for r in served) <= node.compute + 1e-9
        kept = {m.model for m in node.loaded if (node.name, m.model) not in unloaded}
        resident = {r.model for r in served} | (kept if mode is Mode.AVAILABLE else set())
        assert sum(problem.models[m].memory_mb for m in resident) <= node.memory_mb + 1e-9


@settings(PROPERTY, max_examples=30)
@given(st.integers(0, 10_000), st.sampled_from([Mode.AVAILABLE, Mode.TOTAL]))
def test_request_program_equals_brute_force_and_respects_memory_and_compute(
    seed: int, mode: Mode
) -> None:
    rng = random.Random(seed)
    problem = request_problem(rng, rng.randint(1, 4), rng.randint(1, 3), 2, loaded=True)
    plan = solve_requests(problem, mode)
    assert plan.status is SolveStatus.OPTIMAL
    check_plan_capacity(problem, plan, mode)
    latency, rejected = brute_force_requests(problem, mode)
    evicted = mode is Mode.AVAILABLE and plan.unload
    if evicted:
        # Mode 1 evicted idle models to admit more requests than the first solve could.
        assert len(plan.rejected) <= rejected
    else:
        assert len(plan.rejected) == rejected
        assert plan.latency_ms == pytest.approx(latency, rel=1e-9)


def two_nodes(loaded_b: tuple[LoadedModel, ...] = ()) -> RequestProblem:
    models = {"x": ModelSpec("x", 800, 1), "y": ModelSpec("y", 600, 1)}
    nodes = (
        EdgeNode("a", 1000, 4, (LoadedModel("x", last_used_s=90.0, hits=5),)),
        EdgeNode("b", 1000, 4, loaded_b),
    )
    return RequestProblem(
        (Request("r", "y"),), models, nodes, np.array([[5.0, 20.0]]), np.array([[5.0, 30.0]])
    )


def test_mode_1_keeps_loaded_models_and_mode_2_follows_the_solver() -> None:
    problem = two_nodes()
    one = solve_requests(problem, Mode.AVAILABLE)
    two = solve_requests(problem, Mode.TOTAL)
    # Mode 1: node a has only 200 MB available (x is loaded): y goes to the slower b.
    assert dict(one.assignment) == {"r": "b"} and one.latency_ms == 50.0
    assert one.load == (("b", "y"),) and one.unload == ()
    # Mode 2: total memory; the solver puts y on a and x, which it does not use, goes.
    assert dict(two.assignment) == {"r": "a"} and two.latency_ms == 10.0
    assert two.load == (("a", "y"),) and two.unload == (("a", "x"),)


def test_mode_1_evicts_the_least_recently_used_model_to_make_room() -> None:
    problem = two_nodes((LoadedModel("x", last_used_s=10.0, hits=50),))
    plan = solve_requests(problem, Mode.AVAILABLE)
    # Both nodes are full of x; b's copy was used longest ago (despite more hits): it goes.
    assert plan.unload == (("b", "x"),)
    assert dict(plan.assignment) == {"r": "b"} and plan.load == (("b", "y"),)
    assert "evicted x from b" in plan.message


def test_mode_1_eviction_breaks_recency_ties_by_frequency() -> None:
    problem = dataclasses.replace(
        two_nodes((LoadedModel("x", last_used_s=90.0, hits=2),)),
    )
    plan = solve_requests(problem, Mode.AVAILABLE)
    assert plan.unload == (("b", "x"),)  # same recency as a's copy, fewer hits


def test_mode_1_unloads_idle_models_past_the_threshold() -> None:
    problem = two_nodes((LoadedModel("y", last_used_s=0.0, hits=1),))
    plan = solve_requests(problem, Mode.AVAILABLE, evict_idle_s=50.0, now_s=100.0)
    # y is already on b: served there without loading; x on a idles for 10 s only: kept.
    assert dict(plan.assignment) == {"r": "b"} and plan.load == () and plan.unload == ()
    stale = solve_requests(problem, Mode.AVAILABLE, evict_idle_s=5.0, now_s=100.0)
    assert stale.unload == (("a", "x"),)
    with pytest.raises(PlacementError, match="now_s"):
        solve_requests(problem, Mode.AVAILABLE, evict_idle_s=5.0)


def test_unknown_models_and_unservable_requests_are_rejected_not_raised() -> None:
    models = {"x": ModelSpec("x", 500, 1)}
    nodes = (EdgeNode("a", 400, 1),)
    problem = RequestProblem(
        (Request("r1", "x"), Request("r2", "nope")), models, nodes, np.ones((2, 1)), np.ones((2, 1))
    )
    plan = solve_requests(problem, Mode.TOTAL)
    assert plan.assignment == {}
    reasons = {u.instance: u.reason for u in plan.rejected}
    assert "unknown model" in reasons["r2"] and "500 MB" in reasons["r1"]


def test_iterative_search_sums_per_node_as_the_thesis_says() -> None:
    # Seed 003 §6.1: "We instead summed each node's latency and execution time on each node
    # to obtain a list of values, one per node. We then took the minimum value".
    models = {"x": ModelSpec("x", 100, 1)}
    nodes = (EdgeNode("a", 1000, 4), EdgeNode("b", 1000, 4))
    requests = (Request("r1", "x"), Request("r2", "x"))
    tau = np.array([[1.0, 5.0], [9.0, 2.0]])  # r1 is best on a, r2 on b; a sums 10, b 7
    problem = RequestProblem(requests, models, nodes, tau, np.zeros((2, 2)))
    plan = iterative_search(problem, respect_capacity=False)
    assert dict(plan.assignment) == {"r1": "b", "r2": "b"}
    assert plan.latency_ms == 7.0 == min(tau.sum(axis=0))  # not 3.0, the per-request best
    assert solve_requests(problem).latency_ms == 3.0


def test_iterative_search_fills_nodes_in_order_of_their_sum_or_ignores_capacity() -> None:
    models = {"x": ModelSpec("x", 100, 1)}
    nodes = (EdgeNode("slow", 1000, 4), EdgeNode("fast", 1000, 1))
    requests = (Request("r1", "x"), Request("r2", "x"))
    tau = np.array([[10.0, 1.0], [10.0, 1.0]])
    problem = RequestProblem(requests, models, nodes, tau, np.zeros((2, 2)))
    literal = iterative_search(problem, respect_capacity=False)
    assert dict(literal.assignment) == {"r1": "fast", "r2": "fast"}
    assert literal.overloaded == ("fast",) and "capacity ignored" in literal.message
    careful = iterative_search(problem)
    assert dict(careful.assignment) == {"r1": "fast", "r2": "slow"} and careful.overloaded == ()
    full = RequestProblem(requests, models, (nodes[1],), tau[:, 1:], np.zeros((2, 1)))
    assert [u.instance for u in iterative_search(full).rejected] == ["r2"]


def test_solver_is_never_worse_than_iterative_search() -> None:
    rng = random.Random(3)
    for _ in range(10):
        problem = request_problem(rng, 8, 4, 3, loaded=False)
        solver, greedy = solve_requests(problem, Mode.TOTAL), iterative_search(problem, Mode.TOTAL)
        if len(solver.rejected) == len(greedy.rejected):
            assert solver.latency_ms <= greedy.latency_ms + 1e-9
        else:
            assert len(solver.rejected) < len(greedy.rejected)


def test_request_problem_rejects_malformed_matrices() -> None:
    with pytest.raises(PlacementError, match=r"tau_ms: expected shape \(1, 1\)"):
        RequestProblem(
            (Request("r", "x"),),
            {"x": ModelSpec("x", 1)},
            (EdgeNode("a", 1, 1),),
            np.ones((2, 1)),
            np.ones((1, 1)),
        )


# --------------------------------------------------------------------------------------
# AVEC's policies (seed 004)


def avec_nodes() -> list[NodeMetrics]:
    return [
        NodeMetrics(
            "near-small",
            Tier.EDGE,
            4,
            8000,
            accelerator="cuda",
            accelerator_memory_mb=4000,
            accelerator_cores=128,
            latency_ms=2,
            bandwidth_mbps=1000,
        ),
        NodeMetrics(
            "fog-mid",
            Tier.FOG,
            8,
            16000,
            accelerator="cuda",
            accelerator_memory_mb=6000,
            accelerator_cores=1920,
            latency_ms=5,
            bandwidth_mbps=300,
        ),
        NodeMetrics("no-gpu", Tier.FOG, 16, 64000, latency_ms=4, bandwidth_mbps=2000),
        NodeMetrics(
            "far-big",
            Tier.CLOUD,
            8,
            32000,
            accelerator="cuda",
            accelerator_memory_mb=8000,
            accelerator_cores=2560,
            latency_ms=30,
            bandwidth_mbps=100,
        ),
    ]


GPU_JOB = Workload(Resources(1, 1000, 2000), accelerator="cuda")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (AvecPolicy.FIFO, "near-small"),
        (AvecPolicy.BEST_BANDWIDTH, "near-small"),  # no-gpu has more, but fails the platform check
        (AvecPolicy.BEST_LATENCY, "near-small"),
        (AvecPolicy.BEST_COMPUTE, "far-big"),
        (AvecPolicy.SPREAD, "far-big"),
    ],
)
def test_each_avec_policy_picks_by_its_metric(policy: AvecPolicy, expected: str) -> None:
    nodes = avec_nodes()
    chosen = select_node(policy, nodes, GPU_JOB)
    assert chosen is not None and nodes[chosen].node == expected


def test_avec_checks_skip_nodes_without_room_or_platform() -> None:
    nodes = avec_nodes()
    big = Workload(Resources(1, 1000, 5000), accelerator="cuda")
    assert nodes[select_node(AvecPolicy.FIFO, nodes, big) or 0].node == "fog-mid"
    assert select_node(AvecPolicy.FIFO, nodes, Workload(Resources(1, 1000, 9000), "cuda")) is None
    cpu = Workload(Resources(12, 1000))
    assert nodes[select_node(AvecPolicy.BEST_LATENCY, nodes, cpu) or 0].node == "no-gpu"


def test_best_compute_on_cpu_nodes_takes_the_most_free_cores() -> None:
    nodes = [
        NodeMetrics("a", Tier.FOG, 8, 1000, used=Resources(6, 0)),
        NodeMetrics("b", Tier.FOG, 4, 1000),
        NodeMetrics("c", Tier.FOG, 6, 1000, used=Resources(3, 0)),
    ]
    chosen = select_node(AvecPolicy.BEST_COMPUTE, nodes, Workload(Resources(1, 100)))
    assert chosen == 1


def test_random_policy_is_seeded_and_only_returns_passing_nodes() -> None:
    nodes = [NodeMetrics(f"dummy{k}", Tier.FOG, 4, 1000) for k in range(20)] + avec_nodes()
    picks = [
        select_node(AvecPolicy.RANDOM, nodes, GPU_JOB, rng=random.Random(s)) for s in range(30)
    ]
    assert all(p is not None and nodes[p].accelerator == "cuda" for p in picks)
    assert len(set(picks)) > 1
    again = [
        select_node(AvecPolicy.RANDOM, nodes, GPU_JOB, rng=random.Random(s)) for s in range(30)
    ]
    assert picks == again


def test_spread_balances_identical_workloads_over_identical_nodes() -> None:
    tasks = [task("w", TaskType.POST_PROCESSING, 1, memory_mb=1000, instances=8)]
    workflow = workflow_of(tasks, [tier(Tier.FOG, 4, 4, 8000)])
    result = place(workflow, policy="spread")
    assert sorted(len(result.on_node(f"fog-{k}")) for k in range(4)) == [2, 2, 2, 2]
    fifo = place(workflow, policy="fifo")
    assert sorted(len(fifo.on_node(f"fog-{k}")) for k in range(4)) == [0, 0, 4, 4]


def test_gpu_aware_weights_follow_the_application_class() -> None:
    nodes = avec_nodes()
    assert AVEC_WEIGHTS[WeightClass.HEAVY] == (1, 1, 10, 10)
    assert AVEC_WEIGHTS[WeightClass.MIDDLE] == (5, 5, 5, 5)
    assert AVEC_WEIGHTS[WeightClass.LIGHT] == (10, 10, 1, 1)
    heavy = select_node(
        AvecPolicy.GPU_AWARE, nodes, dataclasses.replace(GPU_JOB, weight=WeightClass.HEAVY)
    )
    light = select_node(
        AvecPolicy.GPU_AWARE, nodes, dataclasses.replace(GPU_JOB, weight=WeightClass.LIGHT)
    )
    # Heavy: GPU memory and cores dominate -> the big remote GPU; light: latency and
    # bandwidth dominate -> the nearby one.
    assert nodes[heavy or 0].node == "far-big" and nodes[light or 0].node == "near-small"


def test_gpu_aware_ties_are_broken_by_spread() -> None:
    nodes = [
        NodeMetrics(
            "a",
            Tier.FOG,
            4,
            1000,
            accelerator="cuda",
            accelerator_memory_mb=4000,
            accelerator_cores=100,
            latency_ms=1,
            bandwidth_mbps=10,
            used=Resources(0, 0, 3000),
        ),
        NodeMetrics(
            "b",
            Tier.FOG,
            4,
            1000,
            accelerator="cuda",
            accelerator_memory_mb=4000,
            accelerator_cores=100,
            latency_ms=1,
            bandwidth_mbps=10,
            used=Resources(0, 0, 1000),
        ),
    ]
    job = Workload(Resources(1, 100, 500), accelerator="cuda", weight=WeightClass.LIGHT)
    # Same latency, bandwidth and cores; b has more free GPU memory: higher sum anyway.
    assert select_node(AvecPolicy.GPU_AWARE, nodes, job) == 1
    equal = [dataclasses.replace(n, used=Resources()) for n in nodes]
    assert select_node(AvecPolicy.GPU_AWARE, equal, job) == 0


def test_avec_migration_model() -> None:
    assert execution_time_with_migrations_s(3, 2.3, 10.0) == pytest.approx(16.9)
    assert execution_time_with_migrations_s(0, 3.8, 10.0) == 10.0


# --------------------------------------------------------------------------------------
# One entry point for every policy


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_runs_on_the_default_workflow_within_capacity(policy: str) -> None:
    workflow = default_workflow()
    result = place(workflow, policy=policy, seed=1)
    # auto resolves to the seed's algorithms: the paper's continuum has Fog and Cloud nodes
    assert result.policy == ("algorithms" if policy == AUTO else policy)
    assert result.status in set(SolveStatus) - {
        SolveStatus.ERROR,
        SolveStatus.INFEASIBLE,
    }
    assert len(result.placements) + len(result.unplaced) == 14
    check_capacities(result, workflow.nodes())
    assert result.solve_time_s > 0 and math.isfinite(result.cost)
    assert all(u.reason for u in result.unplaced)


def test_cost_ranks_the_papers_placement_above_the_naive_ones() -> None:
    workflow = default_workflow()
    best = place(workflow, policy="milp").cost
    for policy in ("fifo", "best-compute", "cloud-only", "requests"):
        assert place(workflow, policy=policy).cost > best, policy


def test_unknown_policy_and_bad_options_raise_placement_errors() -> None:
    with pytest.raises(PlacementError, match="unknown placement policy 'best'"):
        place(default_workflow(), policy="best")
    with pytest.raises(PlacementError, match="tiers"):
        place(default_workflow(), policy="milp", tiers=["moon"])
    with pytest.raises(PlacementError, match="weight"):
        place(default_workflow(), policy="gpu-aware", weight="feather")
    with pytest.raises(PlacementError, match="no nodes"):
        place(default_workflow(), [], policy="milp")


def test_placements_cannot_be_edited_after_the_fact() -> None:
    result = place(default_workflow(), policy="algorithms")
    with pytest.raises(TypeError):
        result.placements["x"] = result.placements["draw#0"]  # type: ignore[index]


def test_used_resources_of_nodes_are_respected() -> None:
    workflow = default_workflow()
    nodes = [
        dataclasses.replace(n, used=Resources(4, 0)) if n.node == "cloud-0" else n
        for n in workflow.nodes()
    ]
    for policy in ("algorithms", "milp"):
        result = place(workflow, nodes, policy=policy)
        check_capacities(result, nodes)
        # Only 4 Cloud cores left for 8 of HI work: both at 50 % (draw's storage pins it).
        assert result.placements["draw#0"].node == "cloud-0", policy
        assert result.used("cloud-0").cores == pytest.approx(4.0), policy


def test_requests_policy_sees_free_memory_in_mode_1_and_total_memory_in_mode_2() -> None:
    # Seed 003 §6.2.1: "the only difference between the modes from the solver's perspective
    # is the use of each node's total amount of RAM as opposed to just the amount of RAM
    # available".
    workflow = workflow_of(
        [task("resize", TaskType.PRE_PROCESSING, 1, memory_mb=500)],
        [tier(Tier.EDGE, 1, 4, 1000), tier(Tier.CLOUD, 1, 4, 1000)],
    )
    nodes = [
        dataclasses.replace(n, used=Resources(0, 800)) if n.tier is Tier.EDGE else n
        for n in workflow.nodes()
    ]
    one = place(workflow, nodes, policy="requests", mode=Mode.AVAILABLE)
    two = place(workflow, nodes, policy="requests", mode=Mode.TOTAL)
    assert one.placements["resize#0"].tier is Tier.CLOUD  # 200 MB free on the edge
    assert two.placements["resize#0"].tier is Tier.EDGE  # 1000 MB in total there
