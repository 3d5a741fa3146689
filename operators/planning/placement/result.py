"""What every placement policy returns: service instance -> node with a resource share.

A placement (DESIGN.md vocabulary) maps each service instance to a node and the share of
its requirement reserved there; Algorithm 4 of seed 000 may lower a share to 50 %. Solver
outcomes that are not a placement (infeasible, time limit, solver error) are values of
:class:`~tierflow.operators.planning.highs.SolveStatus`, never exceptions;
:class:`PlacementError` is only for bad input (unknown policy, malformed options or problems).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tierflow.errors import TierflowError
from tierflow.operators.planning.highs import SolveStatus
from tierflow.operators.planning.workflow import Resources, Tier


class PlacementError(TierflowError):
    """The placement request itself is wrong (unknown policy, bad option, bad problem)."""


@dataclass(frozen=True)
class Placement:
    """One service instance on one node.

    Attributes:
        instance: instance id, ``<task>#<index>``.
        task: task name.
        node: node id.
        tier: tier of the node.
        share: reserved fraction of the task's cores, in [min_share, 1].
        reserved: resources reserved on the node (cores already scaled by ``share``).
    """

    instance: str
    task: str
    node: str
    tier: Tier
    share: float
    reserved: Resources


@dataclass(frozen=True)
class Unplaced:
    """An instance (or request) that could not be placed, and why."""

    instance: str
    task: str
    reason: str


@dataclass(frozen=True)
class PlacementResult:
    """Outcome of :func:`tierflow.operators.planning.placement.place`.

    Attributes:
        policy: name of the policy that produced it.
        status: how the policy ended (:class:`~tierflow.operators.planning.highs.SolveStatus`).
        placements: instance id -> placement, in the workflow's topological order.
        unplaced: instances left out, each with a reason.
        solve_time_s: wall time of the policy (model building included), s.
        cost: the placement objective of :mod:`.problem` evaluated on this placement (lower is
            better; the same scale for every policy).
        transfer_ms: the eq. (2) part of ``cost``: expected transfer time per frame, ms.
        message: solver or policy remarks.
    """

    policy: str
    status: SolveStatus
    placements: Mapping[str, Placement]
    unplaced: tuple[Unplaced, ...] = ()
    solve_time_s: float = 0.0
    cost: float = 0.0
    transfer_ms: float = 0.0
    message: str = ""
    _by_node: Mapping[str, tuple[Placement, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # Frozen: expose read-only views so a caller cannot edit a published placement.
        object.__setattr__(self, "placements", MappingProxyType(dict(self.placements)))
        grouped: dict[str, list[Placement]] = {}
        for placement in self.placements.values():
            grouped.setdefault(placement.node, []).append(placement)
        by_node = {node: tuple(items) for node, items in grouped.items()}
        object.__setattr__(self, "_by_node", MappingProxyType(by_node))

    @property
    def complete(self) -> bool:
        """Whether every instance got a node."""
        return not self.unplaced

    def node_of(self, instance: str) -> str | None:
        """Node of ``instance``, or None when it is unplaced."""
        placement = self.placements.get(instance)
        return None if placement is None else placement.node

    def on_node(self, node: str) -> tuple[Placement, ...]:
        """Placements on ``node``."""
        return self._by_node.get(node, ())

    def tiers_of(self, task: str) -> set[Tier]:
        """Tiers the instances of ``task`` were placed on."""
        return {p.tier for p in self.placements.values() if p.task == task}

    def used(self, node: str) -> Resources:
        """Resources this placement reserves on ``node``."""
        total = Resources()
        for placement in self.on_node(node):
            total = total + placement.reserved
        return total
