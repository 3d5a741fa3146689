"""``tierflow tiers``: an emulated edge-fog-cloud continuum on this machine (needs root).

``up SCENARIO`` makes a network namespace per node of the scenario, links shaped to Table
II's bandwidths (``tbf``) with its delays (toxiproxy), CPU quotas from Table I scaled to
the machine (cgroups), one Kafka broker every host reaches across its link, and the topic
catalogue on it. ``exec NODE -- CMD`` runs a command on a host. ``down`` removes all of it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from tierflow.settings import Settings
from tierflow.streams.cli.common import Subparsers, add, console, stdout

if TYPE_CHECKING:
    from tierflow.infra.tiers.continuum import Continuum


def _continuum(settings: Settings) -> Continuum:
    from tierflow.infra.tiers.continuum import Continuum

    return Continuum(settings)


def cmd_tiers_install(args: argparse.Namespace, settings: Settings) -> int:
    """Build toxiproxy (the links' delay) with go install."""
    from tierflow.infra.tiers.toxiproxy import ensure

    with console.status(f"building toxiproxy {settings.tiers.toxiproxy_version} with go"):
        print(ensure(settings.tiers))
    return 0


def cmd_tiers_up(args: argparse.Namespace, settings: Settings) -> int:
    """Bring the continuum of a scenario up (idempotent) and create the topic catalogue."""
    continuum = _continuum(settings)
    with console.status(f"bringing up the continuum of {args.scenario}"):
        continuum.up(args.scenario)
    return _print_status(continuum, json_out=args.json)


def cmd_tiers_down(args: argparse.Namespace, settings: Settings) -> int:
    """Remove the continuum: processes on its hosts, namespaces, groups, proxy, broker."""
    removed = _continuum(settings).down()
    console.print("removed: " + ", ".join(removed) if removed else "no continuum was up")
    return 0


def _print_status(continuum: Continuum, json_out: bool) -> int:
    hosts = continuum.status()
    if json_out:
        rows = [
            {
                k: (None if isinstance(v, float) and math.isinf(v) else v)
                for k, v in asdict(h).items()
            }
            for h in hosts
        ]
        print(json.dumps({"up": bool(hosts), "hosts": rows}))
    elif not hosts:
        console.print("no continuum is up")
    else:
        table = Table("node", "tier", "bootstrap", "delay ms", "Mbit/s", "cores", "ok", "procs")
        for h in hosts:
            ok = "yes" if h.namespace and h.proxy else "no"
            mbps = "-" if math.isinf(h.mbps) else f"{h.mbps:g}"
            cores = "-" if math.isinf(h.cores) else f"{h.cores:.2f}"
            table.add_row(
                h.node, h.tier, h.bootstrap, f"{h.delay_ms:g}", mbps, cores, ok, str(h.processes)
            )
        stdout().print(table)
    healthy = bool(hosts) and all(h.namespace and h.proxy for h in hosts)
    return 0 if healthy else 1


def cmd_tiers_status(args: argparse.Namespace, settings: Settings) -> int:
    """Show every host of the continuum; exit 1 when none is up or one is broken."""
    return _print_status(_continuum(settings), json_out=args.json)


def cmd_tiers_exec(args: argparse.Namespace, settings: Settings) -> int:
    """Run a command on a host: its namespace, its CPU group, its broker address."""
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        console.print(
            "[red]give the command to run after --, e.g. tiers exec edge0 -- tierflow camera[/red]"
        )
        return 2
    cmd, env = _continuum(settings).command(args.node, argv)
    return subprocess.run(cmd, env=env, check=False).returncode


def register(sub: Subparsers) -> None:
    """Add the ``tiers`` command."""
    tiers = add(sub, "tiers", "Emulate edge, fog and cloud hosts on this machine (root).")
    actions = tiers.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(
        actions, "install", "Build toxiproxy (the links' delay) with go install.", cmd_tiers_install
    )
    up = add(
        actions,
        "up",
        "Bring up the continuum of SCENARIO (namespaces, shaped links, CPU quotas, broker).",
        cmd_tiers_up,
    )
    up.add_argument(
        "scenario", type=Path, help="a scenario file, e.g. docs/scenarios/grid5000.toml"
    )
    up.add_argument("--json", action="store_true", help="print the hosts as JSON")
    add(actions, "down", "Remove the continuum and stop what runs on its hosts.", cmd_tiers_down)
    status = add(actions, "status", "Show the hosts; exit 1 unless all are up.", cmd_tiers_status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    run = add(
        actions,
        "exec",
        "Run a command on a host (KAFKA_BOOTSTRAP_SERVERS set to its link's broker address).",
        cmd_tiers_exec,
    )
    run.add_argument("node", help="the host, a node id of the scenario (edge0, fog, cloud)")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- and the command")
