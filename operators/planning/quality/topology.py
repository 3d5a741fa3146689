"""Options, pipelines and links of a quality problem from a tree of nodes (eq. 2 of seed 000).

Nodes enter the quality assignment through the pipelines and links: a pipeline is placed on
a node and its capacity is that node's share; links are the nodes' uplinks (edge -> fog ->
cloud, eq. 2 of Houmani et al., SBAC-PAD 2021), so an option's links depend on the source's
site. :func:`options_for_topology` builds the options from
:class:`tierflow.operators.planning.network.Node` trees; a frame's size on every link is
``S = gamma*fr^2`` bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tierflow.operators.planning.network import Node, frame_bits, route
from tierflow.operators.planning.quality.problem import Link, Option, Pipeline


@dataclass(frozen=True)
class Deployment:
    """A pipeline placed on a node, with the accuracy ``E(q, d)`` per quality it serves."""

    pipeline: Pipeline
    node: str
    accuracy: Mapping[int, float]
    reduce_s: float = 0.0


def options_for_topology(
    nodes: Mapping[str, Node],
    deployments: Sequence[Deployment],
    sites: Iterable[str],
    gamma_bits_per_pixel: float,
) -> tuple[tuple[Option, ...], tuple[Pipeline, ...], tuple[Link, ...]]:
    """Options, pipelines and links for sources on ``sites`` (edge nodes) of a node tree.

    A source on site ``s`` may use a deployment on any node reachable upwards from ``s``
    (its own node, its fog, the cloud through its fog — eq. 2's cases); each node's uplink is
    a link with the node's bandwidth and delay, shared by every frame crossing it.
    """
    options: list[Option] = []
    used: set[str] = set()
    for site in sorted(set(sites)):
        for dep in deployments:
            hops = route(nodes, site, dep.node)
            if hops is None:
                continue
            used.update(hops)
            for q, acc in sorted(dep.accuracy.items()):
                options.append(
                    Option(
                        quality=q, pipeline=dep.pipeline.id, accuracy=acc,
                        bits_per_frame=frame_bits(q, gamma_bits_per_pixel), links=hops,
                        reduce_s=dep.reduce_s, site=site,
                    )
                )  # fmt: skip
    links = tuple(Link(n, nodes[n].uplink_mbps, nodes[n].uplink_delay_s) for n in sorted(used))
    return tuple(options), tuple(d.pipeline for d in deployments), links
