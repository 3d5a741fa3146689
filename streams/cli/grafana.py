"""``tierflow grafana provision DIR``: Grafana provisioning for your Prometheus."""

from __future__ import annotations

import argparse
from pathlib import Path

from tierflow.errors import TierflowError
from tierflow.settings import Settings
from tierflow.streams.cli.common import Subparsers, add, console


def cmd_grafana_provision(args: argparse.Namespace, settings: Settings) -> int:
    """Write the data source (at the settings' Prometheus), a provider and the dashboards."""
    from tierflow.grafana.provision import provision

    try:
        written = provision(args.dir, settings.prometheus)
    except OSError as exc:  # DIR is a file, read-only, on a full disk...
        msg = f"cannot write the Grafana provisioning tree under {args.dir}: {exc}"
        raise TierflowError(msg) from exc
    root = args.dir.resolve()
    console.print(
        f"wrote {len(written)} files under {root}: the data source at "
        f"{settings.prometheus.reach_url} and the dashboards; start Grafana with\n"
        f"  GF_PATHS_PROVISIONING={root / 'provisioning'} grafana-server"
    )
    return 0


def register(sub: Subparsers) -> None:
    """Add ``grafana provision``."""
    grafana = add(
        sub,
        "grafana",
        "Grafana for tierflow's metrics: provisioning files for a stock Grafana "
        "(grafana/README.md).",
    )
    actions = grafana.add_subparsers(dest="action", required=True, metavar="ACTION")
    provision = add(
        actions,
        "provision",
        "Write into DIR a Grafana provisioning tree: DIR/provisioning/datasources/ (the "
        "Prometheus at prometheus.url, or prometheus.host and port), DIR/provisioning/"
        "dashboards/ (a provider for DIR/dashboards) and DIR/dashboards/ (tierflow's "
        "dashboards). Point GF_PATHS_PROVISIONING at DIR/provisioning.",
        cmd_grafana_provision,
    )
    provision.add_argument("dir", type=Path, metavar="DIR")
