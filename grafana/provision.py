"""Grafana provisioning files: the Prometheus data source at the settings' URL, and a provider.

``grafana/provisioning/`` holds these files rendered at the settings' defaults (a test keeps
them equal); ``tierflow grafana provision DIR`` renders them for *your* settings, with the
dashboards copied next to them (:func:`provision`), so that a stock Grafana started with
``GF_PATHS_PROVISIONING=DIR/provisioning`` shows tierflow's dashboards on your Prometheus.

No grafana-foundation-sdk here: provisioning runs where tierflow is installed without its
development extras (the dashboards themselves are committed JSON).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tierflow.settings import PrometheusSettings

DATASOURCE_UID = "tierflow-prometheus"
"""The uid of the provisioned data source (the dashboards' ``$datasource`` starts on it)."""
DATASOURCE_NAME = "tierflow Prometheus"
"""The provisioned data source's name (what the variable's menu shows)."""

DASHBOARDS = "dashboards"
"""Folder of the provisioned dashboard JSON files (in the package, and in a provision DIR)."""
DATASOURCE_FILE = "provisioning/datasources/tierflow.yaml"
PROVIDER_FILE = "provisioning/dashboards/tierflow.yaml"
PROVIDED_PATH = Path("/var/lib/grafana/dashboards/tierflow")
"""Where the committed provider file expects the dashboards (``grafana/README.md``)."""
PACKAGE_DIR = Path(__file__).resolve().parent


def scrape_interval(seconds: float) -> str:
    """A Grafana duration for ``seconds``: ``2s``, or ``500ms`` below whole seconds."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def datasource_yaml(prometheus: PrometheusSettings) -> str:
    """The data source provisioning file for the Prometheus ``prometheus`` describes.

    The URL is :attr:`PrometheusSettings.reach_url` (``prometheus.url``, or its host and
    port); ``timeInterval`` is its scrape interval, so ``$__rate_interval`` spans at least
    four scrapes.
    """
    # JSON strings are valid YAML scalars: the URL needs no YAML quoting rules of its own.
    return f"""\
# Grafana data source provisioning for tierflow: the Prometheus that scrapes every tierflow
# process. Generated (python -m tierflow.grafana writes it at the defaults, tierflow grafana
# provision at your settings): edit prometheus.url or prometheus.port, not this file.
# The dashboards start on this data source by its uid ({DATASOURCE_UID}); their $datasource
# variable picks another.
apiVersion: 1

datasources:
  - name: {DATASOURCE_NAME}
    uid: {DATASOURCE_UID}
    type: prometheus
    access: proxy
    url: {json.dumps(prometheus.reach_url)}
    # Not the default data source: a Grafana that already has one would refuse a second.
    isDefault: false
    editable: false
    jsonData:
      # Prometheus's scrape interval for tierflow (prometheus.scrape_interval_s).
      timeInterval: {scrape_interval(prometheus.scrape_interval_s)}
      httpMethod: POST
"""


def provider_yaml(path: Path = PROVIDED_PATH) -> str:
    """The dashboard provider provisioning file: load the JSON files in ``path``."""
    return f"""\
# Grafana dashboard provisioning for tierflow: load the JSON files generated into
# grafana/dashboards/ (python -m tierflow.grafana) into a "tierflow" folder.
#
# Path assumption: the dashboards are copied or mounted to {path}
# (grafana/README.md shows how; tierflow grafana provision DIR writes a provider for DIR).
apiVersion: 1

providers:
  - name: tierflow
    orgId: 1
    type: file
    folder: tierflow
    folderUid: tierflow
    # The files are generated from code: edits in the UI would be lost on the next
    # regeneration, so Grafana refuses them and points to the file.
    allowUiUpdates: false
    disableDeletion: false
    updateIntervalSeconds: 30
    options:
      path: {json.dumps(str(path))}
      foldersFromFilesStructure: false
"""


def provision(out: Path, prometheus: PrometheusSettings) -> list[Path]:
    """Write a Grafana provisioning tree for ``prometheus`` under ``out``; the paths written.

    ``out/provisioning/`` (point ``GF_PATHS_PROVISIONING`` at it) gets the data source at
    ``prometheus``'s URL and a provider for ``out/dashboards/``, which gets a copy of the
    packaged dashboards.
    """
    out = out.resolve()
    dashboards = out / DASHBOARDS
    files = {
        out / DATASOURCE_FILE: datasource_yaml(prometheus),
        out / PROVIDER_FILE: provider_yaml(dashboards),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    dashboards.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted((PACKAGE_DIR / DASHBOARDS).glob("*.json")):
        copied.append(Path(shutil.copyfile(source, dashboards / source.name)))
    return [*files, *copied]
