"""tierflow's Grafana dashboards, generated from code with grafana-foundation-sdk.

Three dashboards over the metrics of :mod:`streams.metrics` (plus prometheus-client's
``process_*`` series), all reading the ``$datasource`` variable's Prometheus and filtered by
``$prefix``, ``$source`` and ``$quality`` (:mod:`tierflow.grafana.variables`), each built in
a module of its own:

* ``tierflow-pipeline`` (:mod:`tierflow.grafana.pipeline`) — frames in and out per stage,
  end-to-end and per-stage latency p50/p99, drops by policy, batch sizes, consumer lag in
  seconds and records;
* ``tierflow-control`` (:mod:`tierflow.grafana.control`) — quality per camera, F1 against
  a_min, the plan's utility and estimates, solver time, decisions, assignment epochs, live
  services;
* ``tierflow-tiers`` (:mod:`tierflow.grafana.tiers`) — CPU and memory per node, tier and
  service, node cores, link usage, node heartbeat age.

What more than one of them reads (outcome matchers, thresholds from the settings' defaults)
is in :mod:`tierflow.grafana.shared`.

This module puts them together: ``python -m tierflow.grafana`` writes them twice
(:func:`write_dashboards`): ``grafana/dashboards/*.json`` for provisioning, which start on
the provisioned data source, and ``grafana/import/*.json`` for Grafana's "Import dashboard"
page, which ask for the data source as the input ``DS_PROMETHEUS`` (:func:`for_import`).
It also writes the provisioned data source at the settings' defaults
(:mod:`tierflow.grafana.provision`). A test keeps the committed files equal to what the
code generates.
:func:`panel_queries` lists every expression, with Grafana's variables made concrete, for
a test that evaluates them against a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard, prometheus

from tierflow.grafana.control import control
from tierflow.grafana.pipeline import pipeline
from tierflow.grafana.promql import concrete
from tierflow.grafana.provision import (
    DASHBOARDS,
    DATASOURCE_FILE,
    PROVIDER_FILE,
    datasource_yaml,
    provider_yaml,
)
from tierflow.grafana.tiers import tiers
from tierflow.grafana.variables import DATASOURCE_VARIABLE
from tierflow.settings import PrometheusSettings

GRAFANA_DIR = Path(__file__).resolve().parent
"""The generated files' root: ``dashboards/``, ``import/`` and ``provisioning/``."""
DASHBOARDS_DIR = GRAFANA_DIR / DASHBOARDS
"""Where the provisioned JSON files live (the provisioning's file provider reads a copy)."""
IMPORT = "import"
"""Folder, under :data:`GRAFANA_DIR`, of the JSON files for Grafana's import page."""

IMPORT_INPUT = "DS_PROMETHEUS"
"""The data source input an imported dashboard asks for."""
GRAFANA_VERSION = "10.1.0"
"""The Grafana release whose dashboard schema the SDK writes (its version's suffix)."""

DEFAULT_RATE_INTERVAL = "30s"
"""What :func:`panel_queries` puts for ``$__rate_interval``: 15 scrapes at 2 s."""


def build_dashboards() -> list[dashboard.Dashboard]:
    """Every tierflow dashboard, built with the SDK's builders."""
    return [pipeline(), control(), tiers()]


def to_json(model: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON model: stable key order, trailing newline."""
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def for_import(model: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's "Export for sharing externally" writes it.

    ``__inputs`` declares one Prometheus data source, ``DS_PROMETHEUS``: the import page asks
    for it and puts the chosen uid wherever ``${DS_PROMETHEUS}`` stands, here the
    ``$datasource`` variable's starting value. ``__requires`` names the plugins used.
    """
    raw = json.loads(to_json(model))
    placeholder = f"${{{IMPORT_INPUT}}}"
    for variable in raw["templating"]["list"]:
        if variable["name"] == DATASOURCE_VARIABLE:
            variable["current"] = {"text": placeholder, "value": placeholder}
    panel_types = sorted({p["type"] for p in raw["panels"] if p["type"] != "row"})
    raw["__inputs"] = [
        {
            "name": IMPORT_INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes tierflow's processes.",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    raw["__requires"] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        *({"type": "panel", "id": t, "name": t, "version": ""} for t in panel_types),
    ]
    return json.dumps(raw, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_files() -> dict[str, str]:
    """Every generated file's text by its path under :data:`GRAFANA_DIR`."""
    files = {}
    for model in build_dashboards():
        files[f"{DASHBOARDS}/{model.uid}.json"] = to_json(model)
        files[f"{IMPORT}/{model.uid}.json"] = for_import(model)
    files[DATASOURCE_FILE] = datasource_yaml(PrometheusSettings())
    files[PROVIDER_FILE] = provider_yaml()
    return files


def write_dashboards(root: Path = GRAFANA_DIR) -> list[Path]:
    """Write every generated file under ``root``; returns the paths written."""
    written = []
    for name, text in generated_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class PanelQuery(NamedTuple):
    """One target of one panel."""

    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str


def panel_queries(rate_interval: str | None = DEFAULT_RATE_INTERVAL) -> list[PanelQuery]:
    """Every PromQL expression of every dashboard, in dashboard and panel order.

    Args:
        rate_interval: what ``$__rate_interval`` becomes, so the expressions can be sent to
            Prometheus's HTTP API as they are; ``None`` keeps Grafana's variables.
    """
    queries = []
    for model in build_dashboards():
        for panel in model.panels or []:
            if not isinstance(panel, dashboard.Panel):
                continue  # a row: no targets of its own (its panels follow it, expanded)
            for target in panel.targets or []:
                if not isinstance(target, prometheus.Dataquery):
                    continue
                expr = (
                    target.expr if rate_interval is None else concrete(target.expr, rate_interval)
                )
                queries.append(PanelQuery(str(model.uid), str(panel.title), target.ref_id, expr))
    return queries
