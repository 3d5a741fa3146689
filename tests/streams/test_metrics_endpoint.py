"""Where a process serves ``/metrics`` and the address it announces for Prometheus.

In a container the two differ: the server listens on every interface (0.0.0.0) at a fixed
port, and the announced host is one other machines can dial (a service name, a pod IP).
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.brokers import free_port
from tierflow.errors import ConfigError
from tierflow.infra.prometheus.targets import address, targets_from_registry
from tierflow.settings import DataPlaneSettings, load_settings
from tierflow.streams import metrics
from tierflow.topics.records import ServiceAnnouncement
from tierflow.topics.stages import StageName


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_CONFIG", "TIERFLOW_DATAPLANE"):
        monkeypatch.delenv(name, raising=False)


def test_by_default_the_listen_host_is_announced() -> None:
    dp = DataPlaneSettings()
    assert (dp.metrics_host, dp.metrics_port, dp.metrics_advertise_host) == ("127.0.0.1", 0, None)
    assert dp.metrics_announced_host == "127.0.0.1"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", ""])
def test_a_wildcard_listen_host_announces_the_hostname(
    wildcard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "node-fog")
    assert DataPlaneSettings(metrics_host=wildcard).metrics_announced_host == "node-fog"


def test_an_advertised_host_wins_over_the_listen_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "container-id")
    dp = DataPlaneSettings(metrics_host="0.0.0.0", metrics_advertise_host="10.1.2.3")
    assert dp.metrics_announced_host == "10.1.2.3"
    dp = DataPlaneSettings(metrics_host="127.0.0.1", metrics_advertise_host="edge-1.lan")
    assert dp.metrics_announced_host == "edge-1.lan"


def test_the_container_settings_come_from_one_json_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "TIERFLOW_DATAPLANE",
        '{"tier": "fog", "node": "fog-1", "metrics_host": "0.0.0.0", "metrics_port": 9400,'
        ' "metrics_advertise_host": "node-fog"}',
    )
    dp = load_settings().dataplane
    assert (dp.tier, dp.node, dp.metrics_port) == ("fog", "fog-1", 9400)
    assert dp.metrics_announced_host == "node-fog"


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_metrics_port_outside_tcp_is_refused(port: int) -> None:
    with pytest.raises(ConfigError, match=r"dataplane\.metrics_port"):
        load_settings(dataplane={"metrics_port": port})


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 9400, "127.0.0.1:9400"),
        ("node-edge", 9400, "node-edge:9400"),
        ("fd00::1", 9400, "[fd00::1]:9400"),
        ("[fd00::1]", 9400, "[fd00::1]:9400"),
    ],
)
def test_address_brackets_ipv6_literals(host: str, port: int, expected: str) -> None:
    assert address(host, port) == expected
    assert metrics.Endpoint(host, port).address == expected


def test_registry_targets_use_the_announced_address() -> None:
    def announced(service_id: str, host: str) -> ServiceAnnouncement:
        return ServiceAnnouncement(
            service_id=service_id,
            stage=StageName.DRAW,
            topic="frames.detected",
            heartbeat_ns=1,
            ttl_s=4.0,
            metrics_host=host,
            metrics_port=9400,
        )

    targets = targets_from_registry([announced("a", "fd00::7"), announced("b", "node-cloud")])
    assert [t.address for t in targets] == ["[fd00::7]:9400", "node-cloud:9400"]


def test_serve_announced_listens_on_the_fixed_port_and_announces_the_advertised_host() -> None:
    # A loopback address of its own: serve() keeps one server per listen host per process,
    # so a host another test already served would return that server's port.
    port = free_port()
    dp = DataPlaneSettings(
        metrics_host="127.0.0.42", metrics_port=port, metrics_advertise_host="node-edge"
    )
    endpoint = metrics.serve_announced(dp)
    assert endpoint == metrics.Endpoint("node-edge", port)
    with urllib.request.urlopen(f"http://127.0.0.42:{port}/metrics", timeout=5) as response:
        assert b"tierflow_stage_frames_total" in response.read()
    # a second service of the same process announces the same server
    assert metrics.serve_announced(dp) == endpoint
