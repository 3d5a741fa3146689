"""Panel and dashboard builders on top of grafana-foundation-sdk, with tierflow's defaults.

Every panel queries the ``$datasource`` variable's Prometheus (:mod:`tierflow.grafana.
variables`; the provisioned one, uid ``tierflow-prometheus``, unless another is picked),
sets a unit, and carries its PromQL in code mode (the expressions use ``label_replace`` and
``or on()``, which the query builder cannot show).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.builders import stat as stat_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard, prometheus

from tierflow.grafana.variables import DATASOURCE, variables

TAG = "tierflow"
"""Every tierflow dashboard carries this tag; the dashboard links list dashboards by it."""

# Grafana unit ids. "suffix:<text>" is Grafana's custom unit: the value, a space, the text.
SECONDS = "s"
BYTES = "bytes"
BITS_PER_SECOND = "bps"
RATIO = "percentunit"  # 0..1 shown as percent
FPS = "suffix:fps"
CORES = "suffix:cores"
PIXELS = "suffix:px"
FRAMES = "suffix:frames"
PER_MINUTE = "suffix:/min"
COUNT = "short"
UNITLESS = "none"
TIME_SINCE = "dateTimeFromNow"  # a millisecond timestamp shown as "3 minutes ago"

# Grid: 24 columns. Stats in fours across the top, graphs in pairs below.
STAT_SPAN, STAT_HEIGHT = 6, 4
GRAPH_SPAN, GRAPH_HEIGHT = 12, 8

REFERENCE_LINE = [
    dashboard.DynamicConfigValue(
        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
    ),
    dashboard.DynamicConfigValue(id_val="custom.lineWidth", value=2),
]
"""Override for reference series (a floor, a plan's estimate): dashed, so they read as
targets to compare with, not as measurements."""


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel.

    Attributes:
        expr: the PromQL expression (may use ``$__rate_interval``).
        legend: Grafana legend format (``{{label}}`` placeholders).
        reference: draw the series as a dashed reference line.
    """

    expr: str
    legend: str
    reference: bool = False


def _target(query: Query, ref_id: str) -> prometheus_builders.Dataquery:
    return (
        prometheus_builders.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(prometheus.QueryEditorMode.CODE)
        .expr(query.expr)
        .legend_format(query.legend)
        .range()
        .ref_id(ref_id)
    )


def _ref_id(index: int) -> str:
    return chr(ord("A") + index)


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds from ``(value, colour)`` steps; the first value is ``None`` (base)."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    span: int = GRAPH_SPAN,
    min_value: float | None = None,
    max_value: float | None = None,
    steps: bool = False,
    min_interval: str | None = None,
    limits: dashboard_builders.ThresholdsConfig | None = None,
) -> timeseries_builders.Panel:
    """A time-series panel.

    Args:
        title: panel title (unique within its dashboard).
        description: what the panel shows and how to read it (Grafana's (i) tooltip).
        unit: a Grafana unit id (the constants above).
        queries: one target per query, ref ids A, B, ... in order.
        span: width in grid columns (of 24).
        min_value: fixed lower end of the axis.
        max_value: fixed upper end of the axis.
        steps: draw as steps (for gauges that change at discrete moments).
        min_interval: lower bound for the query step, and so for ``$__rate_interval``
            (for counters that move only every control slot).
        limits: thresholds drawn as dashed lines (a limit that is configuration, not a
            metric, so no query can plot it).
    """
    panel = (
        timeseries_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(GRAPH_HEIGHT)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .line_interpolation(
            common.LineInterpolation.STEP_AFTER if steps else common.LineInterpolation.LINEAR
        )
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if min_interval is not None:
        panel = panel.interval(min_interval)
    if limits is not None:
        panel = panel.thresholds(limits).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    for index, query in enumerate(queries):
        panel = panel.with_target(_target(query, _ref_id(index)))
        if query.reference:
            panel = panel.override_by_query(_ref_id(index), REFERENCE_LINE)
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    colours: dashboard_builders.ThresholdsConfig | None = None,
    decimals: float | None = None,
    mappings: Sequence[dashboard.ValueMapping] = (),
    min_interval: str | None = None,
    span: int = STAT_SPAN,
    height: int = STAT_HEIGHT,
) -> stat_builders.Panel:
    """A stat panel: the query's last value, with a sparkline behind it.

    Args:
        title: panel title (unique within its dashboard).
        description: what the number means.
        unit: a Grafana unit id.
        query: the one target.
        colours: thresholds that colour the value; a neutral blue when ``None``.
        decimals: fixed number of decimals.
        mappings: value mappings (e.g. a sentinel value shown as text).
        min_interval: lower bound for the query step (see :func:`graph`).
        span: width in grid columns (of 24).
        height: height in grid rows.
    """
    panel = (
        stat_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.AUTO)
        .thresholds(colours or thresholds((None, "blue")))
        .with_target(_target(query, _ref_id(0)))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if mappings:
        panel = panel.mappings(list(mappings))
    if min_interval is not None:
        panel = panel.interval(min_interval)
    return panel


Section = tuple[str, Sequence[cogbuilder.Builder[dashboard.Panel]]]
"""A row title and the panels under it."""


def board(
    uid: str, title: str, description: str, sections: Sequence[Section]
) -> dashboard.Dashboard:
    """Build a dashboard of expanded rows, with links to the other tierflow dashboards.

    Panel ids are numbered 1.. in order: the builders leave them unset, and Grafana needs
    unique ids for panel links, "view panel" and library conversions.
    """
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .time("now-15m", "now")
        .refresh("10s")
        .timezone("browser")
        # Empty lists rather than absent ones: the shape Grafana itself saves (it adds its
        # built-in annotation query on load).
        .annotations([])
        .variables(variables())
        .link(
            dashboard_builders.DashboardLink("tierflow dashboards")
            .type(dashboard.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)  # the prefix and sources picked follow to the next dashboard
        )
    )
    for row_title, panels in sections:
        builder = builder.with_row(dashboard_builders.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    model = builder.build()
    for number, panel_model in enumerate(model.panels or [], start=1):
        panel_model.id_val = number
    return model
