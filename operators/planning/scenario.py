"""Planning scenarios: one time slot described in a TOML file, for ``tierflow plan``.

A scenario states what the control agent would otherwise measure: the node tree (edge,
fog, cloud and their uplinks, Table II), the pipelines placed on nodes with their measured
capacity, processing time and accuracy per quality (eq. 1, 4), and the cameras (frame
rate, allowed qualities, the edge node they sit on). See ``docs/scenarios/grid5000.toml``
and the README for the format.

``objective = "makespan"`` (§VII's metric, :mod:`.quality.makespan`) needs ``duration_s``,
the run whose offered load must drain (the seed's runs last 1200 s). ``gamma_bits_per_pixel``
(eq. 2's ``gamma``) defaults to the default workflow's ``bits_per_pixel``, so that the
scenario and ``default_workflow.toml`` price a frame alike unless a file says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierflow.errors import TierflowError
from tierflow.files import read_toml
from tierflow.operators.planning.network import Node
from tierflow.operators.planning.quality import (
    Deployment,
    LatencyMean,
    Objective,
    Pipeline,
    PreferenceRule,
    Problem,
    Source,
    options_for_topology,
)
from tierflow.operators.planning.workflow import Tier, Workflow, default_workflow, load_workflow


class ScenarioError(TierflowError):
    """A scenario file is missing, not TOML, or has a field out of place (the message says)."""


def _get(table: Mapping[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            msg = f"{where}.{key} is missing"
            raise ScenarioError(msg)
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        msg = f"{where}.{key} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        raise ScenarioError(msg)
    return value


def _positive(value: float, where: str) -> float:
    if not value > 0:
        msg = f"{where} must be > 0, got {value}"
        raise ScenarioError(msg)
    return value


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario: the quality problem and, optionally, a workflow to place."""

    problem: Problem
    workflow: Workflow | None
    placement_policy: str
    origin: str

    @classmethod
    def load(cls, path: Path) -> Scenario:
        """Read and validate a scenario file.

        Raises:
            ScenarioError: naming the file and the field at fault.
        """
        data = read_scenario(path)
        try:
            return cls.parse(data, str(path))
        except ScenarioError as exc:
            msg = f"{path}: {exc}"
            raise ScenarioError(msg) from exc

    @classmethod
    def parse(cls, data: Mapping[str, Any], origin: str = "<scenario>") -> Scenario:
        """Build a scenario from parsed TOML."""
        nodes = parse_nodes(data.get("nodes", []))
        deployments = _pipelines(data.get("pipelines", []), nodes)
        sources = _sources(data.get("sources", []), nodes)
        gamma_default = default_workflow().bits_per_pixel
        gamma = _get(data, "gamma_bits_per_pixel", float, "scenario", gamma_default)
        gamma = _positive(gamma, "scenario.gamma_bits_per_pixel")
        options, pipelines, links = options_for_topology(
            nodes, deployments, [s.site for s in sources], gamma
        )
        preference = None
        if _get(data, "preference_rule", bool, "scenario", True):
            preference = PreferenceRule()
        try:
            objective = Objective(_get(data, "objective", str, "scenario", "latency"))
        except ValueError:
            msg = f"scenario.objective must be one of {[o.value for o in Objective]}"
            raise ScenarioError(msg) from None
        try:
            latency_mean = LatencyMean(
                _get(data, "latency_mean", str, "scenario", LatencyMean.FRAMES.value)
            )
        except ValueError:
            msg = f"scenario.latency_mean must be one of {[m.value for m in LatencyMean]}"
            raise ScenarioError(msg) from None
        duration_s = _get(data, "duration_s", float, "scenario", None)
        if duration_s is None and objective is Objective.MAKESPAN:
            msg = (
                'scenario.duration_s is missing: objective = "makespan" drains the load '
                "offered over a run of duration_s seconds (e.g. 1200, the seed's runs)"
            )
            raise ScenarioError(msg)
        if duration_s is not None and not 0 < duration_s < math.inf:
            msg = f"scenario.duration_s must be finite and > 0, got {duration_s}"
            raise ScenarioError(msg)
        problem = Problem(
            sources=sources,
            options=options,
            pipelines=pipelines,
            links=links,
            a_min=_get(data, "a_min", float, "scenario", 0.5),
            objective=objective,
            theta_per_s=_get(data, "theta_per_s", float, "scenario", 1.0),
            preference=preference,
            latency_mean=latency_mean,
            duration_s=1200.0 if duration_s is None else duration_s,
        )
        placement = data.get("placement", {})
        workflow = None
        if placement:
            wf = _get(placement, "workflow", str, "placement", "default")
            workflow = default_workflow() if wf == "default" else load_workflow(Path(wf))
        policy = _get(placement, "policy", str, "placement", "algorithms") if placement else ""
        return cls(problem, workflow, policy, origin)


