"""The generated dashboards: committed = generated, valid for the SDK's model, and queries
that only use metrics tierflow exports, through the provisioned data source."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common, dashboard, prometheus, stat, timeseries
from prometheus_client.metrics import MetricWrapperBase

from tierflow.grafana.__main__ import main
from tierflow.grafana.dashboards import (
    DASHBOARDS_DIR,
    GRAFANA_DIR,
    build_dashboards,
    generated_files,
    panel_queries,
    to_json,
)
from tierflow.grafana.promql import RATE_INTERVAL
from tierflow.grafana.provision import DATASOURCE_UID
from tierflow.streams.metrics import METRICS

PROVISIONING = DASHBOARDS_DIR.parent / "provisioning"

# Samples each metric type exposes (prometheus-client); `_created` is never queried.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# prometheus-client's process collector, exported by every tierflow process.
PROCESS_METRICS = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
}
# Units the dashboards may use: Grafana's ids, or its custom "suffix:<text>".
UNITS = {"s", "bytes", "bps", "percentunit", "short", "none", "dateTimeFromNow"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def exported_names() -> set[str]:
    """Every sample name streams/metrics.py's metrics expose."""
    names: set[str] = set()
    for metric in METRICS:
        assert isinstance(metric, MetricWrapperBase)
        for family in metric.describe():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords,
    label names, strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range windows
    text = LABEL_LISTS.sub("", text)  # by (...), on (...)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def committed() -> dict[str, dict[str, Any]]:
    """The committed dashboard JSON files by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-row panels of a dashboard's JSON (rows are expanded: panels follow them)."""
    return [p for p in raw["panels"] if p["type"] != "row"]


def test_committed_files_are_what_the_code_generates() -> None:
    generated = generated_files()
    on_disk = {
        str(path.relative_to(GRAFANA_DIR)): path.read_text(encoding="utf-8")
        for pattern in ("dashboards/*.json", "import/*.json", "provisioning/*/*.yaml")
        for path in GRAFANA_DIR.glob(pattern)
    }
    assert on_disk.keys() == generated.keys(), "run: python -m tierflow.grafana"
    for name, text in generated.items():
        assert on_disk[name] == text, (
            f"{name} differs from the code; run python -m tierflow.grafana"
        )
    assert {f"dashboards/{m.uid}.json" for m in build_dashboards()} <= generated.keys()
    assert all(generated[f"dashboards/{m.uid}.json"] == to_json(m) for m in build_dashboards())


def test_every_dashboard_round_trips_through_the_sdk_model() -> None:
    # Without the plugins, targets and panel options decode as untyped bags.
    register_default_plugins()
    for name, raw in committed().items():
        model = dashboard.Dashboard.from_json(raw)
        # Every key is one the SDK's model knows: unknown keys would be dropped here.
        assert json.loads(to_json(model)) == raw, name
        for panel in model.panels or []:
            if isinstance(panel, dashboard.RowPanel):
                assert panel.panels == [], f"{name}: rows stay expanded"
                continue
            assert runtime.panelcfg_config(panel.type_val) is not None, panel.type_val
            assert panel.targets, f"{name}: {panel.title} has no target"
            assert all(isinstance(t, prometheus.Dataquery) for t in panel.targets), panel.title
            options_type = {"timeseries": timeseries.Options, "stat": stat.Options}
            assert isinstance(panel.options, options_type[panel.type_val]), panel.title
            assert panel.field_config is not None
            if panel.type_val == "timeseries":
                assert isinstance(panel.field_config.defaults.custom, common.GraphFieldConfig)


def test_panel_ids_and_titles_are_unique_within_a_dashboard() -> None:
    for name, raw in committed().items():
        ids = [p["id"] for p in raw["panels"]]
        titles = [p["title"] for p in panels(raw)]
        assert len(set(ids)) == len(ids), name
        assert len(set(titles)) == len(titles), name
        assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in raw["panels"]), name


def test_queries_use_only_metrics_tierflow_exports() -> None:
    known = exported_names() | PROCESS_METRICS
    for query in panel_queries(rate_interval=None):
        names = metric_names(query.expr)
        assert names, f"{query.panel_title} {query.ref_id} selects no metric: {query.expr}"
        assert names <= known, f"{query.panel_title}: unknown {names - known}"


