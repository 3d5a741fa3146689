"""Dashboard variables filter every query; the import files ask for their data source; the
provisioning tree follows the settings' Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tierflow.grafana.dashboards import GRAFANA_DIR, IMPORT_INPUT, panel_queries
from tierflow.grafana.provision import DATASOURCE_UID, provision, scrape_interval
from tierflow.settings import PrometheusSettings
from tierflow.streams.metrics import METRICS

SELECTOR = re.compile(r"\b((?:tierflow|process)_\w+)\{([^}]*)\}")


def _labels_of(sample: str) -> set[str]:
    for metric in METRICS:
        for family in metric.describe():
            if sample.startswith(family.name):
                return set(metric._labelnames)
    return set()


def test_every_selector_is_filtered_by_the_variables_of_its_labels() -> None:
    seen = 0
    for query in panel_queries(rate_interval=None):
        bare = re.sub(r'"[^"]*"', '""', SELECTOR.sub("", query.expr))
        assert not re.search(r"\b(?:tierflow|process)_\w+", bare), (query.panel_title, query.expr)
        for name, matchers in SELECTOR.findall(query.expr):
            seen += 1
            assert 'prefix=~"$prefix"' in matchers, (query.panel_title, name)
            for label in ("source", "quality"):
                wanted = label in _labels_of(name)
                assert (f'{label}=~"${label}"' in matchers) == wanted, (query.panel_title, name)
    assert seen > 40


def test_the_variables_are_the_same_on_every_dashboard_and_all_means_everything() -> None:
    boards = [json.loads(p.read_text()) for p in sorted((GRAFANA_DIR / "dashboards").glob("*"))]
    lists = [b["templating"]["list"] for b in boards]
    assert all(v == lists[0] for v in lists)
    names = [v["name"] for v in lists[0]]
    assert names == ["datasource", "prefix", "source", "quality"]
    for variable in lists[0][1:]:
        assert variable["multi"] and variable["includeAll"], variable["name"]
        assert variable["allValue"] == ".*"
        assert variable["query"].startswith("label_values(")
        assert variable["name"] in variable["query"]
    assert all(link["includeVars"] for b in boards for link in b["links"])


def test_import_files_ask_for_the_data_source_and_name_no_uid() -> None:
    for path in sorted((GRAFANA_DIR / "import").glob("*.json")):
        text = path.read_text()
        raw = json.loads(text)
        (wanted,) = raw["__inputs"]
        assert wanted["name"] == IMPORT_INPUT and wanted["pluginId"] == "prometheus"
        assert DATASOURCE_UID not in text, path.name
        (variable,) = [v for v in raw["templating"]["list"] if v["type"] == "datasource"]
        assert variable["current"]["value"] == f"${{{IMPORT_INPUT}}}"
        required = {(r["type"], r["id"]) for r in raw["__requires"]}
        panel_types = {p["type"] for p in raw["panels"] if p["type"] != "row"}
        assert {("datasource", "prometheus"), *(("panel", t) for t in panel_types)} <= required
        provisioned = json.loads((GRAFANA_DIR / "dashboards" / path.name).read_text())
        assert raw["panels"] == provisioned["panels"]


def test_provision_writes_the_settings_url_a_provider_for_its_folder_and_the_dashboards(
    tmp_path: Path,
) -> None:
    settings = PrometheusSettings(url="http://prom.example:9091/", scrape_interval_s=0.5)
    written = provision(tmp_path / "g", settings)
    assert all(p.is_file() for p in written)
    source = yaml.safe_load((tmp_path / "g/provisioning/datasources/tierflow.yaml").read_text())
    (entry,) = source["datasources"]
    assert entry["url"] == "http://prom.example:9091"
    assert entry["uid"] == DATASOURCE_UID
    assert entry["jsonData"]["timeInterval"] == "500ms"
    provider = yaml.safe_load((tmp_path / "g/provisioning/dashboards/tierflow.yaml").read_text())
    folder = Path(provider["providers"][0]["options"]["path"])
    assert folder == (tmp_path / "g" / "dashboards").resolve()
    packaged = sorted(p.name for p in (GRAFANA_DIR / "dashboards").glob("*.json"))
    assert sorted(p.name for p in folder.glob("*.json")) == packaged


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 9090, "http://127.0.0.1:9090"),
        ("0.0.0.0", 9091, "http://127.0.0.1:9091"),
        ("fd00::7", 9090, "http://[fd00::7]:9090"),
    ],
)
def test_the_reach_url_comes_from_host_and_port_without_a_url(
    host: str, port: int, url: str
) -> None:
    assert PrometheusSettings(host=host, port=port).reach_url == url


@pytest.mark.parametrize(("seconds", "text"), [(2.0, "2s"), (15, "15s"), (0.25, "250ms")])
def test_scrape_interval_is_a_grafana_duration(seconds: float, text: str) -> None:
    assert scrape_interval(seconds) == text


def test_the_cli_provisions_for_the_settings_and_names_a_bad_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tierflow.streams.cli import main

    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    monkeypatch.setenv("TIERFLOW_PROMETHEUS__PORT", "9191")
    assert main(["grafana", "provision", str(tmp_path / "g")]) == 0
    written = (tmp_path / "g/provisioning/datasources/tierflow.yaml").read_text()
    assert yaml.safe_load(written)["datasources"][0]["url"] == "http://127.0.0.1:9191"
    (tmp_path / "file").write_text("")
    assert main(["grafana", "provision", str(tmp_path / "file")]) == 2
    assert "cannot write the Grafana provisioning tree" in capsys.readouterr().err
