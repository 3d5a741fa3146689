"""An emulated edge-fog-cloud continuum on this machine: ``tierflow tiers up|down|status``.

``up`` makes every host of a plan (:mod:`.plan`): its namespace and shaped link
(:mod:`.net`), its CPU group (:mod:`.cpu`), then one Kafka broker in the host namespace
with a listener per host, and a toxiproxy proxy per host at the broker's end of the host's
link adding the route's delay (:mod:`.toxiproxy`). A client on a host dials
``a.b.i.1:9092``; the metadata it gets back names that same address (the host's
listener is advertised there), so every byte it sends or fetches crosses its link, its
token bucket and its proxy. :meth:`Continuum.command` runs a program on a host: inside its
namespace, in its CPU group, with ``KAFKA_BOOTSTRAP_SERVERS`` set to its proxy.

One continuum is up at a time; its state file (``tiers.state_dir/state.json``) lets
``down`` and ``status`` find it from any shell. ``up`` on the scenario already up checks
it and changes nothing; ``down`` with nothing up is not an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tierflow.infra.errors import InfraError
from tierflow.infra.kafka.cluster import LocalCluster
from tierflow.infra.tiers import cpu, net
from tierflow.infra.tiers.plan import ContinuumPlan, HostPlan, load_plan
from tierflow.infra.tiers.toxiproxy import Toxiproxy
from tierflow.settings import Settings
from tierflow.topics.admin import create_catalogue


@dataclass(frozen=True)
class HostStatus:
    """One host as ``tierflow tiers status`` shows it."""

    node: str
    tier: str
    bootstrap: str
    delay_ms: float
    mbps: float
    cores: float
    namespace: bool
    proxy: bool
    processes: int


class Continuum:
    """The continuum of ``settings.tiers``: the one that is up, or the one to bring up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tiers = settings.tiers
        self.state_file = self.tiers.state_dir / "state.json"
        self._broker: LocalCluster | None = None

    def cluster(self, plan: ContinuumPlan) -> LocalCluster:
        """The continuum's broker: one node, a listener per host behind its proxy."""
        broker = self.settings.broker.model_copy(
            update={
                "port": plan.settings.broker_port,
                "controller_port": plan.settings.controller_port,
                "brokers": 1,
            }
        )
        listeners = {h.listener: (plan.broker_port(h), plan.bootstrap(h)) for h in plan.hosts}
        return LocalCluster(
            self.settings.model_copy(update={"broker": broker}), listeners=listeners
        )

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _write_state(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state) + "\n")

    def plan(self) -> ContinuumPlan | None:
        """The plan of the continuum that is up (as it came up), None when none is.

        Raises:
            InfraError: the state file is not one this version wrote.
        """
        state = self._read_state()
        return None if state is None else ContinuumPlan.from_json(state["plan"])

    def up(self, scenario: Path) -> ContinuumPlan:
        """Bring up the continuum of ``scenario`` with the topic catalogue on its broker.

        On the continuum of the same, unchanged file already up, makes what is missing
        (a namespace, a group, the broker, the proxy or a proxy of a host).

        Raises:
            InfraError: the machine lacks a capability (root, namespaces, cgroup cpu, go),
                another continuum (or this file before an edit) is up, or a component did
                not start. A failed first ``up`` removes what it made; a failed repair
                leaves the continuum as it was for ``status`` and ``down``.
        """
        plan = load_plan(scenario.resolve(), self.tiers)
        current = self.plan()
        if current is not None and (current.scenario, current.digest) != (
            plan.scenario,
            plan.digest,
        ):
            changed = " (edited since)" if current.scenario == plan.scenario else ""
            msg = (
                f"the continuum of {current.scenario}{changed} is up; "
                "run 'tierflow tiers down' first"
            )
            raise InfraError(msg)
        net.check_capabilities()
        cpu.parent()
        self.tiers.state_dir.mkdir(parents=True, exist_ok=True)
        if current is None:
            # Written first, so that a failed up leaves something down can clean.
            self._write_state({"plan": plan.to_json()})
        try:
            self._make(plan)
        except BaseException as exc:
            if current is None:
                try:
                    self.down()
                except InfraError as cleanup:
                    exc.add_note(f"and cleaning up failed: {cleanup}")
            raise
        return plan

    def _make(self, plan: ContinuumPlan) -> None:
        present = net.namespaces()
        for host in plan.hosts:
            if host.netns not in present:
                net.create_host(host, self.tiers.burst_bytes)
            cpu.create(host.group, host.cores)
        cluster = self.cluster(plan)
        cluster.start()
        if self._broker is None:  # the one that started the process reaps it
            self._broker = cluster
        proxy = Toxiproxy(plan.settings)
        if not proxy.answering():
            pid = proxy.start()
            self._write_state({**(self._read_state() or {}), "toxiproxy_pid": pid})
        known = proxy.proxies()
        for host in plan.hosts:
            if host.group not in known:
                listen = plan.bootstrap(host)
                upstream = f"127.0.0.1:{plan.broker_port(host)}"
                proxy.proxy(host.group, listen, upstream, host.delay_s)
        create_catalogue(cluster.contract)

    def down(self) -> list[str]:
        """Remove everything the continuum made; returns what was removed (may be empty).

        Works from the plan kept when it came up, so an edited or deleted scenario file
        still comes down whole. Every step is tried even when one fails (a half-made
        continuum must come down); the failures are raised together at the end. The
        broker's data directory stays (``broker.state_dir``), as ``tierflow kafka down``
        leaves it.

        Raises:
            InfraError: naming each step that failed.
        """
        plan = self.plan()
        if plan is None:
            return []
        state = self._read_state() or {}
        removed: list[str] = []
        failed: list[str] = []

        def step(what: str, action: Callable[[], bool]) -> None:
            try:
                if action():
                    removed.append(what)
            except (InfraError, OSError) as exc:
                failed.append(f"{what}: {exc}")

        for host in plan.hosts:
            step(f"cpu group {host.group}", partial(cpu.remove, host.group))
        pid = state.get("toxiproxy_pid")
        proxy = Toxiproxy(plan.settings)
        step("toxiproxy", partial(proxy.stop, pid if isinstance(pid, int) else None))
        broker = self._broker or self.cluster(plan)
        self._broker = None
        step("broker", lambda: broker.stop() > 0)
        for host in plan.hosts:
            step(f"namespace {host.netns}", partial(net.delete_host, host))
        if failed:
            msg = "tiers down left: " + "; ".join(failed)
            raise InfraError(msg)
        self.state_file.unlink(missing_ok=True)
        return removed

    def status(self) -> list[HostStatus]:
        """Each host of the continuum that is up (empty when none is)."""
        plan = self.plan()
        if plan is None:
            return []
        present = net.namespaces()
        proxy = Toxiproxy(plan.settings)
        proxies = proxy.proxies() if proxy.answering() else {}
        return [
            HostStatus(
                node=h.node,
                tier=h.tier.value,
                bootstrap=plan.bootstrap(h),
                delay_ms=round(h.delay_s * 1000, 3),
                mbps=h.mbps,
                cores=h.cores,
                namespace=h.netns in present,
                proxy=h.group in proxies,
                processes=len(cpu.pids(h.group)),
            )
            for h in plan.hosts
        ]

    def command(self, node: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run ``argv`` on host ``node``.

        Raises:
            InfraError: no continuum is up, or ``node`` is not one of its hosts.
        """
        plan = self.plan()
        if plan is None:
            msg = "no continuum is up; run 'tierflow tiers up SCENARIO' first"
            raise InfraError(msg)
        host: HostPlan = plan.host(node)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": plan.bootstrap(host)}
        # The group first: inside, ip netns exec mounts a sysfs of the namespace's own over
        # /sys, which hides the cgroup hierarchy.
        cmd = [*cpu.join_command(host.group), "ip", "netns", "exec", host.netns, *argv]
        return cmd, env