def test_every_tierflow_metric_has_a_panel() -> None:
    used = set().union(*(metric_names(q.expr) for q in panel_queries(rate_interval=None)))
    for metric in METRICS:
        assert isinstance(metric, MetricWrapperBase)
        for family in metric.describe():
            exposed = {family.name + suffix for suffix in SUFFIXES[family.type]}
            assert exposed & used, f"no panel shows {family.name}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, stage) (rate(a_bucket{x="y"}[5m])))',
            {"a_bucket"},
        ),
        ('max by (n) (label_replace(b, "n", "$1", "exported_n", "(.+)")) / c', {"b", "c"}),
        ("sum(rate(d[30s])) or on() vector(0) + 1e3 * e offset 5m", {"d", "e"}),
    ],
)
def test_metric_names_reads_selectors_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_panel_sets_a_unit() -> None:
    for name, raw in committed().items():
        for panel in panels(raw):
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            assert unit in UNITS or re.fullmatch(r"suffix:\S+", unit), (name, panel["title"])


def test_panels_query_the_datasource_variable_which_starts_on_the_provisioned_one() -> None:
    provisioned = yaml.safe_load(
        (PROVISIONING / "datasources" / "tierflow.yaml").read_text(encoding="utf-8")
    )
    (source,) = provisioned["datasources"]
    assert source["uid"] == DATASOURCE_UID
    expected = {"type": source["type"], "uid": "${datasource}"}
    for name, raw in committed().items():
        (variable,) = [v for v in raw["templating"]["list"] if v["type"] == "datasource"]
        assert variable["name"] == "datasource"
        assert variable["query"] == source["type"]
        assert variable["current"]["value"] == source["uid"], name
        for panel in panels(raw):
            assert panel["datasource"] == expected, (name, panel["title"])
            assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]


def test_datasource_provisioning_points_at_the_local_prometheus() -> None:
    provisioned = yaml.safe_load(
        (PROVISIONING / "datasources" / "tierflow.yaml").read_text(encoding="utf-8")
    )
    assert provisioned["apiVersion"] == 1
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://127.0.0.1:9090"
    assert source["access"] == "proxy"
    assert re.fullmatch(r"\d+s", source["jsonData"]["timeInterval"])


def test_dashboard_provisioning_is_a_file_provider_for_the_generated_files() -> None:
    provisioned = yaml.safe_load(
        (PROVISIONING / "dashboards" / "tierflow.yaml").read_text(encoding="utf-8")
    )
    assert provisioned["apiVersion"] == 1
    (provider,) = provisioned["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert Path(path).is_absolute()
    assert Path(path).name == "tierflow"
    # The README's copy/mount instructions name the same directory.
    assert path in (DASHBOARDS_DIR.parent / "README.md").read_text(encoding="utf-8")


def test_panel_queries_have_no_grafana_variables_left() -> None:
    templated = panel_queries(rate_interval=None)
    concrete = panel_queries(rate_interval="1m")
    assert (
        len(concrete)
        == len(templated)
        == sum(len(p["targets"]) for raw in committed().values() for p in panels(raw))
    )
    assert any(RATE_INTERVAL in q.expr for q in templated)
    for query in concrete:
        # "$1" is label_replace's capture group, not a Grafana variable.
        assert not re.search(r"\$(?!\d)", query.expr), query
        assert "[1m]" in query.expr or "rate(" not in query.expr, query


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_queries_parse_as_promql(tmp_path: Path) -> None:
    # promtool parses every rule's expression: a syntax check without a server.
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"tierflow:check_{i}", "expr": q.expr}
                    for i, q in enumerate(panel_queries())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / "dashboards").glob("*.json"))
    assert written == sorted(committed())
    assert sorted(p.name for p in (tmp_path / "import").glob("*.json")) == written
    out = capsys.readouterr().out
    assert all(name in out for name in written)
    assert main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "import" / written[0]).write_text("{}\n", encoding="utf-8")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert f"import/{written[0]}" in capsys.readouterr().out
