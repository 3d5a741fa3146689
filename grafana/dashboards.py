"""tierflow's Grafana dashboards, generated from code with grafana-foundation-sdk.

Three dashboards over the metrics of :mod:`streams.metrics` (plus prometheus-client's
``process_*`` series), all reading the Prometheus data source provisioned with uid
``tierflow-prometheus``, each built in a module of its own:

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

This module puts them together: ``python -m tierflow.grafana`` writes them to
``grafana/dashboards/*.json`` (:func:`write_dashboards`); a test keeps the committed files
equal to what :func:`build_dashboards` generates.
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
from tierflow.grafana.tiers import tiers

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
"""Where the generated JSON files live (the provisioning's file provider reads a copy)."""

DEFAULT_RATE_INTERVAL = "30s"
"""What :func:`panel_queries` puts for ``$__rate_interval``: 15 scrapes at 2 s."""


def build_dashboards() -> list[dashboard.Dashboard]:
    """Every tierflow dashboard, built with the SDK's builders."""
    return [pipeline(), control(), tiers()]


def to_json(model: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON model: stable key order, trailing newline."""
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write each dashboard to ``out_dir/<uid>.json``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model in build_dashboards():
        path = out_dir / f"{model.uid}.json"
        path.write_text(to_json(model), encoding="utf-8")
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
