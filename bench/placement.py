"""Time of the placement policies and of the thesis's request x node program.

Three tables:

1. AVEC's measurement (seed 004, §6): one workload placed among 22 nodes (its edge and
   cloud devices plus 20 "dummy" nodes that fail the platform check, so ``random`` has to
   retry). AVEC reports ~0.7 ms per policy and 3.1 ms for random.
2. Every policy of ``tierflow.operators.planning.placement.place`` on the paper's workflow (14
   instances) over 22 nodes (16 edge, 4 fog, 2 cloud with Table I capacities).
3. The request x node program (seed 003, §3.2) in Mode 1 and Mode 2 and the iterative
   search, with Table 6.1's random values (:mod:`tierflow.operators.planning.simulations.
   generators`): varying requests (20-50 at 10 nodes, Table 6.2) and nodes (5-20 at 25
   requests, Table 6.3). The thesis reports, with Ipopt through AMPL, 24.4 / 19.2 ms
   (Mode 1 / Mode 2) at 50 requests x 10 nodes and 26.0 / 26.5 ms at 25 requests x 20 nodes.
   ``tierflow experiment docs/experiments/thesis-solver-times.toml`` is the same measurement
   as a report beside the thesis's tables.

    .venv/bin/python bench/placement.py --repeat 20
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from tierflow.operators.planning.placement import (
    POLICIES,
    AvecPolicy,
    Mode,
    iterative_search,
    place,
    select_node,
    solve_requests,
)
from tierflow.operators.planning.simulations.generators import (
    AVEC_WORKLOAD,
    avec_nodes,
    thesis_problem,
)
from tierflow.operators.planning.simulations.thesis import TABLE_6_2, TABLE_6_3
from tierflow.operators.planning.workflow import Tier, default_workflow


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 90th percentile of ``fn``'s wall time, ms."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - started))
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.9 * len(samples)))]


def bench_avec(repeat: int) -> None:
    nodes = avec_nodes()
    job = AVEC_WORKLOAD
    print(f"\n1. one workload, {len(nodes)} nodes (AVEC: ~0.7 ms, random 3.1 ms)")
    print(f"{'policy':>15} {'median ms':>10} {'p90 ms':>8}  chosen")
    rng = random.Random(0)
    for policy in AvecPolicy:
        median, p90 = timed(partial(select_node, policy, nodes, job, rng=rng), repeat * 50)
        chosen = select_node(policy, nodes, job, rng=rng)
        print(f"{policy.value:>15} {median:10.3f} {p90:8.3f}  {nodes[chosen or 0].node}")


def bench_policies(repeat: int) -> None:
    workflow = default_workflow()
    counts = {Tier.EDGE: 16, Tier.FOG: 4, Tier.CLOUD: 2}
    tiers = tuple(dataclasses.replace(spec, nodes=counts[spec.tier]) for spec in workflow.tiers)
    workflow = dataclasses.replace(workflow, tiers=tiers)
    nodes = workflow.nodes()
    instances = sum(task.instances for task in workflow.tasks)
    print(f"\n2. the paper's workflow ({instances} instances) on {len(nodes)} nodes")
    head = f"{'policy':>15} {'median ms':>10} {'p90 ms':>8} {'status':>10} {'unplaced':>8}"
    print(f"{head} {'cost':>12}")
    for policy in POLICIES:
        median, p90 = timed(partial(place, workflow, nodes, policy=policy, seed=1), repeat)
        result = place(workflow, nodes, policy=policy, seed=1)
        print(
            f"{policy:>15} {median:10.2f} {p90:8.2f} {result.status.value:>10} "
            f"{len(result.unplaced):>8} {result.cost:12.4g}"
        )


def bench_requests(repeat: int) -> None:
    print("\n3. request x node program (thesis, Ipopt via AMPL: Tables 6.2-6.3, 17.7-26.5 ms)")
    print(
        f"{'requests':>8} {'nodes':>5} {'mode 1 ms':>10} {'mode 2 ms':>10} {'iter ms':>8} "
        f"{'U mode 1':>9} {'U mode 2':>9} {'U iter':>9} {'rej 1/2/it':>10} {'thesis ms 1/2':>14}"
    )
    sizes = [(r, 10) for r in (20, 30, 40, 50)] + [(25, n) for n in (5, 10, 15, 20)]
    for requests, nodes in sizes:
        rows: dict[str, list[float]] = {key: [] for key in ("t1", "t2", "ti", "u1", "u2", "ui")}
        rejected = [0, 0, 0]
        for seed in range(repeat):
            problem = thesis_problem(random.Random(seed), requests, nodes)
            one = solve_requests(problem, Mode.AVAILABLE)
            two = solve_requests(problem, Mode.TOTAL)
            it = iterative_search(problem, Mode.AVAILABLE, respect_capacity=False)
            for key, plan in (("1", one), ("2", two), ("i", it)):
                rows["t" + key].append(1e3 * plan.solve_time_s)
                rows["u" + key].append(plan.latency_ms / 1e3)
            rejected = [
                rejected[0] + len(one.rejected),
                rejected[1] + len(two.rejected),
                rejected[2] + len(it.rejected),
            ]
        med = {key: statistics.median(values) for key, values in rows.items()}
        thesis = TABLE_6_2.get(requests) if nodes == 10 else None
        thesis = TABLE_6_3.get(nodes) if requests == 25 else thesis
        cited = "-" if thesis is None else f"{thesis[0]:.1f}/{thesis[1]:.1f}"
        print(
            f"{requests:>8} {nodes:>5} {med['t1']:10.2f} {med['t2']:10.2f} {med['ti']:8.2f} "
            f"{med['u1']:9.2f} {med['u2']:9.2f} {med['ui']:9.2f} "
            f"{'/'.join(str(r) for r in rejected):>10} {cited:>14}"
        )
    print(
        "(times: median ms over seeds; U: median total tau+theta in s; rej: total rejected;"
        " iter: the thesis's one-node search, capacity ignored; thesis: Table 6.2 at 10 nodes,"
        " Table 6.3 at 25 requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs (seeds) per measurement")
    args = parser.parse_args()
    bench_avec(args.repeat)
    bench_policies(args.repeat)
    bench_requests(args.repeat)


if __name__ == "__main__":
    main()
