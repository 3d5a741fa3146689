"""Seed 003's simulations (the thesis, ch. 6): Fig. 6.1, Fig. 6.2 and Tables 6.2-6.3.

Each point draws ``repeats`` problems with Table 6.1's values (:mod:`.generators`) and runs
the thesis's request x node program (§3.2, :func:`solve_requests`) in Mode 1 and Mode 2 and
the iterative search (§6.1, :func:`iterative_search`). What is compared with the thesis:

* Fig. 6.1 / 6.2: "To measure the solution's latency, we recorded the objective value
  reported by the solver" (§6.1), i.e. ``U = sum_r tau + theta`` over the served requests,
  in seconds (Table 6.1's times are in seconds; 7.6445 at 20 requests is 0.38 s a
  request). We report that sum and, beside it, the mean per served request. The
  iterative search is the thesis's (every request on the node with the least summed
  ``tau + theta``, capacity ignored); ``iterative-fill`` is ours, which fills nodes in the
  same order within their memory and compute. Sweeps follow §6.1's "Each simulation varies
  one parameter while holding the others constant": one problem of the largest size is
  drawn per repeat and the smaller points are its first requests (or nodes).
* Tables 6.2 / 6.3: the wall time of one solve including Mode 1's re-solves after
  evictions, ms ("collected using the Python *time* module", §6.2.1), median over repeats,
  after one warm-up solve. The thesis solved with Ipopt through AMPL; we solve the MILP
  exactly with HiGHS.

The seed's values are those its text states (§6.1.1 gives Fig. 6.1 and 6.2 at their end
points and as averages over the sweep; its figures are not in the seed text) and Tables
6.2-6.3 in full.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierflow.operators import reporting
from tierflow.operators.planning.placement import (
    Mode,
    RequestPlan,
    RequestProblem,
    iterative_search,
    solve_requests,
)
from tierflow.operators.planning.simulations.generators import subproblem, thesis_problem
from tierflow.operators.planning.simulations.output import Progress, ratio
from tierflow.operators.planning.simulations.spec import SimulationSpec

FIG_6_1: Mapping[str, Mapping[int | str, float]] = {
    "mode-1": {20: 7.6445, 50: 18.5799, "mean": 14.1118},
    "mode-2": {20: 7.1987, 50: 19.7490, "mean": 13.9244},
    "iterative": {20: 13.6383, 50: 35.0095, "mean": 23.8578},
}
"""Seed 003 §6.1.1 "Number of Requests" (10 nodes): objective values at 20 and 50 requests
and the average over the four runs."""

FIG_6_2: Mapping[str, Mapping[int | str, float]] = {
    "mode-1": {5: 15.0272, 20: 8.6376, "mean": 10.6706},
    "mode-2": {5: 13.1386, 20: 7.3429, "mean": 9.5920},
    "iterative": {5: 17.8215, 20: 16.1020, "mean": 16.8416},
}
"""Seed 003 §6.1.1 "Number of Nodes" (25 requests): at 5 and 20 nodes and the averages."""

TABLE_6_2: Mapping[int, tuple[float, float]] = {
    20: (19.229, 23.227), 30: (20.581, 23.532), 40: (24.380, 25.901), 50: (24.391, 19.239),
}  # fmt: skip
"""Seed 003 Table 6.2, solver time (Mode 1, Mode 2) in ms by requests, at 10 nodes."""

TABLE_6_3: Mapping[int, tuple[float, float]] = {
    5: (17.742, 19.239), 10: (20.417, 21.231), 15: (22.323, 22.449), 20: (26.012, 26.546),
}  # fmt: skip
"""Seed 003 Table 6.3, solver time (Mode 1, Mode 2) in ms by nodes, at 25 requests."""

LABELS = {
    "mode-1": "Mode 1",
    "mode-2": "Mode 2",
    "iterative": "iterative (thesis)",
    "iterative-fill": "iterative, fills by capacity",
}


def _rng(spec: SimulationSpec, repeat: int) -> random.Random:
    return random.Random(spec.seed * 1_000_003 + repeat)  # noqa: S311 - simulation draws


def _plans(problem: RequestProblem, spec: SimulationSpec) -> dict[str, RequestPlan]:
    plans = {
        "mode-1": solve_requests(problem, Mode.AVAILABLE, time_limit_s=spec.time_limit_s),
        "mode-2": solve_requests(problem, Mode.TOTAL, time_limit_s=spec.time_limit_s),
        "iterative": iterative_search(problem, Mode.AVAILABLE, respect_capacity=False),
    }
    if spec.iterative_capacity:
        plans["iterative-fill"] = iterative_search(problem, Mode.AVAILABLE)
    return plans


def _summary(plans: list[RequestPlan]) -> dict[str, float]:
    """Over repeats: mean U (s), its deviation, s per request, rejections, unsolved programs."""
    sums = [plan.latency_ms / 1e3 for plan in plans]
    per = [p.latency_ms / 1e3 / len(p.assignment) for p in plans if p.assignment]
    return {
        "U_s": statistics.fmean(sums),
        "U_s_std": statistics.pstdev(sums),
        "per_request_s": statistics.fmean(per) if per else 0.0,
        "rejected": statistics.fmean(len(p.rejected) for p in plans),
        "overloaded_nodes": statistics.fmean(len(p.overloaded) for p in plans),
        "unsolved": sum(p.status.value in ("time-limit", "error", "infeasible") for p in plans),
    }


def latency_study(spec: SimulationSpec, out: Path, progress: Progress) -> dict[str, Any]:
    """Fig. 6.1 (``study = "requests"``) or Fig. 6.2 (``"nodes"``): U per policy and point."""
    swept = spec.study
    values = spec.requests if swept == "requests" else spec.nodes
    seed_fig = FIG_6_1 if swept == "requests" else FIG_6_2
    runs: dict[int, dict[str, list[RequestPlan]]] = {x: {} for x in values}
    for rep in range(spec.repeats):
        pool = thesis_problem(_rng(spec, rep), max(spec.requests), max(spec.nodes))
        for x in values:
            r, n = (x, spec.nodes[0]) if swept == "requests" else (spec.requests[0], x)
            for name, plan in _plans(subproblem(pool, r, n), spec).items():
                runs[x].setdefault(name, []).append(plan)
        progress(f"{swept}: repeat {rep + 1}/{spec.repeats}", (rep + 1) / spec.repeats)
    policies = list(runs[values[0]])
    rows = []
    for x in values:
        r, n = (x, spec.nodes[0]) if swept == "requests" else (spec.requests[0], x)
        row: dict[str, Any] = {"requests": r, "nodes": n}
        for name in policies:
            ours = _summary(runs[x][name])
            seed = seed_fig.get(name, {}).get(x)
            row[name] = {**ours, "seed_U": seed, "ratio": ratio(ours["U_s"], seed)}
        rows.append(row)
    means = {}
    for name in policies:
        mean = statistics.fmean(row[name]["U_s"] for row in rows)
        seed = seed_fig.get(name, {}).get("mean") if len(values) == 4 else None
        means[name] = {"U_s": mean, "seed_U": seed, "ratio": ratio(mean, seed)}
    plot = _latency_plot(swept, rows, policies, seed_fig, out)
    return {"rows": rows, "mean_over_sweep": means, "plots": [plot], "policies": policies}


def _latency_plot(
    swept: str,
    rows: list[dict[str, Any]],
    policies: list[str],
    seed_fig: Mapping[str, Mapping[int | str, float]],
    out: Path,
) -> str:
    figure_name = "Fig. 6.1" if swept == "requests" else "Fig. 6.2"
    fig, axes = reporting.figure(
        f"Seed 003 {figure_name}: U by number of {swept}", swept, "U = sum of tau + theta (s)"
    )
    xs = [row[swept] for row in rows]
    for k, name in enumerate(policies):
        ys = [row[name]["U_s"] for row in rows]
        err = [row[name]["U_s_std"] for row in rows]
        axes.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=f"C{k}", label=LABELS[name])
        known = [(x, v) for x, v in seed_fig.get(name, {}).items() if isinstance(x, int)]
        if known:
            axes.plot(
                [x for x, _ in known], [v for _, v in known], linestyle="none", marker="s",
                markerfacecolor="none", markersize=9, color=f"C{k}",
                label=f"{LABELS[name]}, thesis",
            )  # fmt: skip
    reporting.save(fig, out / "latency.png")
    return "latency.png"


_DETAIL = ("U_s", "per_request_s", "rejected")


def latency_report(results: Mapping[str, Any]) -> str:
    """The Markdown body of a Fig. 6.1 / 6.2 report."""
    swept, rows, policies = results["study"], results["rows"], results["policies"]
    figure_name = "Fig. 6.1" if swept == "requests" else "Fig. 6.2"
    head = [swept]
    for name in ("mode-1", "mode-2", "iterative"):
        head += [f"{LABELS[name]} U (s)", "thesis", "ratio"]
    table = []
    for row in [*rows, {swept: "mean", **results["mean_over_sweep"]}]:
        line: list[object] = [row[swept]]
        for name in ("mode-1", "mode-2", "iterative"):
            part = row[name]
            line += [part["U_s"], part["seed_U"], part["ratio"]]
        table.append(line)
    detail_head = [swept, *[f"{LABELS[p]}: U (s), s/request, rejected" for p in policies]]
    detail = [
        [row[swept], *[", ".join(f"{row[p][k]:.3g}" for k in _DETAIL) for p in policies]]
        for row in rows
    ]
    spec = results["spec"]
    fixed = "nodes" if swept == "requests" else "requests"
    return (
        f"## Setup\n\nSeed 003 (the thesis) §6.1, {figure_name}: {swept} "
        f"{', '.join(str(r[swept]) for r in rows)} at {spec[fixed]} {fixed}; "
        f"{spec['repeats']} problems drawn (seed {spec['seed']}) with Table 6.1's values, "
        'each point the first requests/nodes of the same problem ("Each simulation varies '
        'one parameter while holding the others constant", §6.1).\n\n'
        "## U beside the thesis\n\n"
        "U is the objective value the thesis reports, the sum of tau + theta over the served "
        "requests in seconds, mean over the problems drawn. The thesis's values are those "
        f"§6.1.1 states for {figure_name} (its end points and its average over the sweep; "
        "the figure itself is not in the seed text); ratio = ours / thesis.\n\n"
        + reporting.markdown_table(head, table)
        + "\n## Per request and rejections\n\n"
        + reporting.markdown_table(detail_head, detail)
        + f"\n![{figure_name}](latency.png)\n\n## Notes\n\n"
        + "".join(f"- {note}\n" for note in results["notes"])
    )


def solver_time_study(spec: SimulationSpec, out: Path, progress: Progress) -> dict[str, Any]:
    """Tables 6.2 and 6.3: the time of one Mode 1 and one Mode 2 solve per size, ms."""
    solve_requests(thesis_problem(_rng(spec, 0), 5, 2), time_limit_s=spec.time_limit_s)  # warm-up
    rows = []
    for k, (r, n) in enumerate(spec.sizes):
        times: dict[str, list[float]] = {"mode-1": [], "mode-2": []}
        sums: dict[str, list[float]] = {"mode-1": [], "mode-2": []}
        for rep in range(spec.repeats):
            problem = thesis_problem(_rng(spec, rep), r, n)
            for name, mode in (("mode-1", Mode.AVAILABLE), ("mode-2", Mode.TOTAL)):
                plan = solve_requests(problem, mode, time_limit_s=spec.time_limit_s)
                times[name].append(1e3 * plan.solve_time_s)
                sums[name].append(plan.latency_ms / 1e3)
        table, seed = _table_of(r, n)
        row: dict[str, Any] = {"requests": r, "nodes": n, "table": table}
        for i, name in enumerate(("mode-1", "mode-2")):
            ordered = sorted(times[name])
            median = statistics.median(ordered)
            thesis = None if seed is None else seed[i]
            row[name] = {
                "median_ms": median,
                "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
                "seed_ms": thesis,
                "ratio": ratio(median, thesis),
                "U_s": statistics.fmean(sums[name]),
            }
        rows.append(row)
        progress(f"solver time: {r} requests x {n} nodes", (k + 1) / len(spec.sizes))
    return {"rows": rows, "plots": [_time_plot(rows, out)]}


def _table_of(requests: int, nodes: int) -> tuple[str | None, tuple[float, float] | None]:
    if nodes == 10 and requests in TABLE_6_2:
        return "6.2", TABLE_6_2[requests]
    if requests == 25 and nodes in TABLE_6_3:
        return "6.3", TABLE_6_3[nodes]
    return None, None


def _time_plot(rows: list[dict[str, Any]], out: Path) -> str:
    fig, axes = reporting.figure(
        "Seed 003 Tables 6.2-6.3: solver time", "requests x nodes", "one solve (ms)"
    )
    xs = list(range(len(rows)))
    groups: dict[str | None, list[int]] = {}
    for x, row in zip(xs, rows, strict=True):
        groups.setdefault(row["table"], []).append(x)
    for k, name in enumerate(("mode-1", "mode-2")):
        for g, members in enumerate(groups.values()):  # one line per thesis table
            axes.plot(
                members, [rows[x][name]["median_ms"] for x in members], marker="o",
                color=f"C{k}", label=None if g else f"{LABELS[name]}, HiGHS (median)",
            )  # fmt: skip
        seed = [(x, row[name]["seed_ms"]) for x, row in zip(xs, rows, strict=True)]
        known = [(x, v) for x, v in seed if v is not None]
        if known:
            axes.plot(
                [x for x, _ in known], [v for _, v in known], linestyle="none", marker="s",
                markerfacecolor="none", color=f"C{k}", label=f"{LABELS[name]}, thesis (Ipopt)",
            )  # fmt: skip
    axes.set_xticks(xs, [f"{row['requests']}x{row['nodes']}" for row in rows], fontsize="small")
    axes.set_ylim(bottom=0)
    reporting.save(fig, out / "solver-time.png")
    return "solver-time.png"


def solver_time_report(results: Mapping[str, Any]) -> str:
    """The Markdown body of a Tables 6.2-6.3 report."""
    head = ["requests", "nodes", "thesis table"]
    for name in ("mode-1", "mode-2"):
        head += [f"{LABELS[name]} median ms", "p90 ms", "thesis ms", "ratio"]
    table = []
    for row in results["rows"]:
        line: list[object] = [row["requests"], row["nodes"], row["table"]]
        for name in ("mode-1", "mode-2"):
            part = row[name]
            line += [part["median_ms"], part["p90_ms"], part["seed_ms"], part["ratio"]]
        table.append(line)
    spec = results["spec"]
    return (
        "## Setup\n\nSeed 003 §6.2.1, Tables 6.2 (requests at 10 nodes) and 6.3 (nodes at 25 "
        f"requests): {spec['repeats']} problems per size with Table 6.1's values (seed "
        f"{spec['seed']}), each solved in Mode 1 and Mode 2; one solve's wall time "
        "including model building and Mode 1's re-solves after evictions.\n\n"
        "## Solver time beside the thesis\n\n"
        + reporting.markdown_table(head, table)
        + "\n![Tables 6.2-6.3](solver-time.png)\n\n## Notes\n\n"
        + "".join(f"- {note}\n" for note in results["notes"])
    )
