"""What an emulated continuum is made of, computed from a scenario file (no side effects).

Seed 000 §VII emulates the continuum with E2Clab on Grid'5000: 11 edge, 2 fog and 1 cloud
nodes, Table I's node capacities, Table II's link delays and bandwidths. Here every node of
a scenario's ``[[nodes]]`` becomes a host on this machine: a network namespace joined to
the host namespace by one veth link, a CPU quota, and a TCP proxy in front of the one
Kafka broker, which sits on the scenario's broker node (the cloud by default).

All traffic goes through the broker, so what a host's clients cross is the route between
its node and the broker's node (:func:`between`, eq. 2's route up and down): a
host's link gets the *sum* of the delays of the uplinks on that route and the *smallest*
of their bandwidths. A frame from an edge camera to a cloud detector therefore crosses
edge-fog and fog-cloud once up (the camera's link) and nothing more down (the cloud
host's route is empty), as eq. 2 prices it. A frame for a fog service crosses fog-cloud
twice (up to the broker, down to the fog): the cost of a central broker, which the paper's
own deployment (Kafka on the cloud, its Fig. 2) pays as well.

Delays are one-way and applied in each direction (Table II gives "average delays"; we read
them as one-way propagation, so a round trip costs twice). CPU: Table I's cores per node
(``cores`` in ``[[nodes]]``) scaled so the largest node gets ``tiers.machine_cores`` (the
whole machine by default): with 2 cores, edge 1 -> 0.25, fog 4 -> 1, cloud 8 -> 2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tierflow.infra.errors import InfraError
from tierflow.infra.tiers.config import TierSettings
from tierflow.operators.planning.network import Node, route
from tierflow.operators.planning.scenario import ScenarioError, parse_nodes, read_scenario
from tierflow.operators.planning.workflow import Tier

MAX_HOSTS = 250
"""Hosts per continuum: one /24 of the /16 each, and interface names stay short."""


@dataclass(frozen=True)
class HostPlan:
    """One emulated host: a node of the scenario.

    Attributes:
        node: the scenario's node id (``edge0``).
        tier: its tier.
        index: 1-based; the link's addresses, interface names and ports derive from it.
        hops: the uplinks between this node and the broker's (lower node ids, in order).
        delay_s: one-way delay of the route, the sum of its uplinks' delays, seconds.
        mbps: bandwidth of the route, its narrowest uplink, Mbit/s (inf: not shaped).
        cores: CPU the host may use, cores (inf: no quota).
        subnet: the continuum's /16.
        tag: the continuum's name prefix (``tiers.tag``).
    """

    node: str
    tier: Tier
    index: int
    hops: tuple[str, ...]
    delay_s: float
    mbps: float
    cores: float
    subnet: str
    tag: str

    @property
    def netns(self) -> str:
        """The network namespace's name."""
        return f"{self.tag}-{self.node}"

    @property
    def host_if(self) -> str:
        """The link's end in the host namespace (kernel names stay under 16 bytes)."""
        return f"{self.tag}h{self.index}"

    @property
    def node_if(self) -> str:
        """The link's end inside the namespace."""
        return f"{self.tag}n{self.index}"

    def _address(self, last: int) -> str:
        base = ipaddress.IPv4Network(self.subnet).network_address
        return str(base + self.index * 256 + last)

    @property
    def host_ip(self) -> str:
        """The broker side of the link: where this host's proxy listens."""
        return self._address(1)

    @property
    def node_ip(self) -> str:
        """The host's own address inside its namespace."""
        return self._address(2)

    @property
    def group(self) -> str:
        """The name of the host's CPU group."""
        return f"{self.tag}-{self.node}"

    @property
    def listener(self) -> str:
        """The name of this host's Kafka listener."""
        return f"TIER{self.index}"


