"""The continuum as a tree of nodes and what a frame carries over it: eq. 2 of seed 000.

Houmani et al. (SBAC-PAD 2021) §IV-A, eq. 2: the transfer time between two microservices is
``S/w`` per link crossed, edge to cloud passing through the fog, 0 on the same node, with the
frame's size ``S = gamma*fr^2`` bits. :class:`Node` is a machine with its uplink towards the
cloud, :func:`route` the uplinks a frame crosses between two nodes and :func:`frame_bits`
its size; the quality assignment (``tierflow.operators.planning.quality``) turns those into
links with bandwidth, delay and queueing.

Units are in the names: ``_s`` seconds, ``_bits``, ``_mbps`` Mbit/s, ``_px`` pixels (a
quality ``fr`` is the side of a square ``fr x fr`` frame).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tierflow.operators.planning.errors import ModelError
from tierflow.operators.planning.workflow import Tier


def frame_bits(quality_px: float, gamma_bits_per_pixel: float) -> float:
    """Size of one frame, ``S = gamma * fr^2`` (eq. 2), in bits.

    Args:
        quality_px: side ``fr`` of the square frame, pixels.
        gamma_bits_per_pixel: bits that carry one pixel after encoding (about 2 for JPEG q90).
    """
    if quality_px <= 0 or gamma_bits_per_pixel <= 0:
        msg = f"frame_bits: quality and gamma must be > 0, got {quality_px}, {gamma_bits_per_pixel}"
        raise ModelError(msg)
    return gamma_bits_per_pixel * quality_px * quality_px


@dataclass(frozen=True)
class Node:
    """A machine of the continuum and its uplink towards the cloud.

    Attributes:
        id: node name.
        tier: edge, fog or cloud.
        parent: the next node towards the cloud (an edge node's fog, a fog node's cloud);
            None for a cloud node.
        uplink_mbps: bandwidth of the link to ``parent``, Mbit/s (Table II: edge-fog 30,
            fog-cloud 10 000).
        uplink_delay_s: propagation delay of that link, seconds (Table II: 4 ms, 5 ms).
        cores: the node's CPU, cores (Table I: edge 1, fog 4, cloud 8); None when not
            stated. Only the emulated continuum uses it (:mod:`tierflow.infra.tiers`).
    """

    id: str
    tier: Tier
    parent: str | None = None
    uplink_mbps: float = math.inf
    uplink_delay_s: float = 0.0
    cores: float | None = None


def route(nodes: Mapping[str, Node], src: str, dst: str) -> tuple[str, ...] | None:
    """The uplinks a frame crosses from node ``src`` to node ``dst`` (eq. 2's cases).

    Same node: no link. ``dst`` above ``src`` (edge to its fog, fog to its cloud, or edge to
    the cloud *through its fog*, eq. 2's first case): every uplink on the way, each named by
    the id of its lower node. Anything else (sideways or downwards) is not a path of the
    tiered continuum here.

    Returns:
        uplink ids in order, or None when ``dst`` cannot be reached upwards from ``src``.
    """
    if src == dst:
        return ()
    hops: list[str] = []
    here = src
    while here != dst:
        node = nodes.get(here)
        if node is None or node.parent is None or len(hops) > len(nodes):
            return None
        hops.append(here)
        here = node.parent
    return tuple(hops)
