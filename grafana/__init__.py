"""Grafana dashboards for tierflow, generated from code, and the provisioning that loads them.

:mod:`tierflow.grafana.dashboards` builds the dashboards with grafana-foundation-sdk (one
module each: :mod:`~tierflow.grafana.pipeline`, :mod:`~tierflow.grafana.control`,
:mod:`~tierflow.grafana.tiers`);
``python -m tierflow.grafana`` writes them to ``grafana/dashboards/``; ``grafana/provisioning/``
holds the data source and dashboard provider files for a stock Grafana (``README.md``).
"""
