"""Solve times of quality assignment (``tierflow.operators.planning.quality``) on random
tiered instances.

Run: ``.venv/bin/python bench/solver.py`` (``--quick`` for a smaller grid, ``--repeat N``).

Instances: ``nodes`` split into cloud (4 %), fog (16 %) and edge (the rest, at least one)
nodes; every cloud node runs one pipeline per quality, every fog node one per quality of the
lower half; sources at 10/15/25 fps sit on random edge nodes and reach their fog and, through
it, the clouds (eq. 2). Capacities and bandwidths are scaled to the demand so that the
highest quality does not fit everywhere (the adaptation has something to decide) while the
mix does. ``a_min`` is drawn between 0.5 and 0.65.

For comparison: the thesis (seed 003) solved 50 requests x 20 nodes with Ipopt in 24-26 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tierflow.operators.planning.accuracy_model import AccuracyCurve
from tierflow.operators.planning.network import Node
from tierflow.operators.planning.quality import (
    Deployment,
    Pipeline,
    Problem,
    Source,
    assign,
    options_for_topology,
)
from tierflow.operators.planning.queueing import QueueCurve
from tierflow.operators.planning.workflow import Tier

QUALITIES = (608, 512, 416, 320, 224)
GAMMA = 2.0  # bits per pixel, about JPEG q90
CURVE = AccuracyCurve(a1=0.80, a2=1.20, a3=150.0)  # E(512) = 0.76, E(224) = 0.59


def instance(rng: np.random.Generator, n_sources: int, n_qualities: int, n_nodes: int) -> Problem:
    """A random tiered instance (see the module docstring)."""
    qualities = tuple(sorted(QUALITIES[:n_qualities], reverse=True))
    n_cloud = max(1, round(n_nodes * 0.04))
    n_fog = max(1, round(n_nodes * 0.16))
    n_edge = max(1, n_nodes - n_cloud - n_fog)
    nodes: dict[str, Node] = {f"c{i}": Node(f"c{i}", Tier.CLOUD) for i in range(n_cloud)}
    fps_choices = np.asarray([10.0, 15.0, 25.0])
    sources = [
        Source(
            f"cam{i:04d}",
            float(rng.choice(fps_choices)),
            qualities,
            site=f"e{int(rng.integers(n_edge))}",
        )
        for i in range(n_sources)
    ]
    demand_fps = sum(s.fps for s in sources)
    mid_bits = GAMMA * qualities[len(qualities) // 2] ** 2
    edge_demand = {f"e{i}": 0.0 for i in range(n_edge)}
    for s in sources:
        edge_demand[s.site] += s.fps
    fog_demand = [0.0] * n_fog
    for i in range(n_edge):
        fog_demand[i % n_fog] += edge_demand[f"e{i}"]
        mbps = max(edge_demand[f"e{i}"], 1.0) * mid_bits * rng.uniform(1.1, 1.5) / 1e6
        nodes[f"e{i}"] = Node(f"e{i}", Tier.EDGE, f"f{i % n_fog}", mbps, 0.004)
    for i in range(n_fog):  # fog uplinks carry roughly two thirds of their edges' traffic
        mbps = max(fog_demand[i], 1.0) * mid_bits * rng.uniform(0.6, 0.9) / 1e6
        nodes[f"f{i}"] = Node(f"f{i}", Tier.FOG, f"c{i % n_cloud}", mbps, 0.005)
    low = qualities[len(qualities) // 2 :] if len(qualities) > 1 else qualities
    deployments: list[Deployment] = []
    for node, served in [(f"c{i}", qualities) for i in range(n_cloud)] + [
        (f"f{i}", low) for i in range(n_fog)
    ]:
        for q in served:
            work = (q / 512) ** 2  # inference time grows with pixels
            pipe = Pipeline(
                f"{node}-{q}",
                capacity_fps=float(rng.uniform(0.5, 1.5)) / work,  # rescaled below
                processing_s=0.02 + 0.08 * work,
                queue=QueueCurve.pollaczek_khinchine(cv2=float(rng.uniform(0.2, 1.0))),
            )
            acc = {q: min(1.0, max(0.0, CURVE(q) + float(rng.normal(0, 0.02))))}
            deployments.append(Deployment(pipe, node, acc, reduce_s=0.003))
    # total capacity ~1.4x the demand at mid quality: the top quality cannot take everyone;
    # yet every pipeline takes at least one camera at 25 fps
    scale = 1.4 * demand_fps / sum(d.pipeline.capacity_fps for d in deployments)
    deployments = [
        Deployment(
            Pipeline(
                d.pipeline.id, max(d.pipeline.capacity_fps * scale, 32.0),
                d.pipeline.processing_s, d.pipeline.queue,
            ),
            d.node, d.accuracy, d.reduce_s,
        )
        for d in deployments
    ]  # fmt: skip
    options, pipelines, links = options_for_topology(
        nodes, deployments, {s.site for s in sources}, GAMMA
    )
    return Problem(sources, options, pipelines, links, a_min=float(rng.uniform(0.5, 0.65)))


def run(
    policy: str, sizes: list[tuple[int, int, int]], repeat: int, seed: int, limit_s: float
) -> None:
    """Print one line per size: median and p90 solve time, statuses and proven gap."""
    for n_src, n_q, n_nodes in sizes:
        times: list[float] = []
        gaps: list[float] = []
        statuses: dict[str, int] = {}
        rng = np.random.default_rng(seed)
        options = 0
        for _ in range(repeat):
            prob = instance(rng, n_src, n_q, n_nodes)
            options = max(options, len(prob.options))
            res = assign(prob, policy, time_limit_s=limit_s)
            times.append(res.solve_time_s)
            if res.solved:
                gaps.append(res.gap)
            statuses[res.status.value] = statuses.get(res.status.value, 0) + 1
        med = statistics.median(times) * 1e3
        p90 = float(np.quantile(times, 0.9)) * 1e3
        status = " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))
        gap = f"{max(gaps) * 100:6.3f}%" if gaps else "     -"
        print(
            f"{policy:7s} sources={n_src:5d} qualities={n_q} nodes={n_nodes:3d} "
            f"options={options:5d}  median={med:8.2f} ms  p90={p90:8.2f} ms  "
            f"max-gap={gap}  {status}",
            flush=True,
        )


def main() -> None:
    """Parse arguments and run the grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="instances per size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    parser.add_argument("--limit", type=float, default=1.0, help="time limit per solve, s")
    args = parser.parse_args()
    sources = (10, 100, 1000)
    qualities = (2, 4) if args.quick else (2, 3, 4, 5)
    nodes = (3, 50) if args.quick else (3, 10, 50)
    started = time.perf_counter()
    grid = [(s, q, n) for s in sources for q in qualities for n in nodes]
    print(f"# milp, {args.repeat} random instances per size, time limit {args.limit} s")
    run("milp", grid, args.repeat, args.seed, args.limit)
    small = [(4, 2, 3), (8, 2, 3), (6, 3, 3), (10, 2, 3), (5, 4, 3), (19, 2, 3)]
    print("# exact enumeration (Algorithm 1) on small instances, same generator")
    run("exact", small, args.repeat, args.seed, args.limit)
    print("# milp on the same small instances")
    run("milp", small, args.repeat, args.seed, args.limit)
    print(f"# total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