def read_scenario(path: Path) -> dict[str, Any]:
    """A scenario file's TOML table.

    Raises:
        ScenarioError: the file cannot be read or is not TOML.
    """
    return read_toml(path, "scenario", ScenarioError)


def parse_nodes(items: Any) -> dict[str, Node]:
    """A scenario's ``[[nodes]]``, ``count`` expanded (``edge`` x 11: ``edge0`` .. ``edge10``)."""
    if not isinstance(items, list) or not items:
        msg = "[[nodes]] must list at least one node"
        raise ScenarioError(msg)
    nodes: dict[str, Node] = {}
    for i, item in enumerate(items):
        where = f"nodes[{i}]"
        node_id = _get(item, "id", str, where)
        try:
            tier = Tier(_get(item, "tier", str, where))
        except ValueError:
            msg = f"{where}.tier must be one of {[t.value for t in Tier]}"
            raise ScenarioError(msg) from None
        parent = _get(item, "parent", str, where, None)
        mbps = _positive(_get(item, "uplink_mbps", float, where, math.inf), f"{where}.uplink_mbps")
        delay_ms = _get(item, "uplink_delay_ms", float, where, 0.0)
        count = _get(item, "count", int, where, 1)
        cores = _get(item, "cores", float, where, None)
        if cores is not None:
            _positive(cores, f"{where}.cores")
        for k in range(count):
            name = f"{node_id}{k}" if count > 1 else node_id
            if name in nodes:
                msg = f"{where}.id {name!r} is used twice"
                raise ScenarioError(msg)
            nodes[name] = Node(name, tier, parent, mbps, delay_ms / 1000, cores)
    for node in nodes.values():
        if node.parent is not None and node.parent not in nodes:
            msg = f"node {node.id!r} names parent {node.parent!r}, which is not a node"
            raise ScenarioError(msg)
    return nodes


def _pipelines(items: Any, nodes: Mapping[str, Node]) -> list[Deployment]:
    if not isinstance(items, list) or not items:
        msg = "[[pipelines]] must list at least one pipeline"
        raise ScenarioError(msg)
    out = []
    for i, item in enumerate(items):
        where = f"pipelines[{i}]"
        node = _get(item, "node", str, where)
        if node not in nodes:
            msg = f"{where}.node {node!r} is not a node"
            raise ScenarioError(msg)
        accuracy_table = _get(item, "accuracy", dict, where)
        try:
            accuracy = {int(q): float(a) for q, a in accuracy_table.items()}
        except (TypeError, ValueError):
            msg = f'{where}.accuracy must map qualities to F1, e.g. {{"512" = 0.71}}'
            raise ScenarioError(msg) from None
        pipeline = Pipeline(
            _get(item, "id", str, where),
            _positive(_get(item, "capacity_fps", float, where), f"{where}.capacity_fps"),
            _get(item, "processing_s", float, where, 0.0),
        )
        out.append(Deployment(pipeline, node, accuracy, _get(item, "reduce_s", float, where, 0.0)))
    return out


def _sources(items: Any, nodes: Mapping[str, Node]) -> list[Source]:
    if not isinstance(items, list) or not items:
        msg = "[[sources]] must list at least one source"
        raise ScenarioError(msg)
    edge = sorted(n.id for n in nodes.values() if n.tier is Tier.EDGE)
    sources: list[Source] = []
    for i, item in enumerate(items):
        where = f"sources[{i}]"
        count = _get(item, "count", int, where, 1)
        prefix = _get(item, "id", str, where, "cam")
        fps = _positive(_get(item, "fps", float, where), f"{where}.fps")
        qualities = tuple(int(q) for q in _get(item, "qualities", list, where))
        site = _get(item, "site", str, where, "")
        if site and site not in nodes:
            msg = f"{where}.site {site!r} is not a node"
            raise ScenarioError(msg)
        for k in range(count):
            # Without a site, cameras spread over the edge nodes round-robin.
            where_k = site or (edge[(len(sources)) % len(edge)] if edge else "")
            sid = f"{prefix}{k:02d}" if count > 1 else prefix
            sources.append(Source(sid, fps, qualities, site=where_k))
    return sources
