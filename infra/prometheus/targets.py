"""Prometheus file-based service discovery from ``control.registry``.

Every tierflow process announces where it serves ``/metrics``; :func:`targets_from_registry`
turns the live announcements into targets labelled with service, stage, node, tier and the
topic prefix the services run under (an experiment's configurations each have their own), and
:func:`write_targets` writes them atomically where Prometheus watches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tierflow.topics.records import ServiceAnnouncement


def address(host: str, port: int) -> str:
    """``host:port`` as Prometheus and HTTP clients take it: an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@dataclass(frozen=True)
class Target:
    """One ``/metrics`` endpoint and the labels its series get."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)


def targets_from_registry(
    services: Iterable[ServiceAnnouncement], prefix: str | None = None
) -> list[Target]:
    """One target per metrics endpoint; a process running several services keeps the first.

    Args:
        services: the live announcements of one prefix's ``control.registry``.
        prefix: that topic prefix, given to every target as label ``prefix`` (the
            dashboards' ``$prefix`` variable); None leaves the label out.
    """
    seen: dict[str, Target] = {}
    for s in sorted(services, key=lambda s: s.service_id):
        if s.metrics_host is None or s.metrics_port is None:
            continue
        where = address(s.metrics_host, s.metrics_port)
        service = s.stage if s.quality is None else f"{s.stage}-{s.quality}"
        labels = {"service": service, "stage": s.stage, "node": s.node, "tier": s.tier}
        if prefix is not None:
            labels["prefix"] = prefix
        seen.setdefault(where, Target(where, labels))
    return sorted(seen.values(), key=lambda t: t.address)


def write_targets(path: Path, targets: Iterable[Target]) -> bool:
    """Write ``targets`` in Prometheus's file_sd JSON format; False when nothing changed.

    Written to a temporary file and renamed, so Prometheus never reads half a file.
    """
    body = json.dumps(
        [{"targets": [t.address], "labels": t.labels} for t in targets], indent=2, sort_keys=True
    )
    if path.is_file() and path.read_text() == body:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)
    return True
