"""Seed 004 (AVEC) §6: the time of each placement policy choosing among 22 nodes.

"We timed them using the two actual testing nodes from our experimental setup: the edge and
the cloud node [...]. In addition, we included 20 "dummy" nodes to simulate a larger
scenario. Then, we measured the execution time for each policy. All the policies performed
similarly around 0.7 ms, except for the *random* policy, which took 3.1 ms." Here each of
our seven policies (:func:`select_node`) places one CUDA workload among
:func:`.generators.avec_nodes` ``repeats`` times; each call is timed with
``time.perf_counter`` and we report the median and 90th percentile, ms. The seed states one
number for all but ``random``; ``gpu-aware`` (its §6.1) is timed under the same heading.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierflow.operators import reporting
from tierflow.operators.planning.placement import AvecPolicy, select_node
from tierflow.operators.planning.simulations.generators import AVEC_WORKLOAD, avec_nodes
from tierflow.operators.planning.simulations.output import Progress, ratio
from tierflow.operators.planning.simulations.spec import SimulationSpec

SEED_MS = 0.7
"""Seed 004 §6: "All the policies performed similarly around 0.7 ms" (22 nodes)."""
SEED_RANDOM_MS = 3.1
"""Seed 004 §6: "[...] except for the *random* policy, which took 3.1 ms"."""


def avec_study(spec: SimulationSpec, out: Path, progress: Progress) -> dict[str, Any]:
    """Time every AVEC policy on the seed's 22 nodes (2 real, ``dummies`` dummy)."""
    nodes = avec_nodes(spec.dummies)
    rng = random.Random(spec.seed)  # noqa: S311 - the random policy's draws
    rows = []
    policies = list(AvecPolicy)
    for k, policy in enumerate(policies):
        chosen = select_node(policy, nodes, AVEC_WORKLOAD, rng=rng)  # also the warm-up
        samples = []
        for _ in range(spec.repeats):
            started = time.perf_counter()
            select_node(policy, nodes, AVEC_WORKLOAD, rng=rng)
            samples.append(1e3 * (time.perf_counter() - started))
        samples.sort()
        seed = SEED_RANDOM_MS if policy is AvecPolicy.RANDOM else SEED_MS
        median = statistics.median(samples)
        rows.append(
            {
                "policy": policy.value,
                "chosen": None if chosen is None else nodes[chosen].node,
                "median_ms": median,
                "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
                "seed_ms": seed,
                "ratio": ratio(median, seed),
            }
        )
        progress(f"avec: {policy.value}", (k + 1) / len(policies))
    return {"rows": rows, "nodes": len(nodes), "plots": [_plot(rows, out)]}


def _plot(rows: list[dict[str, Any]], out: Path) -> str:
    fig, axes = reporting.figure(
        "Seed 004 §6: one placement among 22 nodes", "policy", "time per call (ms, log)"
    )
    xs = list(range(len(rows)))
    axes.bar([x - 0.2 for x in xs], [r["median_ms"] for r in rows], 0.4, label="ours (median)")
    axes.bar([x + 0.2 for x in xs], [r["seed_ms"] for r in rows], 0.4, label="AVEC (seed 004)")
    axes.set_yscale("log")
    axes.set_xticks(xs, [r["policy"] for r in rows], rotation=30, fontsize="small")
    reporting.save(fig, out / "policy-time.png")
    return "policy-time.png"


def avec_report(results: Mapping[str, Any]) -> str:
    """The Markdown body of the AVEC policy-time report."""
    head = ["policy", "chosen node", "median ms", "p90 ms", "AVEC ms", "ratio"]
    table = [
        [r["policy"], r["chosen"], r["median_ms"], r["p90_ms"], r["seed_ms"], r["ratio"]]
        for r in results["rows"]
    ]
    spec = results["spec"]
    return (
        f"## Setup\n\nSeed 004 §6: one CUDA workload (1 core, 1 GB, 2 GB GPU memory) placed "
        f"among {results['nodes']} nodes: AVEC's edge (RTX 2060) and cloud (GTX 1080) test "
        f"nodes among {spec['dummies']} dummy nodes without a GPU, which fail the platform "
        f"check. {spec['repeats']} timed calls per policy after one warm-up call (seed "
        f"{spec['seed']} for `random`).\n\n## Time beside AVEC's\n\n"
        + reporting.markdown_table(head, table)
        + "\n![policy time](policy-time.png)\n\n## Notes\n\n"
        + "".join(f"- {note}\n" for note in results["notes"])
    )
