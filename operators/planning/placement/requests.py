"""The thesis's joint model provisioning and request dispatch program (seed 003, ch. 3-6).

Program (§3.2), solved exactly as a MILP with HiGHS (the thesis used Ipopt through AMPL)::

    min  sum_r sum_n I[r,n] * (tau[r,n] + theta[r,n])  +  P * sum_r z[r]
    s.t. sum_n I[r,n] + z[r] = 1                        each request on one node
         sum_r I[r,n] * c[m(r)] <= C[n]                 computing constraint
         sum_m y[m,n] * mem[m]  <= M[n]                 memory constraint
         I[r,n] <= y[m(r), n]                           a request needs its model loaded

Two deliberate changes: memory is counted per model loaded on a node (``y``), since one
deployed model serves every request routed to it (the thesis's ``sum_r I*m_r`` would count a
shared model once per request); and a request may be rejected (``z``, penalty ``P`` above
any achievable latency) as §4.5 prescribes for requests that cannot be served, so the program
is always feasible. Requests for unknown models are rejected without solving (§4.5).

Back-end modes (§4.3, §5.3):

- **Mode 1** (latency first): the solver sees the *available* memory of each node; models
  already loaded count as present and cost nothing. It provisions what the solver places and
  deletes nothing on the solver's word. Deletion goes by how recently and how often a model
  was requested: when requests would be rejected, the least recently used loaded model that
  the current solution does not use (ties: least frequently used) is evicted where that can
  make room, and the program is solved again; optionally models idle longer than a
  threshold are unloaded (the thesis's command-line deletion thresholds).
- **Mode 2** (stability first): the solver sees each node's *total* memory and the back-end
  follows it strictly: every model the solution does not use is unloaded, every model it uses
  and is missing is provisioned.

The iterative search baseline of §6.1 sums ``tau + theta`` over all requests per node and
takes the node with the least sum (:func:`iterative_search`): every request on that one node
as the thesis does (``respect_capacity=False``, overloads reported), or, by default, requests
filled onto the nodes in the order of that sum while each has room.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from tierflow.operators.planning import highs
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.placement.result import PlacementError, Unplaced


class Mode(enum.IntEnum):
    """Back-end operating mode of the thesis (§4.3)."""

    AVAILABLE = 1
    TOTAL = 2


@dataclass(frozen=True)
class ModelSpec:
    """A servable model: memory when loaded (MB) and compute per request (cores)."""

    name: str
    memory_mb: float
    compute: float = 1.0


@dataclass(frozen=True)
class LoadedModel:
    """A model already loaded on a node, with the front-end's request statistics.

    Attributes:
        model: model name.
        last_used_s: when it was last requested, s (any common clock).
        hits: how many requests it served.
    """

    model: str
    last_used_s: float = 0.0
    hits: int = 0


@dataclass(frozen=True)
class EdgeNode:
    """An edge node: total memory (MB), available compute (cores), loaded models."""

    name: str
    memory_mb: float
    compute: float
    loaded: tuple[LoadedModel, ...] = ()


@dataclass(frozen=True)
class Request:
    """An inference request for ``model``."""

    id: str
    model: str


@dataclass(frozen=True)
class RequestProblem:
    """Requests, models, nodes and the time matrices of §3.2.

    Attributes:
        requests: the requests.
        models: model name -> spec.
        nodes: the nodes.
        tau_ms: (requests, nodes) round-trip time client <-> node, ms; inf forbids a pair.
        theta_ms: (requests, nodes) execution time, ms.
    """

    requests: tuple[Request, ...]
    models: Mapping[str, ModelSpec]
    nodes: tuple[EdgeNode, ...]
    tau_ms: np.ndarray
    theta_ms: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.requests), len(self.nodes))
        for name in ("tau_ms", "theta_ms"):
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.shape != shape:
                msg = f"{name}: expected shape {shape} (requests, nodes), got {array.shape}"
                raise PlacementError(msg)
            if np.isnan(array).any() or (array < 0).any():
                msg = f"{name}: times must be >= 0 (inf forbids a pair), got {array.min()}"
                raise PlacementError(msg)
            object.__setattr__(self, name, array)
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            msg = f"nodes: duplicate names in {names}"
            raise PlacementError(msg)
        for node in self.nodes:
            for loaded in node.loaded:
                if loaded.model not in self.models:
                    msg = f"nodes[{node.name}].loaded: unknown model {loaded.model!r}"
                    raise PlacementError(msg)

    @property
    def cost_ms(self) -> np.ndarray:
        """tau + theta per (request, node), ms."""
        return np.asarray(self.tau_ms + self.theta_ms)


@dataclass(frozen=True)
class RequestPlan:
    """Dispatch and provisioning decided for a :class:`RequestProblem`.

    Attributes:
        policy: ``mode-1``, ``mode-2`` or ``iterative``.
        status: solver or heuristic status.
        assignment: request id -> node name.
        rejected: requests not served, with reasons.
        load: (node, model) pairs to provision.
        unload: (node, model) pairs to delete.
        latency_ms: U of §3.2 over the served requests, ms.
        solve_time_s: wall time including re-solves after evictions, s.
        overloaded: nodes whose memory or compute the plan exceeds (iterative search
            without capacity checks only).
        message: remarks (evictions, solver status).
    """

    policy: str
    status: SolveStatus
    assignment: Mapping[str, str]
    rejected: tuple[Unplaced, ...] = ()
    load: tuple[tuple[str, str], ...] = ()
    unload: tuple[tuple[str, str], ...] = ()
    latency_ms: float = 0.0
    solve_time_s: float = 0.0
    overloaded: tuple[str, ...] = ()
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignment", MappingProxyType(dict(self.assignment)))


def memory_view(problem: RequestProblem, mode: Mode) -> list[float]:
    """Memory the solver may fill per node, MB: available (Mode 1) or total (Mode 2)."""
    if mode is Mode.TOTAL:
        return [node.memory_mb for node in problem.nodes]
    return [
        max(0.0, node.memory_mb - sum(problem.models[m.model].memory_mb for m in node.loaded))
        for node in problem.nodes
    ]


def reject_penalty_ms(problem: RequestProblem) -> float:
    """A rejection penalty above any achievable total latency (serve first, then be fast)."""
    cost = problem.cost_ms
    finite = np.where(np.isfinite(cost), cost, 0.0)
    return 1.0 + float(finite.max(axis=1, initial=0.0).sum())


def solve_requests(
    problem: RequestProblem,
    mode: Mode = Mode.AVAILABLE,
    *,
    time_limit_s: float = 10.0,
    evict_idle_s: float | None = None,
    now_s: float | None = None,
) -> RequestPlan:
    """Solve the request x node program in the given back-end mode.

    Args:
        problem: requests, models, nodes, times.
        mode: Mode 1 (available memory, evict by recency/frequency) or Mode 2 (total
            memory, follow the solver strictly).
        time_limit_s: HiGHS time limit per solve, s.
        evict_idle_s: Mode 1 only: also unload models the plan does not use and that were
            last requested more than this long before ``now_s``.
        now_s: the clock ``last_used_s`` is measured on; needed with ``evict_idle_s``.
    """
    if evict_idle_s is not None and now_s is None:
        msg = "evict_idle_s needs now_s (the clock of last_used_s)"
        raise PlacementError(msg)
    started = time.perf_counter()
    mode = Mode(mode)
    known = [r for r, req in enumerate(problem.requests) if req.model in problem.models]
    loaded = [
        {m.model for m in node.loaded} if mode is Mode.AVAILABLE else set()
        for node in problem.nodes
    ]
    memory = memory_view(problem, mode)
    evicted: list[tuple[int, str]] = []
    while True:
        status, assign, message = _solve_once(problem, known, loaded, memory, time_limit_s)
        missing = [r for r in known if r not in assign]
        if mode is Mode.TOTAL or not missing or status is not SolveStatus.OPTIMAL:
            break
        victim = _victim(problem, loaded, memory, assign, missing)
        if victim is None:
            break
        n, model = victim
        loaded[n].discard(model)
        memory[n] += problem.models[model].memory_mb
        evicted.append(victim)
    used = {(n, problem.requests[r].model) for r, n in assign.items()}
    before = {(n, m.model) for n, node in enumerate(problem.nodes) for m in node.loaded}
    if mode is Mode.TOTAL:
        # Follow the solver strictly: whatever it does not use goes.
        unload = sorted(before - used)
    else:
        unload = list(evicted)
        if evict_idle_s is not None and now_s is not None:
            unload += _idle(problem, used | set(evicted), evict_idle_s, now_s)
    names = [node.name for node in problem.nodes]
    notes = [message] + [f"evicted {m} from {names[n]} (least recently used)" for n, m in evicted]
    return _plan(
        problem,
        f"mode-{int(mode)}",
        status,
        assign,
        [(names[n], m) for n, m in sorted(used - before)],
        [(names[n], m) for n, m in unload],
        time.perf_counter() - started,
        "; ".join(note for note in notes if note),
    )


def _solve_once(
    problem: RequestProblem,
    known: list[int],
    loaded: list[set[str]],
    memory: list[float],
    time_limit_s: float,
) -> tuple[SolveStatus, dict[int, int], str]:
    """One solve; models in ``loaded[n]`` are present on n and use none of ``memory[n]``."""
    cost = problem.cost_ms
    pairs = [(r, n) for r in known for n in range(len(problem.nodes)) if math.isfinite(cost[r, n])]
    if not pairs:
        return SolveStatus.OPTIMAL, {}, ""
    h = highs.new_model()
    x = highs.columns(h.addBinaries(len(pairs)))
    z = highs.columns(h.addVariables(len(known), lb=0.0, ub=1.0))
    needed = sorted(
        {
            (problem.requests[r].model, n)
            for r, n in pairs
            if problem.requests[r].model not in loaded[n]
        }
    )
    y = highs.columns(h.addBinaries(len(needed))) if needed else np.zeros(0, dtype=np.int32)
    y_of = {key: int(y[k]) for k, key in enumerate(needed)}
    rows = highs.Rows()
    by_request: dict[int, list[int]] = {}
    by_node: dict[int, list[int]] = {}
    for k, (r, n) in enumerate(pairs):
        by_request.setdefault(r, []).append(k)
        by_node.setdefault(n, []).append(k)
        model = problem.requests[r].model
        if (model, n) in y_of:
            rows.add([x[k], y_of[(model, n)]], [1.0, -1.0], upper=0.0)
    for j, r in enumerate(known):
        ks = by_request.get(r, [])
        rows.add([*x[ks], z[j]], [1.0] * (len(ks) + 1), 1.0, 1.0)
    for n, ks in by_node.items():
        demand = [problem.models[problem.requests[pairs[k][0]].model].compute for k in ks]
        rows.add(x[ks], demand, upper=problem.nodes[n].compute)
        cols = [y_of[(m, node)] for (m, node) in needed if node == n]
        mems = [problem.models[m].memory_mb for (m, node) in needed if node == n]
        if cols:
            rows.add(cols, mems, upper=memory[n])
    rows.flush(h)
    costs = np.zeros(h.getNumCol(), dtype=np.float64)
    costs[x] = [cost[r, n] for r, n in pairs]
    costs[z] = reject_penalty_ms(problem)
    highs.set_costs(h, costs)
    solved = highs.solve(h, time_limit_s=time_limit_s)
    assign: dict[int, int] = {}
    if solved.values is not None:
        for k, (r, n) in enumerate(pairs):
            if solved.values[x[k]] > 0.5:
                assign[r] = n
    return solved.status, assign, "" if solved.status is SolveStatus.OPTIMAL else solved.message


def _victim(
    problem: RequestProblem,
    loaded: list[set[str]],
    memory: list[float],
    assign: dict[int, int],
    missing: list[int],
) -> tuple[int, str] | None:
    """Mode 1's victim: the least recently (then least frequently) used idle loaded model.

    Idle: loaded and unused by the current solution. Only nodes where evicting could admit
    a rejected request are considered.
    """
    in_use = {(n, problem.requests[r].model) for r, n in assign.items()}
    busy = [0.0] * len(problem.nodes)
    for r, n in assign.items():
        busy[n] += problem.models[problem.requests[r].model].compute
    candidates: list[tuple[float, int, int, str]] = []
    for n, node in enumerate(problem.nodes):
        idle = [m for m in node.loaded if m.model in loaded[n] and (n, m.model) not in in_use]
        room = memory[n] + sum(problem.models[m.model].memory_mb for m in idle)
        # Evicting only helps where a rejected request would then fit, compute included.
        helps = any(
            math.isfinite(problem.cost_ms[r, n])
            and problem.models[problem.requests[r].model].memory_mb <= room
            and problem.models[problem.requests[r].model].compute <= node.compute - busy[n]
            for r in missing
        )
        if helps:
            candidates.extend((m.last_used_s, m.hits, n, m.model) for m in idle)
    if not candidates:
        return None
    _, _, n, model = min(candidates)
    return n, model


def _idle(
    problem: RequestProblem, keep: set[tuple[int, str]], evict_idle_s: float, now_s: float
) -> list[tuple[int, str]]:
    """Loaded models outside ``keep`` last requested more than ``evict_idle_s`` ago."""
    return [
        (n, m.model)
        for n, node in enumerate(problem.nodes)
        for m in node.loaded
        if now_s - m.last_used_s > evict_idle_s and (n, m.model) not in keep
    ]


def _plan(
    problem: RequestProblem,
    policy: str,
    status: SolveStatus,
    assign: Mapping[int, int],
    load: list[tuple[str, str]],
    unload: list[tuple[str, str]],
    seconds: float,
    message: str,
    overloaded: tuple[str, ...] = (),
) -> RequestPlan:
    cost = problem.cost_ms
    solved = status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.PARTIAL)
    rejected = tuple(
        Unplaced(
            req.id,
            req.model,
            _rejection(problem, r)
            if solved or req.model not in problem.models
            else f"the solver found no plan for it ({message or status.value})",
        )
        for r, req in enumerate(problem.requests)
        if r not in assign
    )
    return RequestPlan(
        policy=policy,
        status=status,
        assignment={problem.requests[r].id: problem.nodes[n].name for r, n in assign.items()},
        rejected=rejected,
        load=tuple(load),
        unload=tuple(unload),
        latency_ms=float(sum(cost[r, n] for r, n in assign.items())),
        solve_time_s=seconds,
        overloaded=overloaded,
        message=message,
    )


def _rejection(problem: RequestProblem, r: int) -> str:
    request = problem.requests[r]
    if request.model not in problem.models:
        return f"unknown model {request.model!r} (rejected, §4.5)"
    if not np.isfinite(problem.cost_ms[r]).any():
        return "no node can serve it"
    spec = problem.models[request.model]
    return (
        f"no node has {spec.memory_mb:g} MB memory and {spec.compute:g} compute left for "
        f"{request.model} without preempting other requests (rejected, §4.5)"
    )


def iterative_search(
    problem: RequestProblem, mode: Mode = Mode.AVAILABLE, *, respect_capacity: bool = True
) -> RequestPlan:
    """The thesis's iterative search: the one node with the least summed tau + theta.

    Seed 003, §6.1: "We instead summed each node's latency and execution time on each node
    to obtain a list of values, one per node. We then took the minimum value and used it as
    the objective value for the iterative search solution." So the sum runs over the
    requests, per node (``S_n = sum_r tau[r, n] + theta[r, n]``, ms), and the baseline's
    objective is ``min_n S_n``: every request on the single best node, not each request on
    its own best node (that per-request greedy would be a far stronger baseline than the
    thesis's Fig. 6.1 shows). Nodes are ranked by (requests they cannot serve, ``S_n``) over
    the requests for known models, so a node with forbidden pairs (inf) ranks last.

    What happens when the best node lacks room, which the thesis does not say ("The iterative
    search solution does not consider any extraneous factors such as memory capacity or node
    hardware constraints", §6.1): with ``respect_capacity`` (the default) requests are taken
    in order and each goes to the first node in that ranking with compute and, when its
    model is not there yet, memory left, so the best node fills first, then the next; a
    request no node has room for is rejected. Without it every request goes to the best
    node (a request that node cannot serve to the next that can), as in the thesis, and the
    nodes it overloads are reported.

    Args:
        problem: requests, models, nodes, times.
        mode: memory view (available or total) and unloading rule, as for the program.
        respect_capacity: fill nodes in ranking order within their memory and compute;
            False reproduces the thesis's baseline, which ignores both.
    """
    started = time.perf_counter()
    mode = Mode(mode)
    cost = problem.cost_ms
    memory = memory_view(problem, mode)
    compute = [node.compute for node in problem.nodes]
    present = [
        {m.model for m in node.loaded} if mode is Mode.AVAILABLE else set()
        for node in problem.nodes
    ]
    known = [r for r, req in enumerate(problem.requests) if req.model in problem.models]
    servable = np.isfinite(cost[known]) if known else np.ones((0, len(problem.nodes)), bool)
    summed = np.where(servable, cost[known], 0.0).sum(axis=0)
    unserved = (~servable).sum(axis=0)
    ranking = sorted(range(len(problem.nodes)), key=lambda n: (int(unserved[n]), summed[n], n))
    assign: dict[int, int] = {}
    for r in known:
        request = problem.requests[r]
        spec = problem.models[request.model]
        for n in ranking:
            if not math.isfinite(cost[r, n]):
                continue
            new = request.model not in present[n]
            fits = compute[n] >= spec.compute - 1e-9 and (
                not new or memory[n] >= spec.memory_mb - 1e-9
            )
            if respect_capacity and not fits:
                continue
            assign[r] = n
            compute[n] -= spec.compute
            if new:
                memory[n] -= spec.memory_mb
                present[n].add(request.model)
            break
    overloaded = tuple(
        node.name for n, node in enumerate(problem.nodes) if compute[n] < -1e-9 or memory[n] < -1e-9
    )
    used = {(n, problem.requests[r].model) for r, n in assign.items()}
    before = {(n, m.model) for n, node in enumerate(problem.nodes) for m in node.loaded}
    unload = sorted(before - used) if mode is Mode.TOTAL else []
    status = SolveStatus.FEASIBLE if len(assign) == len(problem.requests) else SolveStatus.PARTIAL
    names = [node.name for node in problem.nodes]
    order = ", ".join(names[n] for n in ranking[:3])
    note = f"nodes by summed tau+theta: {order}{', ...' if len(ranking) > 3 else ''}"
    if not respect_capacity:
        note += "; capacity ignored, as in the thesis"
    return _plan(
        problem,
        "iterative",
        status,
        assign,
        [(names[n], m) for n, m in sorted(used - before)],
        [(names[n], m) for n, m in unload],
        time.perf_counter() - started,
        note,
        overloaded,
    )
