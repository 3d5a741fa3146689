"""The simulations' problem generators: seed 003's Table 6.1 and seed 004's 22 nodes.

Seed 003 (the thesis), §6.1, "Simulation Setup": "When varying the number of requests, the
number of nodes, models, the execution time on each node, and all other metrics and
information remains constant. Similarly, while varying the number of nodes, we fix all other
values, including the number and content of the requests. [...] the content of the requests
(the model requested and the latency experienced by the client) is randomized within fixed
bounds, as is the amount of memory available to each node." Table 6.1: 25 requests, 10
nodes, 4 models, execution time random 0.1-0.8 s, round-trip time random 0.1-0.5 s,
available RAM (Mode 1) random 10,000-500,000 KB, total RAM (Mode 2) random 30,000-800,000 KB.

:func:`thesis_problem` draws one such problem (memory in MB where the thesis gives KB);
:func:`subproblem` takes its first requests and nodes, so that a sweep over requests (or
nodes) keeps every other value fixed, as the thesis did: the 20-request problem is the first
20 requests of the 50-request one, on the same nodes with the same times.

Seed 004 (AVEC), §6: "We timed them using the two actual testing nodes from our experimental
setup: the edge and the cloud node [...]. In addition, we included 20 "dummy" nodes to
simulate a larger scenario." :func:`avec_nodes` is that list.
"""

from __future__ import annotations

import random

import numpy as np

from tierflow.operators.planning.placement import (
    EdgeNode,
    LoadedModel,
    ModelSpec,
    Request,
    RequestProblem,
    Workload,
)
from tierflow.operators.planning.workflow import NodeMetrics, Resources, Tier

MODELS = 4
"""Table 6.1's number of models."""


def thesis_problem(rng: random.Random, requests: int, nodes: int) -> RequestProblem:
    """A request x node problem with Table 6.1's random values (seed 003, §6.1).

    Models weigh 5-120 MB (Table 6.1 gives no model sizes). Each node's total memory is
    uniform in 30-800 MB and its available memory uniform in 10-min(500, total) MB; models
    (in random order) are loaded while they fit in the difference, so Mode 1 sees about the
    available and Mode 2 the total memory. Table 6.1 gives no compute figures: each node
    serves 4-8 requests at once (each request needs 1). tau (round trip) is uniform in
    100-500 ms and theta (execution) in 100-800 ms, drawn per (request, node).

    Args:
        rng: the random source (the simulation's seed).
        requests: number of requests.
        nodes: number of nodes.
    """
    models = {
        f"model-{k}": ModelSpec(f"model-{k}", rng.uniform(5, 120), 1.0) for k in range(MODELS)
    }
    names = list(models)
    edge = []
    for k in range(nodes):
        total = rng.uniform(30, 800)
        target = rng.uniform(10, min(500, total))  # available memory after loaded models
        loaded: list[LoadedModel] = []
        used = 0.0
        for name in rng.sample(names, len(names)):
            if used + models[name].memory_mb <= total - target:
                loaded.append(LoadedModel(name, rng.uniform(0, 100), rng.randint(1, 20)))
                used += models[name].memory_mb
        edge.append(EdgeNode(f"node-{k}", total, float(rng.randint(4, 8)), tuple(loaded)))
    reqs = tuple(Request(f"r{k}", rng.choice(names)) for k in range(requests))
    tau = np.array([[rng.uniform(100, 500) for _ in edge] for _ in reqs])
    theta = np.array([[rng.uniform(100, 800) for _ in edge] for _ in reqs])
    return RequestProblem(reqs, models, tuple(edge), tau, theta)


def subproblem(problem: RequestProblem, requests: int, nodes: int) -> RequestProblem:
    """The first ``requests`` requests on the first ``nodes`` nodes of ``problem``."""
    return RequestProblem(
        problem.requests[:requests],
        problem.models,
        problem.nodes[:nodes],
        problem.tau_ms[:requests, :nodes],
        problem.theta_ms[:requests, :nodes],
    )


def avec_nodes(dummies: int = 20) -> list[NodeMetrics]:
    """AVEC's edge and cloud test nodes (seed 004, §7) among ``dummies`` dummy nodes.

    The real nodes are an edge machine with an RTX 2060 (6 GB, 1920 CUDA cores) and a cloud
    machine with a GTX 1080 (8 GB, 2560 cores). The dummies have no accelerator, so they
    fail every policy's platform check and ``random`` has to retry past them (AVEC: "The
    increased time for this policy is likely due to the amount of "dummy" nodes"). The
    edge node sits in the middle of the list, the cloud node last.
    """
    real = [
        NodeMetrics("edge-rtx2060", Tier.EDGE, 8, 16384, accelerator="cuda",
                    accelerator_memory_mb=6144, accelerator_cores=1920,
                    latency_ms=1, bandwidth_mbps=1000),
        NodeMetrics("cloud-gtx1080", Tier.CLOUD, 8, 32768, accelerator="cuda",
                    accelerator_memory_mb=8192, accelerator_cores=2560,
                    latency_ms=15, bandwidth_mbps=50),
    ]  # fmt: skip
    fake = [
        NodeMetrics(f"dummy-{k}", Tier.FOG, 4, 8192, latency_ms=5 + k, bandwidth_mbps=100)
        for k in range(dummies)
    ]
    half = dummies // 2
    return fake[:half] + real[:1] + fake[half:] + real[1:]


AVEC_WORKLOAD = Workload(Resources(1, 1024, 2048), accelerator="cuda")
"""The workload timed: one core, 1 GB, 2 GB of GPU memory on CUDA."""
