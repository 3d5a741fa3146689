"""The dashboards' template variables: the data source, the topic prefix, source and quality.

Every dashboard has the same four, in this order at the top:

* ``$datasource`` — the Prometheus data source every panel queries. Provisioned dashboards
  start on the provisioned one (uid :data:`DATASOURCE_UID`); an imported dashboard starts
  on the one picked for its ``DS_PROMETHEUS`` input (:func:`tierflow.grafana.dashboards.
  for_import`).
* ``$prefix`` — the topic prefix, from the scrape targets' ``prefix`` label: one deployment,
  or one configuration of an experiment (``exp.<name>.<config>.<run>``).
* ``$source`` and ``$quality`` — cameras and capture qualities seen under those prefixes.

The three label variables are multi-valued with an "All" that matches everything, series
without the label included (a Prometheus not started by tierflow sets no ``prefix``).
:func:`tierflow.grafana.promql.selector` adds ``label=~"$label"`` to every selector of a
metric that has the label, so no panel can forget a filter.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard

from tierflow.grafana.provision import DATASOURCE_NAME, DATASOURCE_UID

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
"""What every panel and target queries: the ``$datasource`` variable's choice."""

FILTERS = ("prefix", "source", "quality")
"""Labels a dashboard variable of the same name filters, in the order they are shown."""

MATCH_ALL = ".*"
"""The regex "All" stands for (also what :func:`concrete` puts outside Grafana)."""

_QUERIES = {
    # `up` has a series per scrape target, with the targets' labels, whatever it exports.
    "prefix": 'label_values(up{job="tierflow"}, prefix)',
    "source": 'label_values(tierflow_camera_frames_total{prefix=~"$prefix"}, source)',
    "quality": 'label_values(tierflow_stage_frames_total{prefix=~"$prefix"}, quality)',
}
_LABELS = {"prefix": "Topic prefix", "source": "Source", "quality": "Quality (px)"}
_DESCRIPTIONS = {
    "prefix": "The topic prefix processes run under: one deployment, or one configuration "
    "of an experiment (exp.<name>.<config>.<run>).",
    "source": "Cameras (source ids). Past dataplane.metrics_max_sources per process, "
    "sources are counted as 'other'.",
    "quality": "Capture qualities (frame height in pixels).",
}


def matcher(label: str) -> str:
    """``label=~"$label"``: the filter of the variable named like ``label``."""
    return f'{label}=~"${label}"'


def concrete(expr: str) -> str:
    """``expr`` with every filter variable set to All (to evaluate it outside Grafana)."""
    for label in FILTERS:
        expr = expr.replace(f'"${label}"', f'"{MATCH_ALL}"')
    return expr


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    """``$datasource``: any Prometheus data source, the provisioned one first."""
    return (
        dashboard_builders.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .description("The Prometheus that scrapes tierflow's processes.")
        .type("prometheus")
        .current(dashboard.VariableOption(text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def label_variable(label: str) -> dashboard_builders.QueryVariable:
    """A multi-valued filter on ``label`` with "All" (matching series without the label)."""
    everything = dashboard.VariableOption(selected=True, text="All", value="$__all")
    return (
        dashboard_builders.QueryVariable(label)
        .label(_LABELS[label])
        .description(_DESCRIPTIONS[label])
        .datasource(DATASOURCE)
        .query(_QUERIES[label])
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(
            dashboard.VariableSort.NUMERICAL_ASC
            if label == "quality"
            else dashboard.VariableSort.ALPHABETICAL_ASC
        )
        .multi(True)
        .include_all(True)
        .all_value(MATCH_ALL)
        .current(everything)
    )


def variables() -> list[cogbuilder.Builder[dashboard.VariableModel]]:
    """Every dashboard's variables: data source first, then the label filters."""
    return [datasource_variable(), *(label_variable(label) for label in FILTERS)]
