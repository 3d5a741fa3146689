"""``tierflow plan``: solve one slot of a scenario file offline and print the decision.

With the scenario's ``objective = "makespan"`` (seed 000 §VII, Fig. 3) the JSON has
``makespan_s`` and ``duration_s``, for every policy: ``--policy all-max`` gives the
no-adaptation baseline's makespan.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tierflow.settings import Settings
from tierflow.streams.cli.common import Subparsers, add, stdout

if TYPE_CHECKING:  # imported when a command runs: the CLI starts without the solvers
    from tierflow.operators.planning.placement import PlacementResult
    from tierflow.operators.planning.quality import AssignmentResult
    from tierflow.operators.planning.scenario import Scenario


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Solve the scenario's quality assignment (and placement); exit 1 when unsolved."""
    from tierflow.operators.planning.scenario import Scenario

    scenario = Scenario.load(args.scenario)
    result = _solve(scenario, args)
    summary = _summary(scenario, result, _place(scenario, args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _render(result, summary)
    return 0 if result.solved else 1


def _solve(scenario: Scenario, args: argparse.Namespace) -> AssignmentResult:
    """The quality assignment of the scenario's slot with the policy and budget asked for."""
    from tierflow.operators.planning.quality import assign

    return assign(scenario.problem, args.policy, time_limit_s=args.time_limit)


def _place(scenario: Scenario, args: argparse.Namespace) -> PlacementResult | None:
    """The workflow's placement when the scenario has one and a policy is named."""
    from tierflow.operators.planning.placement import place

    workflow_policy = args.placement or scenario.placement_policy
    if scenario.workflow is None or not workflow_policy:
        return None
    return place(scenario.workflow, policy=workflow_policy)


def _summary(
    scenario: Scenario, result: AssignmentResult, placed: PlacementResult | None
) -> dict[str, Any]:
    """The JSON document of ``--json``: the decision, and the placement when there is one."""
    summary: dict[str, Any] = {
        "scenario": scenario.origin,
        "policy": result.policy,
        "status": result.status.value,
        "rule": result.rule,
        "latency_s": _round(result.latency_s),
        "accuracy": _round(result.accuracy),
        "utility": _round(result.utility),
        "solve_time_s": round(result.solve_time_s, 6),
        "message": result.message,
        **_makespan(scenario, result),
        "distribution": dict(
            sorted(Counter(f"{a.quality}@{a.pipeline}" for a in result.assignments).items())
        ),
        "assignments": {
            a.source: {
                "quality": a.quality,
                "pipeline": a.pipeline,
                "latency_s": round(a.latency_s, 6),
                "accuracy": round(a.accuracy, 4),
                "reduced": a.reduced,
            }
            for a in result.assignments
        },
        "refused": [
            {"source": r.source, "reason": r.reason, "detail": r.detail} for r in result.refused
        ],
    }
    if placed is not None:
        summary["placement"] = {
            "policy": placed.policy,
            "status": placed.status.value,
            "solve_time_s": round(placed.solve_time_s, 6),
            "transfer_ms": round(placed.transfer_ms, 3),
            "instances": {
                p.instance: {"node": p.node, "tier": p.tier.value, "share": round(p.share, 3)}
                for p in placed.placements.values()
            },
            "unplaced": [{"instance": u.instance, "reason": u.reason} for u in placed.unplaced],
        }
    return summary


def _makespan(scenario: Scenario, result: AssignmentResult) -> dict[str, Any]:
    """``makespan_s`` and ``duration_s`` when the scenario's objective is makespan, seconds."""
    from tierflow.operators.planning.quality import Objective

    if scenario.problem.objective is not Objective.MAKESPAN:
        return {}
    return {"makespan_s": _round(result.makespan_s), "duration_s": scenario.problem.duration_s}


def _render(result: AssignmentResult, summary: Mapping[str, Any]) -> None:
    """The decision as a table, then the placement's instances, on the console."""
    span = summary.get("makespan_s")
    drains = "" if span is None else f"makespan {span / 3600:.2f} h, "
    table = Table(
        "source",
        "quality",
        "pipeline",
        "latency s",
        "accuracy",
        title=(
            f"{result.policy}: {result.status.value} ({result.rule}) - {drains}mean latency "
            f"{result.latency_s:.3f} s, accuracy {result.accuracy:.3f}, "
            f"{result.solve_time_s * 1000:.1f} ms"
        ),
    )
    for a in result.assignments:
        table.add_row(
            a.source, str(a.quality), a.pipeline, f"{a.latency_s:.3f}", f"{a.accuracy:.2f}"
        )
    for r in result.refused:
        table.add_row(r.source, "-", "refused", r.reason, r.detail)
    stdout().print(table)
    if "placement" in summary:
        p = summary["placement"]
        stdout().print(
            f"placement ({p['policy']}): {p['status']}, {len(p['instances'])} instances, "
            f"{len(p['unplaced'])} unplaced"
        )
        for instance, where in p["instances"].items():
            stdout().print(
                f"  {instance} -> {where['node']} ({where['tier']}, share {where['share']})"
            )


def register(sub: Subparsers) -> None:
    """Add ``plan``."""
    from tierflow.operators.planning.placement import POLICIES as PLACEMENT
    from tierflow.operators.planning.quality import POLICY_NAMES

    plan = add(
        sub,
        "plan",
        "Solve one time slot of a scenario file offline: each source's quality and pipeline "
        "(and, when the scenario has [placement], where each service runs), with the "
        "estimated latency and accuracy. The scenario format is in the README; "
        "docs/scenarios/grid5000.toml is the seed paper's experiment.",
        cmd_plan,
    )
    plan.add_argument("scenario", type=Path, help="scenario TOML file")
    plan.add_argument(
        "--policy",
        default="milp",
        choices=POLICY_NAMES,
        help="quality policy: milp (HiGHS), exact (Algorithm 1), all-max (no adaptation)",
    )
    plan.add_argument(
        "--placement", choices=PLACEMENT, help="placement policy (overrides the scenario's)"
    )
    plan.add_argument("--time-limit", type=float, default=10.0, help="solver budget, seconds")
    plan.add_argument("--json", action="store_true", help="print one JSON document")
