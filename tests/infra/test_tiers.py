"""Emulated tiers, measured: a frame's transfer follows the links it crosses, CPU its quota.

Real namespaces, veth links shaped with tbf, toxiproxy's delay and a real broker (issue
13, parts 1-2). Needs root and network namespaces; the plan tests need neither.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tierflow.infra.errors import InfraError
from tierflow.infra.tiers import cpu, net
from tierflow.infra.tiers.config import TierSettings
from tierflow.infra.tiers.continuum import Continuum
from tierflow.infra.tiers.plan import load_plan
from tierflow.infra.tiers.probe import throughput, transfer
from tierflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]

SCENARIO = """
[[nodes]]
id = "edge"
tier = "edge"
parent = "fog"
uplink_mbps = 8
uplink_delay_ms = 30
cores = 1

[[nodes]]
id = "fog"
tier = "fog"
parent = "cloud"
uplink_mbps = 40
uplink_delay_ms = 20
cores = 2

[[nodes]]
id = "cloud"
tier = "cloud"
cores = 4
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_emulate() -> str | None:
    """Why this machine cannot run the continuum tests, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, cgroups)"
    try:
        net.check_capabilities()
        cpu.parent()
    except InfraError as exc:
        return str(exc)
    return None


def tier_settings(tmp: Path, **values: object) -> TierSettings:
    """A continuum of its own: tag, subnet, ports and state apart from a user's."""
    defaults: dict[str, object] = {
        "tag": "tft",
        "subnet": "10.78.0.0/16",
        "broker_port": free_port(),
        "controller_port": free_port(),
        "listener_base": free_port(),
        "api_port": free_port(),
        "state_dir": tmp / "tiers",
        "machine_cores": 1.0,
    }
    return TierSettings.model_validate(defaults | values)


def test_a_host_link_sums_the_delays_and_takes_the_narrowest_bandwidth(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    plan = load_plan(scenario, tier_settings(tmp_path))
    edge, fog, cloud = plan.hosts
    assert plan.broker_node == "cloud"
    assert edge.hops == ("edge", "fog") and edge.delay_s == pytest.approx(0.05)
    assert edge.mbps == 8 and fog.mbps == 40 and math.isinf(cloud.mbps)
    assert cloud.hops == () and cloud.delay_s == 0
    # Table I cores scaled so the largest node gets machine_cores (1 here).
    assert (edge.cores, fog.cores, cloud.cores) == (0.25, 0.5, 1.0)
    assert edge.netns == "tft-edge" and edge.host_ip == "10.78.1.1" and edge.node_ip == "10.78.1.2"


def test_the_paper_scenario_plans_table_i_and_ii(tmp_path: Path) -> None:
    plan = load_plan(REPO / "docs/scenarios/grid5000.toml", TierSettings(machine_cores=2.0))
    assert len(plan.hosts) == 13  # 11 edge, 1 fog, 1 cloud
    edge0 = plan.host("edge0")
    assert edge0.delay_s == pytest.approx(0.009) and edge0.mbps == 30  # 4 + 5 ms, 30 Mbit/s
    assert (edge0.cores, plan.host("fog").cores, plan.host("cloud").cores) == (0.25, 1.0, 2.0)


def test_a_broker_on_the_fog_puts_the_cloud_one_uplink_away(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO + '\n[tiers]\nbroker = "fog"\n')
    plan = load_plan(scenario, tier_settings(tmp_path))
    assert plan.broker_node == "fog"
    assert [h.hops for h in plan.hosts] == [("edge",), (), ("fog",)]
    assert plan.host("cloud").delay_s == pytest.approx(0.02)
    scenario.write_text(SCENARIO + '\n[tiers]\nbroker = "moon"\n')
    with pytest.raises(InfraError, match="broker must name a node"):
        load_plan(scenario, tier_settings(tmp_path))


needs_root = pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))