@dataclass(frozen=True)
class ContinuumPlan:
    """Every host of a scenario and where the broker sits.

    Attributes:
        scenario: the scenario file.
        broker_node: the node the broker runs on.
        hosts: one per node, in the scenario's order.
        settings: the ``[tiers]`` section in force.
        digest: sha256 of the scenario file's text when planned (a file edited since a
            continuum came up no longer describes it).
    """

    scenario: Path
    broker_node: str
    hosts: tuple[HostPlan, ...]
    settings: TierSettings
    digest: str = ""

    def to_json(self) -> dict[str, Any]:
        """The plan as the state file keeps it (what ``down`` needs, whatever the file says)."""
        return {
            "scenario": str(self.scenario),
            "broker_node": self.broker_node,
            "digest": self.digest,
            "settings": self.settings.model_dump(mode="json"),
            "hosts": [
                {
                    **asdict(h),
                    "tier": h.tier.value,
                    "mbps": _finite(h.mbps),
                    "cores": _finite(h.cores),
                }
                for h in self.hosts
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContinuumPlan:
        """The plan :meth:`to_json` wrote.

        Raises:
            InfraError: the state is not one this version wrote.
        """
        try:
            hosts = tuple(
                HostPlan(
                    **{
                        **h,
                        "tier": Tier(h["tier"]),
                        "hops": tuple(h["hops"]),
                        "mbps": _infinite(h["mbps"]),
                        "cores": _infinite(h["cores"]),
                    }
                )
                for h in data["hosts"]
            )
            return cls(
                Path(data["scenario"]),
                data["broker_node"],
                hosts,
                TierSettings.model_validate(data["settings"]),
                data["digest"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"the continuum's state is not readable ({exc}); remove it by hand"
            raise InfraError(msg) from exc

    def host(self, node: str) -> HostPlan:
        """The host of ``node``; InfraError naming the known nodes otherwise."""
        for host in self.hosts:
            if host.node == node:
                return host
        msg = f"{node!r} is not a node of {self.scenario}; nodes: {', '.join(self.nodes)}"
        raise InfraError(msg)

    @property
    def nodes(self) -> list[str]:
        """Node ids in order."""
        return [h.node for h in self.hosts]

    def broker_port(self, host: HostPlan) -> int:
        """The broker's listener for ``host`` (on 127.0.0.1, reached through the proxy)."""
        return self.settings.listener_base + host.index

    def bootstrap(self, host: HostPlan) -> str:
        """What a client on ``host`` dials: its proxy, at the broker's end of its link."""
        return f"{host.host_ip}:{self.settings.proxy_port}"


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _infinite(value: float | None) -> float:
    return math.inf if value is None else float(value)


def digest_of(path: Path) -> str:
    """sha256 of a scenario file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def between(nodes: Mapping[str, Node], a: str, b: str) -> tuple[str, ...] | None:
    """The uplinks between nodes ``a`` and ``b``: up from each to their lowest common node.

    :func:`~tierflow.operators.planning.network.route` when ``b`` is above ``a``; a fog
    host's route to a broker on another fog node crosses both fog uplinks. None when the two
    are in different trees.
    """
    here: str | None = b
    for _ in range(len(nodes)):  # b's ancestors, lowest first (bounded: a cycle ends it)
        if here is None:
            break
        up = route(nodes, a, here)  # the first ancestor above a is where the two meet
        if up is not None:
            down = route(nodes, b, here)
            return None if down is None else up + down
        here = nodes[here].parent
    return None


def _broker_node(table: Mapping[str, Any], nodes: Mapping[str, Node]) -> str:
    roots = [n.id for n in nodes.values() if n.parent is None]
    broker = table.get("broker", roots[0] if len(roots) == 1 else None)
    if not isinstance(broker, str) or broker not in nodes:
        msg = (
            f"[tiers] broker must name a node of the scenario ({', '.join(nodes)}), got {broker!r}"
        )
        raise InfraError(msg)
    return broker


def load_plan(path: Path, settings: TierSettings) -> ContinuumPlan:
    """The continuum a scenario file describes.

    The file is a planning scenario (``docs/scenarios/grid5000.toml``): its ``[[nodes]]``
    give the hosts and links, an optional ``cores`` per node Table I's CPU, and an optional
    ``[tiers]`` table ``broker = "<node>"`` where the broker runs.

    Raises:
        InfraError: the file is unreadable, names no node, or a node cannot reach the
            broker's node upwards (the message names it).
    """
    try:
        data = read_scenario(path)
        nodes = parse_nodes(data.get("nodes", []))
    except ScenarioError as exc:
        msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise InfraError(msg) from exc
    if len(nodes) > MAX_HOSTS:
        msg = f"{path}: {len(nodes)} nodes; a continuum emulates at most {MAX_HOSTS}"
        raise InfraError(msg)
    bad = [n for n in nodes if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", n)]
    if bad:
        msg = f"{path}: node ids {bad} cannot name a namespace (letters, digits, _ . -)"
        raise InfraError(msg)
    tiers = data.get("tiers", {})
    if not isinstance(tiers, dict):
        msg = f"{path}: [tiers] must be a table"
        raise InfraError(msg)
    broker = _broker_node(tiers, nodes)
    stated = [n.cores for n in nodes.values() if n.cores is not None]
    machine = settings.machine_cores or float(os.cpu_count() or 1)
    scale = machine / max(stated) if stated else 1.0
    hosts = []
    for index, node in enumerate(nodes.values(), start=1):
        hops = between(nodes, node.id, broker)
        if hops is None:
            msg = f"{path}: node {node.id!r} and the broker's node {broker!r} share no tree"
            raise InfraError(msg)
        links = [nodes[h] for h in hops]
        hosts.append(
            HostPlan(
                node=node.id,
                tier=node.tier,
                index=index,
                hops=hops,
                delay_s=sum(n.uplink_delay_s for n in links),
                mbps=min((n.uplink_mbps for n in links), default=math.inf),
                cores=math.inf if node.cores is None else node.cores * scale,
                subnet=settings.subnet,
                tag=settings.tag,
            )
        )
    return ContinuumPlan(path, broker, tuple(hosts), settings, digest_of(path))