@pytest.fixture(scope="module")
def continuum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Continuum]:
    tmp = tmp_path_factory.mktemp("tiers")
    scenario = tmp / "three.toml"
    scenario.write_text(SCENARIO)
    settings = Settings().model_copy(update={"tiers": tier_settings(tmp)})
    broker = settings.broker.model_copy(update={"state_dir": tmp / "kafka"})
    continuum = Continuum(settings.model_copy(update={"broker": broker}))
    continuum.up(scenario)
    try:
        yield continuum
    finally:
        continuum.down()


@needs_root
def test_up_twice_changes_nothing_and_every_host_answers(continuum: Continuum) -> None:
    plan = continuum.plan()
    assert plan is not None
    continuum.up(plan.scenario)
    hosts = continuum.status()
    assert [h.node for h in hosts] == ["edge", "fog", "cloud"]
    assert all(h.namespace and h.proxy for h in hosts)
    assert cpu.quota_cores("tft-edge") == pytest.approx(0.25)


@needs_root
def test_an_edge_frame_reaches_the_cloud_in_the_links_delay_plus_s_over_w(
    continuum: Continuum,
) -> None:
    result = transfer(continuum, "edge", "cloud", frames=6)
    # d = 30 + 20 ms, w = 8 Mbit/s on the edge host's route, nothing on the cloud's.
    assert result.frame_bytes > 20_000
    assert 0.75 < result.ratio < 1.25, result


@needs_root
def test_a_frame_for_the_fog_crosses_its_link_down_as_well(continuum: Continuum) -> None:
    result = transfer(continuum, "edge", "fog", frames=6)
    assert result.expected_s > transfer(continuum, "edge", "cloud", frames=3).expected_s
    assert 0.75 < result.ratio < 1.25, result


@needs_root
def test_a_host_with_half_the_cores_detects_half_as_fast(continuum: Continuum) -> None:
    with ThreadPoolExecutor(2) as pool:
        edge = pool.submit(throughput, continuum, "edge", 4.0)  # 0.25 cores
        fog = pool.submit(throughput, continuum, "fog", 4.0)  # 0.5 cores
        ratio = edge.result() / fog.result()
    assert 0.375 < ratio < 0.625, ratio


@needs_root
def test_a_command_runs_inside_its_host(continuum: Continuum) -> None:
    cmd, env = continuum.command("edge", ["ip", "-4", "-o", "addr", "show"])
    shown = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "10.78.1.2/24" in shown and "10.78.3.2" not in shown
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "10.78.1.1:9092"
    with pytest.raises(InfraError, match="'nowhere' is not a node"):
        continuum.command("nowhere", ["true"])


@needs_root
def test_down_removes_everything_even_with_the_scenario_gone(tmp_path: Path) -> None:
    scenario = tmp_path / "one.toml"
    scenario.write_text('[[nodes]]\nid = "solo"\ntier = "cloud"\n')
    settings = Settings().model_copy(
        update={"tiers": tier_settings(tmp_path, tag="tfd", subnet="10.79.0.0/16")}
    )
    broker = settings.broker.model_copy(update={"state_dir": tmp_path / "kafka"})
    continuum = Continuum(settings.model_copy(update={"broker": broker}))
    continuum.up(scenario)
    assert "tfd-solo" in net.namespaces()
    scenario.write_text(scenario.read_text() + "cores = 2\n")
    with pytest.raises(InfraError, match=r"one.toml \(edited since\) is up"):
        continuum.up(scenario)  # it would not describe what runs
    assert "tfd-solo" in net.namespaces()  # a refused up leaves the continuum alone
    scenario.unlink()  # down works from what came up, not from the file
    removed = continuum.down()
    assert "namespace tfd-solo" in removed and "broker" in removed
    assert "tfd-solo" not in net.namespaces() and not cpu.group_of("tfd-solo").exists()
    assert continuum.down() == []
    assert continuum.status() == []
